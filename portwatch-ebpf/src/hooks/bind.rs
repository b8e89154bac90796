//! bind: at `inet_bind`/`inet6_bind` (fentry/fexit, else kprobe/kretprobe), else at the
//! bind(2) tracepoints. The kernel functions also see binds that do not come through the
//! syscall (io_uring, in-kernel sockets); the tracepoints load everywhere.
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, tracepoint},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use portwatch_common::{EventKind, Pending};

use crate::{
    call::{SYS_BIND, call_fexit, call_kretprobe, try_exit, watched_call},
    emit::{Memory, requested_address},
    filter::task_allowed,
    kernel::syscall_fd,
    maps::{offset, offsets_valid, remember},
};

// --- kernel functions ---------------------------------------------------------------------------

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

// --- syscall tracepoints -------------------------------------------------------------------------

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
