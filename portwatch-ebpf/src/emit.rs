//! Building and sending records: the task context every record carries, the decision whether a
//! socket record concerns an inet socket, and loss counting when the ring buffer is full.
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel, bpf_probe_read_user,
    generated::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
};
use portwatch_common::{
    AF_INET, AF_INET6, EventKind, FLAG_REQ_ADDR, FLAG_SOCK, IMAGE_ARGS, IMAGE_EXE, IMAGE_UNLINKED,
    Pending, SockEvent, TASK_READ, TaskInfo, counters,
};

use crate::{
    diag::{self, At},
    filter::place_allowed,
    flood,
    kernel::{ReadError, fill_from_sock, read_task},
    maps::{EVENTS, bump, room_for_bulk, stamp, wakeup_flags},
};

/// Fills `*p` with zero bytes, 8 at a time. `core::mem::zeroed()` becomes a call of aya-ebpf's
/// `memset`, a byte loop of 5 instructions per byte: about 1,000 instructions for a socket record,
/// on every record. Volatile stores, so LLVM cannot turn them back into that call.
///
/// # Safety
/// `p` is valid for writes of a `T`.
#[inline(always)]
pub unsafe fn zero<T>(p: *mut T) {
    const { assert!(size_of::<T>() % 8 == 0 && align_of::<T>() >= 8) };
    let words = p.cast::<u64>();
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: within `*p`, 8-aligned (asserted above).
        unsafe { words.add(i).write_volatile(0) };
    }
}

/// `zeroed!(ev: SockEvent)`: `ev` is a `&mut SockEvent` to a record of zero bytes on the stack,
/// built in place: a value returned from a function would be a second copy, and two do not fit
/// in the 512-byte stack.
macro_rules! zeroed {
    ($name:ident: $t:ty) => {
        let mut $name = core::mem::MaybeUninit::<$t>::uninit();
        // SAFETY: a local, written whole.
        unsafe { $crate::emit::zero($name.as_mut_ptr()) };
        // SAFETY: every byte is written; the record types are plain integers and arrays.
        let $name: &mut $t = unsafe { $name.assume_init_mut() };
    };
}
pub(crate) use zeroed;

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
    // Straight into the (zeroed) record: aya's wrapper would fill a buffer of its own, then copy.
    // SAFETY: the helper writes at most 16 bytes, NUL-padded.
    unsafe { aya_ebpf::helpers::generated::bpf_get_current_comm(t.comm.as_mut_ptr().cast(), 16) };
    match read_task(t) {
        Ok(()) => t.flags |= TASK_READ,
        Err(ReadError(why)) => {
            bump(counters::TASK_READ_FAILED);
            diag::task_unreadable(t.pid, t.tid, why);
        }
    }
}

/// Makes `ev` (all zero) a socket record of `kind` for the current task, with the task context.
/// Filled in place, never returned by value: a second copy of the record on the stack would not
/// fit in the 512 bytes older kernels (6.1) allow a program and the subprograms it calls.
#[inline(always)]
pub fn init_event(ev: &mut SockEvent, kind: EventKind) {
    ev.header.kind = kind as u8;
    ev.fd = -1;
    fill_task(&mut ev.task);
}

#[inline(always)]
pub fn is_inet(family: u8) -> bool {
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

/// Where a `struct sockaddr` lives: a syscall's argument (user memory) or a kernel function's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    User,
    Kernel,
}

#[inline(always)]
fn read_in<T>(memory: Memory, ptr: *const u8) -> Result<T, i64> {
    match memory {
        Memory::User => unsafe { bpf_probe_read_user(ptr.cast::<T>()) },
        Memory::Kernel => unsafe { bpf_probe_read_kernel(ptr.cast::<T>()) },
    }
    .map_err(i64::from)
}

/// Copies the address a bind asked for into `p`. False when it is not an IPv4/IPv6 address
/// (unix, netlink, ...): not ours. A sockaddr that cannot be read (EFAULT) leaves `p` without
/// it; the exit event then comes from the socket alone.
#[inline(always)]
pub fn requested_address(
    p: &mut Pending,
    uaddr: *const u8,
    addrlen: u64,
    memory: Memory,
) -> Result<bool, i64> {
    if uaddr.is_null() || addrlen < 2 {
        return Ok(true);
    }
    let Ok(family) = read_in::<u16>(memory, uaddr) else {
        return Ok(true);
    };
    match family {
        // struct sockaddr_in: family, port (be16), address at +4
        AF_INET if addrlen >= 8 => {
            let addr: [u8; 4] = read_in(memory, uaddr.wrapping_add(4))?;
            p.req_addr[..4].copy_from_slice(&addr);
        }
        // struct sockaddr_in6: family, port (be16), flowinfo, address at +8
        AF_INET6 if addrlen >= 24 => {
            p.req_addr = read_in(memory, uaddr.wrapping_add(8))?;
        }
        AF_INET | AF_INET6 => {}
        _ => return Ok(false),
    }
    let port: u16 = read_in(memory, uaddr.wrapping_add(2))?;
    p.req_port = u16::from_be(port);
    p.req_family = family as u8;
    p.flags |= FLAG_REQ_ADDR;
    Ok(true)
}

/// Completes the record of a finished bind or listen with what was asked (`p`) and the result
/// (`ret`, a negative errno on failure). The socket fields are the caller's to fill.
#[inline(always)]
pub fn add_call(ev: &mut SockEvent, p: &Pending, ret: i64) {
    ev.fd = p.fd;
    ev.header.errno = if ret < 0 { (-ret) as i32 } else { 0 };
    ev.header.flags = p.flags;
    ev.backlog = p.backlog;
    ev.req_family = p.req_family;
    ev.req_port = p.req_port;
    ev.req_addr = p.req_addr;
}

/// Fills the socket fields from `sk`; a socket that a successful call used but that cannot be
/// read is counted (the record still goes out, without socket fields).
#[inline(always)]
pub fn read_sock(ev: &mut SockEvent, sk: Result<*const u8, ReadError>) {
    let read = match sk {
        Ok(sk) => fill_from_sock(sk, ev),
        Err(e) => Err(e),
    };
    if let Err(ReadError(why)) = read {
        if ev.header.errno == 0 {
            sock_unreadable(ev, why);
        }
    }
}

/// Counts a socket that should have been readable and was not.
#[inline(always)]
pub fn sock_unreadable(ev: &SockEvent, why: crate::kernel::Why) {
    bump(counters::SOCK_READ_FAILED);
    diag::sock_unreadable(ev, why);
}

/// Sends `ev` unless the namespace or port filters drop it. A listener birth past its process's
/// flood limit is shed (counted); any other record finds the ring full at three quarters, so
/// births always find room. A full ring buffer is counted per kind, never silent. `at`: the
/// sending program's attach type, for the diagnostics.
#[inline(always)]
pub fn send(ev: &mut SockEvent, kind: EventKind, at: At) {
    // The port the record is about: the bound one, else (a failed bind) the requested one.
    let port = if ev.header.flags & FLAG_SOCK != 0 && ev.local_port != 0 {
        ev.local_port
    } else {
        ev.req_port
    };
    if !place_allowed(ev.task.netns, Some(port)) {
        return;
    }
    // What runs now, for the calls a process makes itself (a close may come from elsewhere);
    // read only for a record that passed the filters. A failed read leaves its flag clear:
    // the daemon then relies on what it saw at exec.
    // Straight into the record's slot, nothing more on the stack (it is at 6.1's limit).
    if kind != EventKind::Close {
        use crate::kernel::image::{read_args, read_exe};
        let mut flags = 0;
        if let Ok((ino, unlinked, _)) = read_exe() {
            ev.image_slot(kind)[..8].copy_from_slice(&ino.to_ne_bytes());
            flags |= IMAGE_EXE | if unlinked { IMAGE_UNLINKED } else { 0 };
        }
        if let Ok(hash) = read_args() {
            ev.image_slot(kind)[8..].copy_from_slice(&hash.to_ne_bytes());
            flags |= IMAGE_ARGS;
        }
        ev.header.image_flags = flags;
    }
    let birth = flood::is_birth(ev, kind);
    if birth && !flood::admit(ev, kind) {
        // Counted, not numbered: the daemon numbers shed births when it reports them.
        bump(counters::shed(kind));
        return;
    }
    stamp(&mut ev.header);
    if (birth || room_for_bulk()) && EVENTS.output::<SockEvent>(&*ev, wakeup_flags()).is_ok() {
        diag::sent(ev, kind, at);
    } else {
        bump(counters::lost(kind));
        diag::ring_full(ev, kind, at);
    }
}
