//! Building and sending records: the header every record shares, the decision whether a record
//! concerns an inet socket, and loss counting when the ring buffer is full.
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::bpf_ktime_get_boot_ns,
};
use portwatch_common::{
    AF_INET, AF_INET6, EventKind, FLAG_REQ_ADDR, FLAG_SOCK, RawEvent, counters,
};

use crate::maps::{EVENTS, bump};

/// A record for the current task with the header filled in and everything else zero.
#[inline(always)]
pub fn new_event(kind: EventKind) -> RawEvent {
    let mut ev: RawEvent = unsafe { core::mem::zeroed() };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    ev.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    ev.pid = (pid_tgid >> 32) as u32;
    ev.tid = pid_tgid as u32;
    ev.uid = uid_gid as u32;
    ev.gid = (uid_gid >> 32) as u32;
    ev.kind = kind as u8;
    ev.fd = -1;
    if let Ok(comm) = bpf_get_current_comm() {
        ev.comm = comm;
    }
    ev
}

fn is_inet(family: u8) -> bool {
    family as u16 == AF_INET || family as u16 == AF_INET6
}

/// Whether `ev` is about an IPv4/IPv6 socket and so worth sending. Unix, netlink and other
/// families are dropped here, in the kernel. When nothing could be read (a failed syscall on a
/// bad descriptor), the event is dropped unless the syscall succeeded.
#[inline(always)]
pub fn concerns_inet(ev: &RawEvent) -> bool {
    if ev.flags & FLAG_SOCK != 0 {
        is_inet(ev.family)
    } else if ev.flags & FLAG_REQ_ADDR != 0 {
        is_inet(ev.req_family)
    } else {
        ev.errno == 0
    }
}

/// Sends `ev`; a full ring buffer is counted per kind, never silent.
#[inline(always)]
pub fn send(ev: &RawEvent, kind: EventKind) {
    if EVENTS.output::<RawEvent>(ev, 0).is_err() {
        bump(counters::lost(kind));
    }
}
