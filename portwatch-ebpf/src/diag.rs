//! The programs' own diagnostics, for `portwatch doctor --verbose`: which program sent a record,
//! and why a socket or task could not be read. They go through aya-log, whose level global
//! (`AYA_LOG_LEVEL`) the daemon sets before load: off unless asked. `.rodata` is frozen at load,
//! so the verifier knows the level and drops every branch in here: the hot path runs none of it.
//! Every line starts with `pid N tid N:` so that a reader can keep its own processes' lines.
use aya_log_ebpf::{
    info,
    macro_support::{Level, level_enabled},
    warn,
};
use portwatch_common::{EventKind, SockEvent};

use crate::kernel::Why;

/// Each function here checks this first, before it reads anything for its line: with the
/// diagnostics off, what is left on the hot path is the load of the level (about 5
/// instructions, measured in the translated programs).
/// (aya-log's own check, which each statement repeats; the level is pinned with the crate.)
#[inline(always)]
fn on() -> bool {
    level_enabled(Level::Info)
}

/// The attach type of the program that sends a record, named as the daemon's hook table does.
#[derive(Clone, Copy)]
pub enum At {
    Fentry,
    Kprobe,
    TpBtf,
    Tracepoint,
    /// io_uring's BTF tracepoints (the `io_uring` hook).
    IoUring,
    Cgroup,
}

impl At {
    fn name(self) -> &'static str {
        match self {
            At::Fentry => "fentry",
            At::Kprobe => "kprobe",
            At::TpBtf => "tp_btf",
            At::Tracepoint => "tracepoint",
            At::IoUring => "io_uring tp_btf",
            At::Cgroup => "cgroup",
        }
    }
}

// Every string logged must be a constant: one the verifier cannot pin down has an unknown
// length, and each of those multiplies the paths it walks (past its million-instruction
// limit). `at` is a constant at every call site; `kind` is not in io_uring's completion, so
// each kind gets its own statement.

/// Expands `$log` once per event kind, with `$name` bound to the kind's name as a literal.
macro_rules! per_kind {
    ($kind:expr, $name:ident => $log:expr) => {
        match $kind {
            EventKind::Bind => {
                let $name = "bind";
                $log
            }
            EventKind::Listen => {
                let $name = "listen";
                $log
            }
            EventKind::Accept => {
                let $name = "accept";
                $log
            }
            EventKind::Close => {
                let $name = "close";
                $log
            }
            EventKind::Exec | EventKind::Exit => {}
        }
    };
}

/// `ev` went into the ring buffer.
#[inline(always)]
pub fn sent(ev: &SockEvent, kind: EventKind, at: At) {
    if !on() {
        return;
    }
    let (pid, tid, fd, port, errno) = (
        ev.task.pid,
        ev.task.tid,
        ev.fd,
        ev.local_port,
        ev.header.errno,
    );
    per_kind!(kind, name => info!(
        &(),
        "pid {} tid {}: {} sent by the {} program, fd {} port {} errno {}",
        pid,
        tid,
        name,
        at.name(),
        fd,
        port,
        errno
    ));
}

/// `ev` was dropped: the ring buffer was full (counted as lost).
#[inline(always)]
pub fn ring_full(ev: &SockEvent, kind: EventKind, at: At) {
    if !on() {
        return;
    }
    let (pid, tid) = (ev.task.pid, ev.task.tid);
    per_kind!(kind, name => warn!(
        &(),
        "pid {} tid {}: {} from the {} program lost: the ring buffer is full",
        pid,
        tid,
        name,
        at.name()
    ));
}

/// The socket of `ev` could not be read (counted as `sock_read_failed`); the record goes out
/// without its socket fields.
#[inline(always)]
pub fn sock_unreadable(ev: &SockEvent, why: Why) {
    if !on() {
        return;
    }
    let (pid, tid, fd) = (ev.task.pid, ev.task.tid, ev.fd);
    // One statement per reason: each logs a constant string (see above).
    match why {
        Why::Fault => warn!(
            &(),
            "pid {} tid {}: socket of fd {} unreadable: a kernel read faulted", pid, tid, fd
        ),
        Why::BadFd => warn!(
            &(),
            "pid {} tid {}: socket of fd {} unreadable: the descriptor is not in the task's table",
            pid,
            tid,
            fd
        ),
        Why::NoFile => warn!(
            &(),
            "pid {} tid {}: socket of fd {} unreadable: no file behind the descriptor",
            pid,
            tid,
            fd
        ),
        Why::NotSocket => warn!(
            &(),
            "pid {} tid {}: socket of fd {} unreadable: the file is not a socket", pid, tid, fd
        ),
        Why::Gone => warn!(
            &(),
            "pid {} tid {}: socket of fd {} unreadable: the socket is already released",
            pid,
            tid,
            fd
        ),
    }
}

/// The current task's parent, start times or namespace could not be read (`task_read_failed`).
#[inline(always)]
pub fn task_unreadable(pid: u32, tid: u32, why: Why) {
    if !on() {
        return;
    }
    match why {
        Why::Fault => warn!(
            &(),
            "pid {} tid {}: task unreadable: a kernel read faulted", pid, tid
        ),
        _ => warn!(
            &(),
            "pid {} tid {}: task unreadable: it is exiting", pid, tid
        ),
    }
}
