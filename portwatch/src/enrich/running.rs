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
    c.exe_deleted = match running.exe_links {
        Some(links) => links == 0,
        None => image.exe_deleted,
    };
    if let (Some(now), Some(then)) = (running.exe, image.exe_file) {
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
                Some(args) => {
                    c.exec_args = c.args.take();
                    c.args = Some(text_args(&args));
                    c.args_truncated = false;
                }
                None => c.gap(
                    "args",
                    "the process rewrote its arguments after exec and exited before the new ones could be read: these are the ones it started with",
                ),
            }
        }
    }
}
