//! accept: at `inet_csk_accept` (fentry/fexit, else kprobe/kretprobe), else at the accept(2)
//! and accept4(2) tracepoints.
//!
//! Only the first argument and the return value of `inet_csk_accept` are read, so both of its
//! prototypes (the argument list changed in 6.10) work: fexit takes the return value with
//! `bpf_get_func_ret`, which does not depend on the argument count.
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, tracepoint},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use portwatch_common::{EventKind, Pending, SockEvent};

use crate::{
    call::watched_call,
    diag::At,
    emit::{concerns_inet, init_event, read_sock, send},
    filter::task_allowed,
    kernel::{call_path, sock_of_fd, socket_inode},
    maps::{offset, offsets_valid, remember, take},
};

// --- kernel functions ---------------------------------------------------------------------------

/// match-proto: struct sock *inet_csk_accept(struct sock *sk, int flags, int *err, bool kern)
/// match-proto (6.10+): struct sock *inet_csk_accept(struct sock *sk, struct proto_accept_arg *arg)
#[fentry(function = "inet_csk_accept")]
pub fn accept_fentry(ctx: FEntryContext) -> i32 {
    enter_accept(ctx.arg(0));
    0
}

#[fexit(function = "inet_csk_accept")]
pub fn accept_fexit(ctx: FExitContext) -> i32 {
    if let Ok(newsk) = ctx.ret::<*const u8>() {
        exit_accept(newsk, At::Fentry);
    }
    0
}

#[kprobe]
pub fn accept_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg(0) {
        enter_accept(sk);
    }
    0
}

#[kretprobe]
pub fn accept_kretprobe(ctx: RetProbeContext) -> u32 {
    exit_accept(ctx.ret(), At::Kprobe);
    0
}

/// Remembers the listener, so the connection can be counted against it.
#[inline(always)]
fn enter_accept(listener: *const u8) {
    if let Some(pending) = watched_call(EventKind::Accept, listener) {
        remember(&pending, EventKind::Accept);
    }
}

/// The new connection's socket has no descriptor yet (accept(2) installs it afterwards), so
/// the record has no `fd` and no `inode`; `listener_inode` names its listener.
#[inline(always)]
fn exit_accept(newsk: *const u8, at: At) {
    let Some(pending) = take(EventKind::Accept) else {
        return;
    };
    // NULL: the accept failed (EAGAIN on non-blocking listeners above all): no connection.
    if newsk.is_null() || !offsets_valid() {
        return;
    }
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, EventKind::Accept);
    ev.via = call_path();
    read_sock(ev, Ok(newsk));
    ev.listener_inode = socket_inode(pending.sock as *const u8);
    if concerns_inet(ev) {
        send(ev, EventKind::Accept, at);
    }
}

// --- syscall tracepoints -------------------------------------------------------------------------

/// match-proto: int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    let _ = try_enter_accept(&ctx);
    0
}

/// match-proto: int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    let _ = try_enter_accept(&ctx);
    0
}

/// Remembers the listening descriptor, so the connection can be counted against its listener.
#[inline(always)]
fn try_enter_accept(ctx: &TracePointContext) -> Result<(), i64> {
    if !offsets_valid() || !task_allowed(Some(EventKind::Accept)) {
        return Ok(());
    }
    let fd: u64 = unsafe { ctx.read_at(offset!(tp_enter_arg0)) }.map_err(i64::from)?;
    let mut pending: Pending = unsafe { core::mem::zeroed() };
    pending.kind = EventKind::Accept as u8;
    pending.fd = fd as i32;
    remember(&pending, EventKind::Accept);
    Ok(())
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    let _ = try_exit_accept(&ctx);
    0
}

/// match-proto: int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    let _ = try_exit_accept(&ctx);
    0
}

// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
fn try_exit_accept(ctx: &TracePointContext) -> Result<(), i64> {
    // Take the listening fd first, so every path leaves the in-flight map clean.
    let listening_fd = take(EventKind::Accept).map(|p| p.fd);
    if !offsets_valid() || !task_allowed(Some(EventKind::Accept)) {
        return Ok(());
    }
    let ret: i64 = unsafe { ctx.read_at(offset!(tp_exit_ret)) }.map_err(i64::from)?;
    // Failed accepts (EAGAIN on non-blocking listeners above all) are not connections.
    if ret < 0 {
        return Ok(());
    }
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, EventKind::Accept);
    ev.fd = ret as i32;
    read_sock(ev, sock_of_fd(ret as i32));
    if let Some(fd) = listening_fd {
        if let Ok(sk) = sock_of_fd(fd) {
            ev.listener_inode = socket_inode(sk);
        }
    }
    if concerns_inet(ev) {
        send(ev, EventKind::Accept, At::Tracepoint);
    }
    Ok(())
}
