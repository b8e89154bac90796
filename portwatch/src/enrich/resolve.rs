//! A path named by a process (its executable's, a script's, the program a loader runs),
//! resolved as the process resolves it, by descriptors: from its root (or its working
//! directory), one component at a time, each opened with `O_PATH | O_NOFOLLOW` (no file system
//! is asked to open anything, and an automount point is not triggered), the mount it landed on
//! identified by the id the kernel gives the descriptor, and the walk stopped before any mount
//! a server answers for (`mounts::local_fd`). Links are read from their descriptor and
//! followed, `..` and `//` undone. Nothing is looked up twice, so a directory swapped for a
//! link mid-walk, a mount stacked over another, or a mount detached from the tree changes
//! nothing: the descriptor says where it is.
use std::{
    ffi::CString,
    fs::{self, File},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use super::mounts;
use crate::files::open_regular;

/// Links followed at most, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Components walked at most (links' targets included): each one is looked up in the mount
/// table, and forty links of 4 KiB each could otherwise name tens of thousands.
const MAX_PARTS: usize = 256;

/// A file found by a walk.
pub struct Found {
    /// Its canonical path, as the process names it.
    pub path: String,
    /// An `O_PATH` descriptor of it.
    pub fd: OwnedFd,
    /// A directory on the way down (its own or one above) anyone may write to.
    pub writable_above: bool,
}

impl Found {
    /// The file opened for reading, if it is a regular file.
    pub fn open(&self) -> Option<File> {
        reopen(&self.fd)
    }
}

/// An `O_PATH` descriptor opened for reading, if it is a regular file on a local mount: through
/// `/proc/self/fd`, which reaches the same file without looking up any path.
pub fn reopen(fd: &OwnedFd) -> Option<File> {
    // Nothing but a regular file is opened: a device may act on being opened (a watchdog
    // arms), and a FIFO's writer would be let through.
    if mode(fd)? & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    open_regular(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

/// An `O_PATH` descriptor of what `path` names; `follow` follows a last link (a /proc magic
/// link such as `/proc/PID/exe` is followed without asking any file system).
pub fn open_path(dir: Option<&OwnedFd>, path: &str, follow: bool) -> Option<OwnedFd> {
    let name = CString::new(path).ok()?;
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let at = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: a valid C string and directory descriptor; the result is checked.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    // SAFETY: a descriptor openat just returned, owned by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The mode of what `fd` refers to, itself (a link is a link).
pub fn mode(fd: &OwnedFd) -> Option<u32> {
    // SAFETY: zeroes are a valid stat; fstatat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH, and a stat to fill.
    let r = unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            &raw mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    (r == 0).then_some(st.st_mode)
}

/// The target of the link `fd` refers to.
fn read_link(fd: &OwnedFd) -> Option<String> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let empty = c"";
    // SAFETY: a valid descriptor, an empty path (the link itself), a buffer of its length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

/// The file `path` names for process `pid` (with its mountinfo), or None when it does not
/// exist, leaves the local file systems, or takes more than 40 links or 256 components.
pub fn resolve(pid: u32, mountinfo: &str, path: &str) -> Option<Found> {
    let mut todo: Vec<String> = Vec::new();
    // The process's own /proc/self is its pid, not this daemon's.
    let path = own_proc(pid, path);
    push(&mut todo, &path);
    if !path.starts_with('/') {
        push(&mut todo, &cwd(pid)?);
    }
    let root = open_path(None, &format!("/proc/{pid}/root"), true)?;
    if !mounts::local_fd(mountinfo, &root) {
        return None;
    }
    let writable = |m: u32| m & libc::S_IFMT == libc::S_IFDIR && m & 0o002 != 0;
    let root_writable = writable(mode(&root)?);
    // The directories from the root down, each with its name and whether anyone may write in it.
    let mut down: Vec<(OwnedFd, String, bool)> = vec![(root, String::new(), root_writable)];
    let (mut links, mut walked) = (0, 0);
    while let Some(part) = todo.pop() {
        walked += 1;
        if walked > MAX_PARTS {
            return None;
        }
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if down.len() > 1 {
                    down.pop();
                }
                continue;
            }
            _ => {}
        }
        let here = open_path(down.last().map(|(fd, _, _)| fd), &part, false)?;
        if !mounts::local_fd(mountinfo, &here) {
            return None;
        }
        let m = mode(&here)?;
        if m & libc::S_IFMT != libc::S_IFLNK {
            down.push((here, part, writable(m)));
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let target = read_link(&here)?;
        if target.starts_with('/') {
            down.truncate(1);
        }
        push(&mut todo, &target);
    }
    let writable_above = down.iter().any(|(_, _, w)| *w);
    let names: Vec<String> = down.iter().skip(1).map(|(_, n, _)| n.clone()).collect();
    let (fd, _, _) = down.pop()?;
    Some(Found {
        path: format!("/{}", names.join("/")),
        fd,
        writable_above,
    })
}

/// `/proc/self/...` and `/proc/thread-self/...` as process `pid` means them.
fn own_proc(pid: u32, path: &str) -> String {
    for own in ["/proc/self/", "/proc/thread-self/"] {
        if let Some(rest) = path.strip_prefix(own) {
            return format!("/proc/{pid}/{rest}");
        }
    }
    path.to_owned()
}

/// `path` made absolute against process `pid`'s working directory (when it can be read) with
/// `.`, `..` and `//` undone as text: what a path that cannot be resolved (gone, or somewhere
/// not to be touched) is judged by.
pub fn lexical(pid: u32, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let cwd = (!path.starts_with('/')).then(|| cwd(pid)).flatten();
    let Some(base) = cwd.as_deref().or(path.starts_with('/').then_some("")) else {
        return path.to_owned();
    };
    for part in base.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Process `pid`'s working directory as it names it: /proc shows it from this daemon's root,
/// so a container's is under the path of the container's root.
fn cwd(pid: u32) -> Option<String> {
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let root = fs::read_link(format!("/proc/{pid}/root")).ok()?;
    let inside = cwd.strip_prefix(&root).ok()?;
    Some(format!("/{}", inside.to_str()?))
}

/// `path`'s components onto the stack, its first on top.
fn push(todo: &mut Vec<String>, path: &str) {
    todo.extend(path.split('/').rev().map(str::to_owned));
}

#[cfg(test)]
mod tests;
