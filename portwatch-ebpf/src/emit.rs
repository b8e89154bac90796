//! Building and sending records: the task context every record carries, the decision whether a
//! socket record concerns an inet socket, and loss counting when the ring buffer is full.
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
};
use portwatch_common::{
    AF_INET, AF_INET6, EventKind, FLAG_REQ_ADDR, FLAG_SOCK, SockEvent, TASK_READ, TaskInfo,
    counters,
};

use crate::{
    filter::place_allowed,
    kernel::read_task,
    maps::{EVENTS, bump, stamp, wakeup_flags},
};

/// Fills `t` with the current task's identity and context.
#[inline(always)]
pub fn fill_task(t: &mut TaskInfo) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    t.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    t.pid = (pid_tgid >> 32) as u32;
    t.tid = pid_tgid as u32;
    t.uid = uid_gid as u32;
    t.gid = (uid_gid >> 32) as u32;
    t.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    t.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    if read_task(t).is_ok() {
        t.flags |= TASK_READ;
    } else {
        bump(counters::TASK_READ_FAILED);
    }
}

/// A socket record for the current task with the task context filled and everything else zero.
#[inline(always)]
pub fn new_event(kind: EventKind) -> SockEvent {
    let mut ev: SockEvent = unsafe { core::mem::zeroed() };
    ev.header.kind = kind as u8;
    ev.fd = -1;
    fill_task(&mut ev.task);
    ev
}

fn is_inet(family: u8) -> bool {
    family as u16 == AF_INET || family as u16 == AF_INET6
}

/// Whether `ev` is about an IPv4/IPv6 socket and so worth sending. Unix, netlink and other
/// families are dropped here, in the kernel. When nothing could be read (a failed syscall on a
/// bad descriptor), the event is dropped unless the syscall succeeded.
#[inline(always)]
pub fn concerns_inet(ev: &SockEvent) -> bool {
    if ev.header.flags & FLAG_SOCK != 0 {
        is_inet(ev.family)
    } else if ev.header.flags & FLAG_REQ_ADDR != 0 {
        is_inet(ev.req_family)
    } else {
        ev.header.errno == 0
    }
}

/// Sends `ev` unless the namespace or port filters drop it; a full ring buffer is counted per
/// kind, never silent.
#[inline(always)]
pub fn send(ev: &mut SockEvent, kind: EventKind) {
    // The port the record is about: the bound one, else (a failed bind) the requested one.
    let port = if ev.header.flags & FLAG_SOCK != 0 && ev.local_port != 0 {
        ev.local_port
    } else {
        ev.req_port
    };
    if !place_allowed(ev.task.netns, Some(port)) {
        return;
    }
    stamp(&mut ev.header);
    if EVENTS.output::<SockEvent>(ev, wakeup_flags()).is_err() {
        bump(counters::lost(kind));
    }
}
