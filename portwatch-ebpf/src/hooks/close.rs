//! A TCP listener leaving LISTEN (its port goes away), from `inet_sock_set_state`.
//!
//! Two programs for the same hook, chosen by the daemon's hook table: the BTF tracepoint gives the
//! `struct sock *` itself; the classic tracepoint gives the same facts as record fields and is the
//! fallback. Both fire in the context of the process that closes the socket.
//!
//! A listen(2) that fails inside `inet_csk_listen_start` (port taken) also goes LISTEN → CLOSE;
//! that is not a close of a listener, and sys_exit_listen reports the failure, so a transition
//! seen while the same thread is inside listen(2) is skipped.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use portwatch_common::{EventKind, FLAG_SOCK, IPPROTO_TCP, SockEvent, TCP_CLOSE, TCP_LISTEN};

use crate::{
    diag::At,
    emit::{init_event, send, sock_unreadable},
    filter::task_allowed,
    kernel::{ReadError, fill_from_sock, socket_inode},
    maps::{PENDING, offset, offsets_valid},
};

fn inside_listen() -> bool {
    match unsafe { PENDING.get(bpf_get_current_pid_tgid()) } {
        Some(p) => p.kind == EventKind::Listen as u8,
        None => false,
    }
}

/// match-proto: trace_inet_sock_set_state(const struct sock *sk, const int oldstate, const int newstate)
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn close_tp_btf(ctx: BtfTracePointContext) -> i32 {
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    if old != TCP_LISTEN
        || new != TCP_CLOSE
        || !offsets_valid()
        || inside_listen()
        || !task_allowed(Some(EventKind::Close))
    {
        return 0;
    }
    let sk: *const u8 = ctx.arg(0);
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, EventKind::Close);
    match fill_from_sock(sk, ev) {
        Err(ReadError(why)) => sock_unreadable(ev, why),
        Ok(()) if ev.protocol != IPPROTO_TCP => return 0,
        Ok(()) => {}
    }
    send(ev, EventKind::Close, At::TpBtf);
    0
}

#[tracepoint]
pub fn close_tracepoint(ctx: TracePointContext) -> u32 {
    let _ = try_close_tracepoint(&ctx);
    0
}

// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
fn try_close_tracepoint(ctx: &TracePointContext) -> Result<(), i64> {
    if !offsets_valid() {
        return Ok(());
    }
    let read_i32 = |off: usize| unsafe { ctx.read_at::<i32>(off) }.map_err(i64::from);
    let read_u16 = |off: usize| unsafe { ctx.read_at::<u16>(off) }.map_err(i64::from);
    if read_i32(offset!(tp_iss_oldstate))? != TCP_LISTEN
        || read_i32(offset!(tp_iss_newstate))? != TCP_CLOSE
        || read_u16(offset!(tp_iss_protocol))? != IPPROTO_TCP
        || inside_listen()
        || !task_allowed(Some(EventKind::Close))
    {
        return Ok(());
    }
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, EventKind::Close);
    let family = read_u16(offset!(tp_iss_family))?;
    ev.family = family as u8;
    ev.protocol = IPPROTO_TCP;
    ev.sock_type = 1; // SOCK_STREAM: TCP
    ev.local_port = read_u16(offset!(tp_iss_sport))?;
    if family == portwatch_common::AF_INET {
        let addr: [u8; 4] = unsafe { ctx.read_at(offset!(tp_iss_saddr)) }.map_err(i64::from)?;
        ev.local_addr[..4].copy_from_slice(&addr);
    } else {
        ev.local_addr = unsafe { ctx.read_at(offset!(tp_iss_saddr_v6)) }.map_err(i64::from)?;
    }
    ev.header.flags |= FLAG_SOCK;
    let sk: u64 = unsafe { ctx.read_at(offset!(tp_iss_skaddr)) }.map_err(i64::from)?;
    ev.inode = socket_inode(sk as *const u8);
    send(ev, EventKind::Close, At::Tracepoint);
    Ok(())
}
