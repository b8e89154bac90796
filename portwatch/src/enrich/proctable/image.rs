//! What a process ran: an image (executable, arguments, name, cgroup) with when and how it
//! became known, an ancestor with the image it ran, and the image /proc shows.
use std::sync::Arc;

use crate::{enrich::procfs, model::text};

/// How an image became known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// From the kernel at execve.
    Exec,
    /// From /proc (running before portwatch, or not otherwise seen).
    Proc,
    /// A child that has not exec'd since its fork runs its parent's image.
    Inherited,
}

/// One program a process ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// CLOCK_BOOTTIME ns from which the process ran this image (0: unknown, before start-up).
    pub since_ns: u64,
    pub exe: Option<Arc<str>>,
    /// Why `exe` is missing or inexact.
    pub exe_gap: Option<&'static str>,
    /// Converted to text once (bytes that are not UTF-8 become U+FFFD); shared, so handing an
    /// image to every event of a process costs no copies.
    pub args: Option<Arc<[String]>>,
    pub args_truncated: bool,
    /// The executable file's inode, and whether it had no links left when read.
    pub exe_ino: Option<u64>,
    pub exe_deleted: bool,
    /// The arguments' fingerprint (length, hash) when the image was read: a process's own
    /// fingerprint at an event that differs means it rewrote them since.
    pub args_print: Option<u64>,
    pub comm: Arc<str>,
    /// cgroup path from /proc/PID/cgroup, used where the cgroup v2 id does not say more.
    pub cgroup: Option<String>,
    pub source: Source,
}

/// One ancestor of a process: who it was and the program it ran when its child was born.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ancestor {
    pub pid: u32,
    pub start_ns: u64,
    pub image: Arc<Image>,
}

pub(crate) fn text_args(args: &[Vec<u8>]) -> Arc<[String]> {
    args.iter().map(|a| text::escape(a).into_owned()).collect()
}

/// The image /proc shows for (pid, start), and the parent's pid.
pub(super) fn proc_image(pid: u32, start_ticks: u64) -> Option<(Image, u32)> {
    let info = procfs::read(pid, Some(start_ticks))?;
    let ppid = info.ppid;
    Some((Image {
        since_ns: 0,
        exe_gap: info.exe.is_none().then_some(
            if crate::host::caps::lacks("CAP_SYS_PTRACE") {
                "/proc/PID/exe is unreadable: portwatch lacks CAP_SYS_PTRACE, so other users' executables cannot be read (or it is a kernel thread, or exiting)"
            } else {
                "/proc/PID/exe is unreadable (kernel thread, or the process is exiting)"
            },
        ),
        exe: info.exe.map(Into::into),
        exe_ino: info.exe_file.map(|f| f.id.ino),
        exe_deleted: info.exe_file.is_some_and(|f| f.links == 0),
        args_print: info.args_print,
        // Kernel threads have an empty command line: that is their true argument list.
        args: info.args.as_deref().map(text_args),
        args_truncated: false,
        comm: info.comm.text().into(),
        cgroup: info.cgroup,
        source: Source::Proc,
    }, ppid))
}
