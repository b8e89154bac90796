//! listen: at `inet_csk_listen_start` (fentry/fexit, else kprobe/kretprobe), else at the
//! listen(2) tracepoints.
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, tracepoint},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use portwatch_common::{EventKind, Pending};

use crate::{
    call::{SYS_LISTEN, call_fexit, call_kretprobe, try_exit, watched_call},
    filter::task_allowed,
    kernel::{is_listening, listen_backlog, sock_of_fd, syscall_fd},
    maps::{offset, offsets_valid, remember},
};

// --- kernel functions ---------------------------------------------------------------------------

/// match-proto: int inet_csk_listen_start(struct sock *sk)
#[fentry(function = "inet_csk_listen_start")]
pub fn listen_fentry(ctx: FEntryContext) -> i32 {
    enter_listen(ctx.arg(0));
    0
}

#[fexit(function = "inet_csk_listen_start")]
pub fn listen_fexit(ctx: FExitContext) -> i32 {
    call_fexit(&ctx, EventKind::Listen)
}

#[kprobe]
pub fn listen_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg(0) {
        enter_listen(sk);
    }
    0
}

#[kretprobe]
pub fn listen_kretprobe(ctx: RetProbeContext) -> u32 {
    call_kretprobe(&ctx, EventKind::Listen)
}

#[inline(always)]
fn enter_listen(sk: *const u8) {
    let Some(mut pending) = watched_call(EventKind::Listen, sk) else {
        return;
    };
    pending.fd = syscall_fd(SYS_LISTEN);
    pending.backlog = listen_backlog(sk);
    remember(&pending, EventKind::Listen);
}

// --- syscall tracepoints -------------------------------------------------------------------------

/// match-proto: int listen(int fd, int backlog)
#[tracepoint]
pub fn sys_enter_listen(ctx: TracePointContext) -> u32 {
    let _ = try_enter_listen(&ctx);
    0
}

// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
fn try_enter_listen(ctx: &TracePointContext) -> Result<(), i64> {
    if !offsets_valid() || !task_allowed(Some(EventKind::Listen)) {
        return Ok(());
    }
    let fd: u64 = unsafe { ctx.read_at(offset!(tp_enter_arg0)) }.map_err(i64::from)?;
    let backlog: u64 = unsafe { ctx.read_at(offset!(tp_enter_arg1)) }.map_err(i64::from)?;
    // A listen(2) on a listening socket is no new listener; inet_csk_listen_start, where the
    // kernel-function hooks sit, does not run for it either.
    if sock_of_fd(fd as i32).is_ok_and(is_listening) {
        return Ok(());
    }
    let mut pending: Pending = unsafe { core::mem::zeroed() };
    pending.kind = EventKind::Listen as u8;
    pending.fd = fd as i32;
    pending.backlog = backlog as u32;
    remember(&pending, EventKind::Listen);
    Ok(())
}

#[tracepoint]
pub fn sys_exit_listen(ctx: TracePointContext) -> u32 {
    let _ = try_exit(&ctx, EventKind::Listen);
    0
}
