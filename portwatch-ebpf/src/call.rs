//! The in-flight call shared by the bind, listen and accept hooks: the entry program stores what
//! the call was asked in `PENDING` under the thread id (the close hook relies on it to tell a
//! failed listen from a close), and the exit program takes it back, adds the result and what
//! the socket looks like after the call, and sends one record. These are the bodies the
//! attach types share; each hook's file holds its programs.
use aya_ebpf::programs::{FExitContext, RetProbeContext, TracePointContext};
use portwatch_common::{EventKind, Pending, SockEvent};

use crate::{
    diag::At,
    emit::{add_call, concerns_inet, init_event, read_sock, send},
    filter::task_allowed,
    kernel::{call_path, sock_of_fd, sock_of_socket},
    maps::{offset, offsets_valid, take},
};

/// x86_64 syscall numbers, to find the descriptor of a bind(2) or listen(2).
pub const SYS_BIND: u64 = 49;
pub const SYS_LISTEN: u64 = 50;

/// The in-flight record of a `kind` call on `sock` (no descriptor yet), or None when this task's
/// calls of that kind are filtered out.
#[inline(always)]
pub fn watched_call(kind: EventKind, sock: *const u8) -> Option<Pending> {
    if !offsets_valid() || !task_allowed(Some(kind)) {
        return None;
    }
    let mut pending: Pending = unsafe { core::mem::zeroed() };
    pending.kind = kind as u8;
    pending.fd = -1;
    pending.sock = sock as u64;
    Some(pending)
}

// --- kernel functions: the exit of bind and listen ------------------------------------------------

/// The exit of a bind or listen function, which returns 0 or a negative errno.
#[inline(always)]
pub fn call_fexit(ctx: &FExitContext, kind: EventKind) -> i32 {
    if let Ok(ret) = ctx.ret::<i32>() {
        exit_call(kind, i64::from(ret), At::Fentry);
    }
    0
}

#[inline(always)]
pub fn call_kretprobe(ctx: &RetProbeContext, kind: EventKind) -> u32 {
    exit_call(kind, i64::from(ctx.ret::<i32>()), At::Kprobe);
    0
}

#[inline(always)]
fn exit_call(kind: EventKind, ret: i64, at: At) {
    // None: the entry happened before we attached, or was not ours.
    let Some(pending) = take(kind) else {
        return;
    };
    if !offsets_valid() {
        return;
    }
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, kind);
    add_call(ev, &pending, ret);
    ev.via = call_path();
    let sock = pending.sock as *const u8;
    let sk = match kind {
        EventKind::Bind => sock_of_socket(sock),
        _ => Ok(sock),
    };
    read_sock(ev, sk);
    if concerns_inet(ev) {
        send(ev, kind, at);
    }
}

// --- syscall tracepoints: the exit of bind(2) and listen(2) -----------------------------------------

/// The exit side of bind and listen: takes the stored arguments and sends the record.
// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
pub fn try_exit(ctx: &TracePointContext, kind: EventKind) -> Result<(), i64> {
    // None: the enter happened before we attached, or was not ours.
    let Some(pending) = take(kind) else {
        return Ok(());
    };
    if !offsets_valid() {
        return Ok(());
    }
    let ret: i64 = unsafe { ctx.read_at(offset!(tp_exit_ret)) }.map_err(i64::from)?;
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, kind);
    add_call(ev, &pending, ret);
    read_sock(ev, sock_of_fd(pending.fd));
    if concerns_inet(ev) {
        send(ev, kind, At::Tracepoint);
    }
    Ok(())
}
