//! bind, listen and accept at the kernel functions that do the work, for kernels that allow
//! fentry/fexit (BTF trampolines) or kprobes: unlike the syscall tracepoints, they also see calls
//! that do not come through the syscalls (io_uring, in-kernel sockets).
//!
//! As with the tracepoints, the entry hook stores what the call was asked in `PENDING` under the
//! thread id (the close hook relies on it to tell a failed listen from a close) and the exit hook
//! adds the result and sends one record. fentry and kprobe entries share one body, as do fexit
//! and kretprobe exits; only the way arguments are read differs.
//!
//! Only the first argument and the return value are read, so both prototypes of
//! `inet_csk_accept` (its argument list changed in 6.10) work: fexit takes the return value with
//! `bpf_get_func_ret`, which does not depend on the argument count.
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use portwatch_common::{EventKind, Pending, SockEvent};

use crate::{
    emit::{Memory, add_call, concerns_inet, init_event, read_sock, requested_address, send},
    filter::task_allowed,
    kernel::{listen_backlog, sock_of_socket, socket_inode, syscall_fd},
    maps::{offsets_valid, remember, take},
};

/// x86_64 syscall numbers, to find the descriptor of a bind(2) or listen(2).
const SYS_BIND: u64 = 49;
const SYS_LISTEN: u64 = 50;

/// The in-flight record of a `kind` call on `sock` (no descriptor yet), or None when this task's
/// calls of that kind are filtered out.
#[inline(always)]
fn watched_call(kind: EventKind, sock: *const u8) -> Option<Pending> {
    if !offsets_valid() || !task_allowed(Some(kind)) {
        return None;
    }
    let mut pending: Pending = unsafe { core::mem::zeroed() };
    pending.kind = kind as u8;
    pending.fd = -1;
    pending.sock = sock as u64;
    Some(pending)
}

// --- bind ---------------------------------------------------------------------------------------

/// match-proto: int inet_bind(struct socket *sock, struct sockaddr *uaddr, int addr_len)
#[fentry(function = "inet_bind")]
pub fn bind_fentry(ctx: FEntryContext) -> i32 {
    bind_entry_fentry(&ctx)
}

/// match-proto: int inet6_bind(struct socket *sock, struct sockaddr *uaddr, int addr_len)
#[fentry(function = "inet6_bind")]
pub fn bind6_fentry(ctx: FEntryContext) -> i32 {
    bind_entry_fentry(&ctx)
}

#[fexit(function = "inet_bind")]
pub fn bind_fexit(ctx: FExitContext) -> i32 {
    call_fexit(&ctx, EventKind::Bind)
}

#[fexit(function = "inet6_bind")]
pub fn bind6_fexit(ctx: FExitContext) -> i32 {
    call_fexit(&ctx, EventKind::Bind)
}

#[kprobe]
pub fn bind_kprobe(ctx: ProbeContext) -> u32 {
    bind_entry_kprobe(&ctx)
}

#[kprobe]
pub fn bind6_kprobe(ctx: ProbeContext) -> u32 {
    bind_entry_kprobe(&ctx)
}

#[kretprobe]
pub fn bind_kretprobe(ctx: RetProbeContext) -> u32 {
    call_kretprobe(&ctx, EventKind::Bind)
}

#[kretprobe]
pub fn bind6_kretprobe(ctx: RetProbeContext) -> u32 {
    call_kretprobe(&ctx, EventKind::Bind)
}

/// inet_bind and inet6_bind share their prototype, so their programs share these bodies.
#[inline(always)]
fn bind_entry_fentry(ctx: &FEntryContext) -> i32 {
    let _ = enter_bind(ctx.arg(0), ctx.arg(1), ctx.arg::<i32>(2));
    0
}

#[inline(always)]
fn bind_entry_kprobe(ctx: &ProbeContext) -> u32 {
    if let (Some(sock), Some(uaddr), Some(len)) = (ctx.arg(0), ctx.arg(1), ctx.arg::<i32>(2)) {
        let _ = enter_bind(sock, uaddr, len);
    }
    0
}

// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
fn enter_bind(socket: *const u8, uaddr: *const u8, addrlen: i32) -> Result<(), i64> {
    let Some(mut pending) = watched_call(EventKind::Bind, socket) else {
        return Ok(());
    };
    pending.fd = syscall_fd(SYS_BIND);
    if requested_address(&mut pending, uaddr, addrlen.max(0) as u64, Memory::Kernel)? {
        remember(&pending, EventKind::Bind);
    }
    Ok(())
}

// --- listen -------------------------------------------------------------------------------------

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

// --- bind and listen: exit ----------------------------------------------------------------------

/// The exit of a bind or listen function, which returns 0 or a negative errno.
#[inline(always)]
fn call_fexit(ctx: &FExitContext, kind: EventKind) -> i32 {
    if let Ok(ret) = ctx.ret::<i32>() {
        exit_call(kind, i64::from(ret));
    }
    0
}

#[inline(always)]
fn call_kretprobe(ctx: &RetProbeContext, kind: EventKind) -> u32 {
    exit_call(kind, i64::from(ctx.ret::<i32>()));
    0
}

#[inline(always)]
fn exit_call(kind: EventKind, ret: i64) {
    // None: the entry happened before we attached, or was not ours.
    let Some(pending) = take(kind) else {
        return;
    };
    if !offsets_valid() {
        return;
    }
    let mut ev: SockEvent = unsafe { core::mem::zeroed() };
    init_event(&mut ev, kind);
    add_call(&mut ev, &pending, ret);
    let sock = pending.sock as *const u8;
    let sk = match kind {
        EventKind::Bind => sock_of_socket(sock),
        _ => Ok(sock),
    };
    read_sock(&mut ev, sk);
    if concerns_inet(&ev) {
        send(&mut ev, kind);
    }
}

// --- accept -------------------------------------------------------------------------------------

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
        exit_accept(newsk);
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
    exit_accept(ctx.ret());
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
fn exit_accept(newsk: *const u8) {
    let Some(pending) = take(EventKind::Accept) else {
        return;
    };
    // NULL: the accept failed (EAGAIN on non-blocking listeners above all): no connection.
    if newsk.is_null() || !offsets_valid() {
        return;
    }
    let mut ev: SockEvent = unsafe { core::mem::zeroed() };
    init_event(&mut ev, EventKind::Accept);
    read_sock(&mut ev, Ok(newsk));
    ev.listener_inode = socket_inode(pending.sock as *const u8);
    if concerns_inet(&ev) {
        send(&mut ev, EventKind::Accept);
    }
}
