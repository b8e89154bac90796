//! The ABI between portwatch's kernel programs and its daemon.
//!
//! Everything that crosses the kernel/user boundary is defined here once: the record the kernel
//! pushes through the ring buffer, the offsets the daemon hands to the kernel before load, the
//! indices of the counters the kernel bumps, and the names of maps and programs.
//! All types are `#[repr(C)]`, `Copy`, with explicit padding and compile-time size checks.
#![no_std]

/// Map and program names (the daemon looks them up by these).
pub mod names {
    pub const EVENTS_MAP: &str = "EVENTS";
    pub const COUNTERS_MAP: &str = "COUNTERS";
    pub const PENDING_MAP: &str = "PENDING";
    pub const OFFSETS_GLOBAL: &str = "OFFSETS";

    pub const BIND_ENTER: &str = "sys_enter_bind";
    pub const BIND_EXIT: &str = "sys_exit_bind";
    pub const LISTEN_ENTER: &str = "sys_enter_listen";
    pub const LISTEN_EXIT: &str = "sys_exit_listen";
    pub const ACCEPT_EXIT: &str = "sys_exit_accept";
    pub const ACCEPT4_EXIT: &str = "sys_exit_accept4";
    pub const CLOSE_TP_BTF: &str = "close_tp_btf";
    pub const CLOSE_TRACEPOINT: &str = "close_tracepoint";
}

/// What a record is about. Values are part of the ABI.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Bind = 1,
    Listen = 2,
    Accept = 3,
    Close = 4,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [Self::Bind, Self::Listen, Self::Accept, Self::Close];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Listen => "listen",
            Self::Accept => "accept",
            Self::Close => "close",
        }
    }
}

impl TryFrom<u8> for EventKind {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            1 => Ok(Self::Bind),
            2 => Ok(Self::Listen),
            3 => Ok(Self::Accept),
            4 => Ok(Self::Close),
            other => Err(other),
        }
    }
}

/// `RawEvent::flags`: the socket was read (family, protocol, type, local and remote endpoint).
pub const FLAG_SOCK: u8 = 1 << 0;
/// `RawEvent::flags`: the sockaddr passed to bind(2) was read (req_family, req_addr, req_port).
pub const FLAG_REQ_ADDR: u8 = 1 << 1;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const TCP_CLOSE: i32 = 7;
pub const TCP_LISTEN: i32 = 10;

pub const TASK_COMM_LEN: usize = 16;

/// One fixed-size record per socket event, written by the kernel into the ring buffer.
///
/// Addresses are in network byte order as the kernel stores them; an IPv4 address fills the first
/// four bytes. Ports are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawEvent {
    /// CLOCK_BOOTTIME nanoseconds (`bpf_ktime_get_boot_ns`).
    pub ts_ns: u64,
    /// Thread-group id (what userspace calls the pid).
    pub pid: u32,
    /// Kernel task id (what userspace calls the thread id).
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// An `EventKind` value.
    pub kind: u8,
    /// Socket family (AF_INET / AF_INET6) when `FLAG_SOCK` is set.
    pub family: u8,
    /// Family of the sockaddr given to bind(2) when `FLAG_REQ_ADDR` is set.
    pub req_family: u8,
    pub flags: u8,
    /// IP protocol number (6 TCP, 17 UDP, 262 MPTCP, ...) when `FLAG_SOCK` is set.
    pub protocol: u16,
    /// SOCK_STREAM, SOCK_DGRAM, ... when `FLAG_SOCK` is set.
    pub sock_type: u16,
    /// 0 on success, else the positive errno the syscall returned.
    pub errno: i32,
    /// The file descriptor the syscall worked on (for accept: the new one), -1 if none.
    pub fd: i32,
    /// listen(2)'s backlog argument.
    pub backlog: u32,
    pub local_port: u16,
    pub remote_port: u16,
    pub req_port: u16,
    pub _pad1: u16,
    pub _pad2: u32,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub req_addr: [u8; 16],
    pub comm: [u8; TASK_COMM_LEN],
}

pub const RAW_EVENT_SIZE: usize = 120;
const _: () = assert!(core::mem::size_of::<RawEvent>() == RAW_EVENT_SIZE);

/// A syscall in flight, stored by the enter hook under the thread id, taken by the exit hook.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub kind: u8,
    pub req_family: u8,
    pub flags: u8,
    pub _pad0: u8,
    pub fd: i32,
    pub backlog: u32,
    pub req_port: u16,
    pub _pad1: u16,
    pub req_addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<Pending>() == 32);

/// Indices into the per-CPU `COUNTERS` array.
pub mod counters {
    use super::EventKind;

    /// Ring buffer full: one slot per event kind (`LOST_BASE + kind - 1`).
    pub const LOST_BASE: u32 = 0;
    /// Enter hook could not store its in-flight syscall (map full): the exit event is lost.
    pub const PENDING_FULL_BASE: u32 = 4;
    /// Reading a kernel structure failed; the event was sent without the socket fields.
    pub const SOCK_READ_FAILED: u32 = 8;
    pub const COUNT: u32 = 9;

    pub const fn lost(kind: EventKind) -> u32 {
        LOST_BASE + kind as u32 - 1
    }
    pub const fn pending_full(kind: EventKind) -> u32 {
        PENDING_FULL_BASE + kind as u32 - 1
    }
}

/// Where to find things in the running kernel's structures and tracepoint records, in bytes.
///
/// Filled in by the daemon from `/sys/kernel/btf/vmlinux` and tracefs format files before the
/// programs load; the kernel programs never hard-code an offset. A zero `valid` means "not set"
/// and makes every kernel program bail out instead of reading garbage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub valid: u32,
    // struct task_struct / files_struct / fdtable / file / socket
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_file: u32,
    pub socket_sk: u32,
    // struct sock (sock_common fields are given relative to struct sock)
    pub sk_family: u32,
    pub sk_num: u32,
    /// inet_sock.inet_sport (struct sock is inet_sock's first member)
    pub sk_sport: u32,
    pub sk_dport: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_protocol: u32,
    pub sk_type: u32,
    // syscall tracepoint records
    pub tp_enter_arg0: u32,
    pub tp_enter_arg1: u32,
    pub tp_enter_arg2: u32,
    pub tp_exit_ret: u32,
    // sock/inet_sock_set_state tracepoint record
    pub tp_iss_oldstate: u32,
    pub tp_iss_newstate: u32,
    pub tp_iss_sport: u32,
    pub tp_iss_family: u32,
    pub tp_iss_protocol: u32,
    pub tp_iss_saddr: u32,
    pub tp_iss_saddr_v6: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), only integers and byte arrays, no implicit padding.
    unsafe impl aya::Pod for super::RawEvent {}
    unsafe impl aya::Pod for super::Pending {}
    unsafe impl aya::Pod for super::KernelOffsets {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_round_trip_and_reject_unknown_values() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(kind as u8), Ok(kind));
        }
        assert_eq!(EventKind::try_from(0), Err(0));
        assert_eq!(EventKind::try_from(5), Err(5));
    }

    #[test]
    fn counter_slots_are_distinct_and_in_range() {
        let mut slots: [u32; 9] = [0; 9];
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            slots[i] = counters::lost(kind);
            slots[4 + i] = counters::pending_full(kind);
        }
        slots[8] = counters::SOCK_READ_FAILED;
        for (i, a) in slots.iter().enumerate() {
            assert!(*a < counters::COUNT);
            assert!(slots[i + 1..].iter().all(|b| b != a), "slot {a} used twice");
        }
    }
}
