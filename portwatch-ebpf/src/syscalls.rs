//! bind(2), listen(2), accept(2) and accept4(2) through the `syscalls` tracepoints.
//!
//! The enter hook of bind and listen stores the arguments under the thread id; the exit hook takes
//! them back, adds the result and what the socket looks like after the call (the port the kernel
//! picked for a port-0 bind or an unbound listen), and sends one record. accept's enter hook keeps
//! the listening descriptor (to name the listener); its return value is the new descriptor, from
//! which both endpoints are read.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use portwatch_common::{EventKind, Pending, SockEvent};

use crate::{
    emit::{Memory, add_call, concerns_inet, init_event, read_sock, requested_address, send},
    filter::task_allowed,
    kernel::{sock_of_fd, socket_inode},
    maps::{offset, offsets_valid, remember, take},
};

// --- bind ---------------------------------------------------------------------------------------

/// match-proto: int bind(int fd, const struct sockaddr *addr, socklen_t addrlen)
#[tracepoint]
pub fn sys_enter_bind(ctx: TracePointContext) -> u32 {
    let _ = try_enter_bind(&ctx);
    0
}

// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
fn try_enter_bind(ctx: &TracePointContext) -> Result<(), i64> {
    if !offsets_valid() || !task_allowed(Some(EventKind::Bind)) {
        return Ok(());
    }
    let fd: u64 = unsafe { ctx.read_at(offset!(tp_enter_arg0)) }.map_err(i64::from)?;
    let uaddr: u64 = unsafe { ctx.read_at(offset!(tp_enter_arg1)) }.map_err(i64::from)?;
    let addrlen: u64 = unsafe { ctx.read_at(offset!(tp_enter_arg2)) }.map_err(i64::from)?;

    let mut pending: Pending = unsafe { core::mem::zeroed() };
    pending.kind = EventKind::Bind as u8;
    pending.fd = fd as i32;
    if requested_address(&mut pending, uaddr as *const u8, addrlen, Memory::User)? {
        remember(&pending, EventKind::Bind);
    }
    Ok(())
}

#[tracepoint]
pub fn sys_exit_bind(ctx: TracePointContext) -> u32 {
    let _ = try_exit(&ctx, EventKind::Bind);
    0
}

// --- listen -------------------------------------------------------------------------------------

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

// --- accept -------------------------------------------------------------------------------------

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
    let mut ev: SockEvent = unsafe { core::mem::zeroed() };
    init_event(&mut ev, EventKind::Accept);
    ev.fd = ret as i32;
    read_sock(&mut ev, sock_of_fd(ret as i32));
    if let Some(fd) = listening_fd {
        if let Ok(sk) = sock_of_fd(fd) {
            ev.listener_inode = socket_inode(sk);
        }
    }
    if concerns_inet(&ev) {
        send(&mut ev, EventKind::Accept);
    }
    Ok(())
}

// --- shared -------------------------------------------------------------------------------------

/// The exit side of bind and listen: takes the stored arguments and sends the record.
// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
fn try_exit(ctx: &TracePointContext, kind: EventKind) -> Result<(), i64> {
    // None: the enter happened before we attached, or was not ours.
    let Some(pending) = take(kind) else {
        return Ok(());
    };
    if !offsets_valid() {
        return Ok(());
    }
    let ret: i64 = unsafe { ctx.read_at(offset!(tp_exit_ret)) }.map_err(i64::from)?;
    let mut ev: SockEvent = unsafe { core::mem::zeroed() };
    init_event(&mut ev, kind);
    add_call(&mut ev, &pending, ret);
    read_sock(&mut ev, sock_of_fd(pending.fd));
    if concerns_inet(&ev) {
        send(&mut ev, kind);
    }
    Ok(())
}
