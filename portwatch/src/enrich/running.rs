//! What a process runs at an event, against what it started with: the kernel reads the
//! executable file and a fingerprint of the arguments at each bind, listen and accept, so a
//! binary deleted since it started, a file swapped under the process, or arguments rewritten
//! after exec (`$0`, setproctitle) show in the record instead of the image seen at exec.
use std::sync::Arc;

use super::{procfs, proctable::Image, proctable::text_args};
use crate::model::{process::ProcessContext, task::Task};

/// Fills exe, args and what changed since the image was read, from `image` and the kernel's
/// view at the event (`t.running`).
pub fn apply(c: &mut ProcessContext, t: &Task, image: &Image) {
    c.exe.clone_from(&image.exe);
    if let Some(why) = image.exe_gap {
        c.gap("exe", why);
    }
    let running = &t.running;
    c.exe_deleted = running.exe_unlinked.unwrap_or(image.exe_deleted);
    if c.exe_deleted && replaced(t.pid, c.exe.as_deref(), running.exe_ino) {
        // A package upgrade: the path has a new file, the process runs the old one. Not a
        // program that hides its file, and said so rather than flagged on every accept.
        c.exe_deleted = false;
        c.gap(
            "exe",
            "replaced on disk since the process started (an upgrade?): it runs the file that was there",
        );
    }
    if let (Some(now), Some(then)) = (running.exe_ino, image.exe_ino) {
        // By inode (the kernel's s_dev is not stat's st_dev on btrfs): a changed file, or the
        // same number on another file system, which is rare enough to read /proc for.
        if now != then {
            // The process runs another file than the one it exec'd (prctl PR_SET_MM_EXE_FILE).
            match t.start_ns.and_then(|s| procfs::exe(t.pid, s / procfs::ns_per_tick())) {
                Some(exe) => c.exe = Some(exe.into()),
                None => c.gap(
                    "exe",
                    "the process's executable changed since exec and it exited before /proc/PID/exe could be read",
                ),
            }
        }
    }
    match &image.args {
        Some(args) => c.args = Some(Arc::clone(args)),
        None => c.gap("args", "/proc/PID/cmdline was unreadable"),
    }
    c.args_truncated = image.args_truncated;
    if let (Some(now), Some(then)) = (running.args, image.args_print) {
        if now != then {
            let current = t
                .start_ns
                .and_then(|s| procfs::cmdline(t.pid, s / procfs::ns_per_tick()));
            match current {
                // Read later than the event, still unlike those at exec. (/proc may show more
                // than the argument area the kernel fingerprinted, for a title that overran it,
                // so the two fingerprints need not be equal.)
                Some((args, print)) if print != then => {
                    c.exec_args = c.args.take();
                    c.args = Some(text_args(&args));
                    c.args_truncated = false;
                }
                Some(_) => c.gap(
                    "args",
                    "the process rewrote its arguments after exec and had restored them when they were read: these are the ones it started with",
                ),
                None => c.gap(
                    "args",
                    "the process rewrote its arguments after exec and exited before the new ones could be read: these are the ones it started with",
                ),
            }
        }
    }
}

/// Whether `exe`, in the process's own root, is now another file than the one it runs (`ino`).
fn replaced(pid: u32, exe: Option<&str>, ino: Option<u64>) -> bool {
    let (Some(exe), Some(ino)) = (exe, ino) else {
        return false;
    };
    procfs::inode_of(&format!("/proc/{pid}/root{exe}")).is_some_and(|now| now != ino)
}
