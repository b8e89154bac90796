//! The host's network namespaces, for listing sockets in each: sock_diag answers for the
//! namespace its netlink socket was made in, so a short-lived thread enters each namespace
//! (setns affects only the calling thread) and makes its netlink socket there.
//!
//! Found from every process's and thread's `/proc/PID/task/TID/ns/net` and from the names
//! `ip netns` keeps in `/run/netns`. A namespace that only a socket keeps alive (its creator
//! moved on and no process or name refers to it) is not found.
use std::{
    fs::{self, File},
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::Path,
};

use rustc_hash::FxHashSet;

pub use crate::model::source::Unlisted;

/// One network namespace: its inode (as in /proc/PID/ns/net) and an open handle to it.
pub struct Namespace {
    pub inode: u32,
    file: File,
}

/// Every network namespace found, portwatch's own first.
pub fn all() -> io::Result<Vec<Namespace>> {
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    let mut add = |path: &Path| {
        // Gone since listed, or not ours to open: skipped.
        let Ok(file) = File::open(path) else { return };
        let Ok(meta) = file.metadata() else { return };
        let inode = meta.ino() as u32;
        if seen.insert(inode) {
            out.push(Namespace { inode, file });
        }
    };
    add(Path::new("/proc/self/ns/net"));
    for pid in fs::read_dir("/proc")?.flatten() {
        let name = pid.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // Threads may have entered other namespaces than their process's leader.
        let Ok(tasks) = fs::read_dir(pid.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            add(&task.path().join("ns/net"));
        }
    }
    if let Ok(named) = fs::read_dir("/run/netns") {
        for n in named.flatten() {
            add(&n.path());
        }
    }
    Ok(out)
}

impl Namespace {
    /// The namespace `path` (a `/proc/PID/task/TID/ns/net` or a bind mount) refers to, if it
    /// can be opened and is `inode`.
    pub fn open(path: &Path, inode: u32) -> Option<Self> {
        let file = File::open(path).ok()?;
        (file.metadata().ok()?.ino() as u32 == inode).then_some(Self { inode, file })
    }

    /// Runs `f` in a thread that has entered this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace descriptor; it changes only this thread,
                // which ends with `f`.
                if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a namespace thread panicked")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_namespace_first_and_runs_in_it() {
        let all = all().unwrap();
        let mine = fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
        assert_eq!(all[0].inode, mine);
        let seen = all[0]
            .run(|| Ok(fs::metadata("/proc/thread-self/ns/net")?.ino() as u32))
            .unwrap();
        assert_eq!(seen, mine);
        let inodes: FxHashSet<u32> = all.iter().map(|n| n.inode).collect();
        assert_eq!(inodes.len(), all.len(), "each namespace once");
    }
}
