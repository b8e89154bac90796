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
    pub const SEQ_MAP: &str = "SEQ";
    pub const PENDING_MAP: &str = "PENDING";
    pub const OFFSETS_GLOBAL: &str = "OFFSETS";
    pub const FILTER_GLOBAL: &str = "FILTER";
    pub const FILTER_PIDS_MAP: &str = "FILTER_PIDS";
    pub const FILTER_UIDS_MAP: &str = "FILTER_UIDS";
    pub const FILTER_CGROUPS_MAP: &str = "FILTER_CGROUPS";
    pub const FILTER_NETNS_MAP: &str = "FILTER_NETNS";
    pub const FILTER_PORTS_MAP: &str = "FILTER_PORTS";
    /// Every map of the kernel object. The kernel crate's `#[map(name = ...)]` attributes need
    /// literals; the daemon checks at load that each of these names exists.
    pub const MAPS: [&str; 9] = [
        EVENTS_MAP,
        COUNTERS_MAP,
        SEQ_MAP,
        PENDING_MAP,
        FILTER_PIDS_MAP,
        FILTER_UIDS_MAP,
        FILTER_CGROUPS_MAP,
        FILTER_NETNS_MAP,
        FILTER_PORTS_MAP,
    ];

    pub const BIND_ENTER: &str = "sys_enter_bind";
    pub const BIND_EXIT: &str = "sys_exit_bind";
    pub const LISTEN_ENTER: &str = "sys_enter_listen";
    pub const LISTEN_EXIT: &str = "sys_exit_listen";
    pub const ACCEPT_ENTER: &str = "sys_enter_accept";
    pub const ACCEPT_EXIT: &str = "sys_exit_accept";
    pub const ACCEPT4_ENTER: &str = "sys_enter_accept4";
    pub const ACCEPT4_EXIT: &str = "sys_exit_accept4";
    pub const CLOSE_TP_BTF: &str = "close_tp_btf";
    pub const CLOSE_TRACEPOINT: &str = "close_tracepoint";
    pub const PROCESS_EXEC: &str = "process_exec";
    pub const PROCESS_EXIT: &str = "process_exit";
    // Kernel-function hooks (kernels that allow fentry/fexit or kprobes).
    pub const BIND_FENTRY: &str = "bind_fentry";
    pub const BIND_FEXIT: &str = "bind_fexit";
    pub const BIND6_FENTRY: &str = "bind6_fentry";
    pub const BIND6_FEXIT: &str = "bind6_fexit";
    pub const LISTEN_FENTRY: &str = "listen_fentry";
    pub const LISTEN_FEXIT: &str = "listen_fexit";
    pub const ACCEPT_FENTRY: &str = "accept_fentry";
    pub const ACCEPT_FEXIT: &str = "accept_fexit";
    pub const BIND_KPROBE: &str = "bind_kprobe";
    pub const BIND_KRETPROBE: &str = "bind_kretprobe";
    pub const BIND6_KPROBE: &str = "bind6_kprobe";
    pub const BIND6_KRETPROBE: &str = "bind6_kretprobe";
    pub const LISTEN_KPROBE: &str = "listen_kprobe";
    pub const LISTEN_KRETPROBE: &str = "listen_kretprobe";
    pub const ACCEPT_KPROBE: &str = "accept_kprobe";
    pub const ACCEPT_KRETPROBE: &str = "accept_kretprobe";
}

/// What a record is about. Values are part of the ABI.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Bind = 1,
    Listen = 2,
    Accept = 3,
    Close = 4,
    /// A process image was replaced (execve): the daemon's process table learns exe and args.
    Exec = 5,
    /// A process ended: the daemon's process table can forget it.
    Exit = 6,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        Self::Bind,
        Self::Listen,
        Self::Accept,
        Self::Close,
        Self::Exec,
        Self::Exit,
    ];

    /// The socket event kinds (the others track processes); `--events` selects among these.
    pub const SOCKET: [EventKind; 4] = [Self::Bind, Self::Listen, Self::Accept, Self::Close];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Listen => "listen",
            Self::Accept => "accept",
            Self::Close => "close",
            Self::Exec => "exec",
            Self::Exit => "exit",
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
            5 => Ok(Self::Exec),
            6 => Ok(Self::Exit),
            other => Err(other),
        }
    }
}

/// `SockEvent::flags`: the socket was read (family, protocol, type, local and remote endpoint).
pub const FLAG_SOCK: u8 = 1 << 0;
/// `SockEvent::flags`: the sockaddr passed to bind(2) was read (req_family, req_addr, req_port).
pub const FLAG_REQ_ADDR: u8 = 1 << 1;
/// `ExecEvent::flags`: the argument list was longer than `ARGS_LEN` and was cut.
pub const FLAG_ARGS_TRUNCATED: u8 = 1 << 2;
/// `TaskInfo::flags`: the audit login uid was read (the kernel has CONFIG_AUDIT).
pub const TASK_LOGINUID: u8 = 1 << 0;
/// `TaskInfo::flags`: the task structure could be read (parent, start time, network namespace).
pub const TASK_READ: u8 = 1 << 1;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const TCP_CLOSE: i32 = 7;
pub const TCP_LISTEN: i32 = 10;

pub const TASK_COMM_LEN: usize = 16;
/// Bytes of the exec'd file name kept (as passed to execve).
pub const FILENAME_LEN: usize = 256;
/// Bytes of the NUL-separated argument list kept; a power of two (the kernel masks with it).
pub const ARGS_LEN: usize = 1024;
/// An offset the running kernel does not have (e.g. `loginuid` without CONFIG_AUDIT).
pub const ABSENT: u32 = u32::MAX;

/// First bytes of every ring-buffer record: the kind says which struct follows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    /// An `EventKind` value.
    pub kind: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
    pub _pad: u16,
    /// 0 on success, else the positive errno the syscall returned.
    pub errno: i32,
    /// The CPU that produced the record.
    pub cpu: u32,
    pub _pad2: u32,
    /// Per-CPU count of records this CPU tried to send before this one: a jump between two
    /// records of one CPU is the number lost in between (ring buffer full).
    pub seq: u64,
}

/// Who did it: captured in the kernel at the moment of the event, so it is exact even for
/// processes that are gone by the time userspace reads the record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskInfo {
    /// CLOCK_BOOTTIME nanoseconds (`bpf_ktime_get_boot_ns`).
    pub ts_ns: u64,
    /// Thread-group id (what userspace calls the pid).
    pub pid: u32,
    /// Kernel task id (what userspace calls the thread id).
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Thread-group id of the parent (real_parent).
    pub ppid: u32,
    /// Audit login uid (`TASK_LOGINUID`); u32::MAX when unset, as the kernel reports it.
    pub loginuid: u32,
    /// Process start, CLOCK_BOOTTIME ns (the thread-group leader's `start_boottime`):
    /// with `pid`, it names a process for good, even after the pid is reused.
    pub start_ns: u64,
    /// The parent's start time, naming the parent the same way.
    pub parent_start_ns: u64,
    /// cgroup v2 id (`bpf_get_current_cgroup_id`): the inode of the cgroup's directory.
    pub cgroup_id: u64,
    /// Inode of the task's network namespace (as in /proc/PID/ns/net).
    pub netns: u32,
    /// `TASK_*` bits.
    pub flags: u8,
    pub _pad: [u8; 3],
    pub comm: [u8; TASK_COMM_LEN],
}

/// One socket event (bind, listen, accept, close).
///
/// Addresses are in network byte order as the kernel stores them; an IPv4 address fills the first
/// four bytes. Ports are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockEvent {
    pub header: RecordHeader,
    pub task: TaskInfo,
    /// The file descriptor the syscall worked on (for accept: the new one), -1 if none.
    pub fd: i32,
    /// listen(2)'s backlog argument.
    pub backlog: u32,
    /// IP protocol number (6 TCP, 17 UDP, 262 MPTCP, ...) when `FLAG_SOCK` is set.
    pub protocol: u16,
    /// SOCK_STREAM, SOCK_DGRAM, ... when `FLAG_SOCK` is set.
    pub sock_type: u16,
    /// Socket family (AF_INET / AF_INET6) when `FLAG_SOCK` is set.
    pub family: u8,
    /// Family of the sockaddr given to bind(2) when `FLAG_REQ_ADDR` is set.
    pub req_family: u8,
    pub local_port: u16,
    pub remote_port: u16,
    pub req_port: u16,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub req_addr: [u8; 16],
    pub _pad: u32,
    /// The socket's inode number (as in /proc/PID/fd and sock_diag), 0 if unknown.
    pub inode: u64,
    /// accept: the inode of the listening socket the connection came from, 0 if unknown.
    pub listener_inode: u64,
}

/// A successful execve: the new image's file name and arguments, as the kernel saw them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: RecordHeader,
    pub task: TaskInfo,
    /// Bytes used in `filename` (without the NUL).
    pub filename_len: u16,
    /// Bytes used in `args`: NUL-separated, as in /proc/PID/cmdline.
    pub args_len: u16,
    pub _pad: u32,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
}

/// A process (thread group leader) exiting.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    pub header: RecordHeader,
    pub task: TaskInfo,
}

const _: () = assert!(core::mem::size_of::<RecordHeader>() == 24);
const _: () = assert!(core::mem::size_of::<TaskInfo>() == 80);
const _: () = assert!(core::mem::size_of::<SockEvent>() == 192);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 1392);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 104);

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
    /// Kernel-function hooks: the `struct sock *` (listen, accept) or `struct socket *` (bind)
    /// the call is about.
    pub sock: u64,
}
const _: () = assert!(core::mem::size_of::<Pending>() == 40);

/// Which filters the kernel applies, set by the daemon before load. A set bit in `active` means
/// "only what is in the matching FILTER_* map"; `kinds` has bit `1 << kind` for each socket event
/// kind to report (process-tracking records are never filtered by kind).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    pub active: u32,
    pub kinds: u32,
    /// portwatch's own tgid: its activity is never reported.
    pub self_tgid: u32,
    pub _pad: u32,
}

impl FilterConfig {
    /// Whether `--events` selected `kind`.
    #[inline(always)]
    pub const fn selects(&self, kind: EventKind) -> bool {
        self.kinds & (1 << kind as u32) != 0
    }

    /// The rule of every value filter, in the kernel and for the snapshot alike: an inactive
    /// filter (`filter::*` bit clear) lets everything through, an active one only what is
    /// `listed`.
    #[inline(always)]
    pub fn passes(&self, filter: u32, listed: impl FnOnce() -> bool) -> bool {
        self.active & filter == 0 || listed()
    }
}

pub mod filter {
    pub const PIDS: u32 = 1 << 0;
    pub const UIDS: u32 = 1 << 1;
    pub const CGROUPS: u32 = 1 << 2;
    pub const NETNS: u32 = 1 << 3;
    pub const PORTS: u32 = 1 << 4;
    /// Entries per filter map.
    pub const MAX_ENTRIES: u32 = 1024;
}

/// Indices into the per-CPU `COUNTERS` array.
pub mod counters {
    use super::EventKind;

    /// Slots per event kind in each per-kind range (kind values are 1..=KIND_SLOTS).
    pub const KIND_SLOTS: u32 = 8;
    /// Ring buffer full: one slot per event kind (`LOST_BASE + kind - 1`).
    pub const LOST_BASE: u32 = 0;
    /// Enter hook could not store its in-flight syscall (map full): the exit event is lost.
    pub const PENDING_FULL_BASE: u32 = KIND_SLOTS;
    /// Reading a socket failed; the event was sent without the socket fields.
    pub const SOCK_READ_FAILED: u32 = 2 * KIND_SLOTS;
    /// Reading the task failed; the event was sent without parent, start time or netns.
    pub const TASK_READ_FAILED: u32 = 2 * KIND_SLOTS + 1;
    pub const COUNT: u32 = 2 * KIND_SLOTS + 2;

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
    // struct task_struct: files, process identity, namespaces, memory map
    pub task_files: u32,
    pub task_tgid: u32,
    pub task_group_leader: u32,
    pub task_real_parent: u32,
    pub task_start_boottime: u32,
    /// `ABSENT` without CONFIG_AUDIT.
    pub task_loginuid: u32,
    pub task_nsproxy: u32,
    pub nsproxy_net_ns: u32,
    /// struct net.ns.inum
    pub net_ns_inum: u32,
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    // struct files_struct / fdtable / file / socket
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
    /// sock.sk_socket, and where the socket's inode number is from a `struct socket *`:
    /// socket_alloc.vfs_inode.i_ino relative to socket_alloc.socket.
    pub sk_socket: u32,
    pub socket_alloc_socket: u32,
    pub socket_alloc_inode: u32,
    pub inode_ino: u32,
    /// sock.sk_max_ack_backlog: the listen backlog, for kernel-function listen hooks.
    pub sk_max_ack_backlog: u32,
    /// struct pt_regs (user registers at syscall entry): the syscall number and first argument,
    /// which give kernel-function hooks the descriptor of a bind(2) or listen(2).
    pub pt_regs_orig_ax: u32,
    pub pt_regs_di: u32,
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
    pub tp_iss_skaddr: u32,
    // sched/sched_process_exec tracepoint record
    pub tp_exec_filename: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), only integers and byte arrays, no implicit padding.
    unsafe impl aya::Pod for super::SockEvent {}
    unsafe impl aya::Pod for super::ExecEvent {}
    unsafe impl aya::Pod for super::ExitEvent {}
    unsafe impl aya::Pod for super::Pending {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FilterConfig {}
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
        assert_eq!(EventKind::try_from(7), Err(7));
    }

    #[test]
    fn counter_slots_are_distinct_and_in_range() {
        let mut slots = [0u32; 14];
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            slots[i] = counters::lost(kind);
            slots[6 + i] = counters::pending_full(kind);
        }
        slots[12] = counters::SOCK_READ_FAILED;
        slots[13] = counters::TASK_READ_FAILED;
        for (i, a) in slots.iter().enumerate() {
            assert!(*a < counters::COUNT);
            assert!(slots[i + 1..].iter().all(|b| b != a), "slot {a} used twice");
        }
    }
}
