//! Who did it, as the kernel saw it: the task behind a record, its command name, and a new
//! program image (execve).
use std::borrow::Cow;

/// Who caused a record, as the kernel saw it at that moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Task {
    /// CLOCK_BOOTTIME nanoseconds of the event.
    pub boot_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Comm,
    pub cgroup_id: u64,
    /// None when the kernel could not read the task (counted as `task_read_errors`).
    pub ppid: Option<u32>,
    pub parent_start_ns: Option<u64>,
    /// Process start (CLOCK_BOOTTIME ns): with `pid`, the process's lasting identity.
    pub start_ns: Option<u64>,
    pub netns: Option<u32>,
    /// None when the kernel has no audit support; Some(u32::MAX) means "unset".
    pub loginuid: Option<u32>,
    /// What it ran at the event, as the kernel read it (socket events).
    pub running: Running,
}

/// A file by device (as stat(2) gives it) and inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What a task runs at an event: its executable file (inode) and whether it had no links left,
/// and the fingerprint of its arguments as they are then
/// (`portwatch_common::args_fingerprint`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Running {
    pub exe_ino: Option<u64>,
    /// The executable is deleted (or a memfd).
    pub exe_unlinked: Option<bool>,
    pub args: Option<u64>,
}

impl Running {
    /// From a record's `ImageId` and its header's `image_flags`.
    pub fn from_kernel((i, flags): (portwatch_common::ImageId, u16)) -> Self {
        use portwatch_common::{IMAGE_ARGS, IMAGE_EXE, IMAGE_UNLINKED};
        let exe = flags & IMAGE_EXE != 0;
        Self {
            exe_ino: exe.then_some(i.exe_ino),
            exe_unlinked: exe.then_some(flags & IMAGE_UNLINKED != 0),
            args: (flags & IMAGE_ARGS != 0).then_some(i.args_hash),
        }
    }
}

/// A thread's command name as the kernel keeps it: up to 16 bytes (15 and a NUL, as the kernel
/// writes it), maybe not UTF-8. Held inline: every record carries one.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    /// The bytes up to the first NUL, at most 16.
    pub fn new(raw: &[u8]) -> Self {
        let raw = &raw[..raw.len().min(16)];
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let mut bytes = [0; 16];
        bytes[..len].copy_from_slice(&raw[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// As text, every byte kept (`text::escape`).
    pub fn text(&self) -> Cow<'_, str> {
        crate::model::text::escape(self.as_bytes())
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.text().fmt(f)
    }
}

/// A new program image: execve's file name and the argument list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub task: Task,
    pub filename: Vec<u8>,
    /// The executable's path as the kernel walked it from the file up to the process's root
    /// (its path inside a container; `/memfd:NAME`), when the walk was complete.
    pub exe_path: Option<Vec<u8>>,
    /// That path is relative to a root that is not the process's own (a detached mount, a
    /// pseudo file system's such as a memfd's).
    pub exe_detached: bool,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    /// The new image's stdin, stdout or stderr is an IP socket.
    pub stdio: Option<super::socket::StdioSocket>,
}

/// Splits a NUL-separated argument list (/proc/PID/cmdline or the kernel's copy).
pub fn split_args(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}
