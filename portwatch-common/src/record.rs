//! The records the kernel pushes through the ring buffer, and the in-flight call its entry
//! hooks keep for their exit hooks.
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

/// Whether a record makes a listener (a *birth*): a successful listen, or a successful bind of
/// a UDP socket (`protocol`: the socket's, when it was read). The one definition for the
/// kernel's flood limit and ring share and the daemon's output queues and listings.
#[inline(always)]
pub const fn is_birth(kind: EventKind, errno: i32, protocol: Option<u16>) -> bool {
    errno == 0
        && match kind {
            EventKind::Listen => true,
            EventKind::Bind => matches!(protocol, Some(IPPROTO_UDP)),
            _ => false,
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
/// Bound UDP sockets whose close the kernel can track at once (`BOUND_UDP`, not preallocated).
pub const BOUND_UDP_MAX: u32 = 1 << 18;
/// Tasks whose parent at fork the kernel remembers at once (`FORK_PARENT`, not preallocated):
/// more than a host has live.
pub const FORK_PARENTS_MAX: u32 = 1 << 18;

/// Who forked a task: the parent process and its start, as they were at the fork. A process
/// whose parent exits is reparented (to init or a subreaper); this keeps the real one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkParent {
    pub pid: u32,
    pub _pad: u32,
    pub start_ns: u64,
}

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
    /// `IMAGE_*` bits: what the record's `ImageId` holds.
    pub image_flags: u16,
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
    /// How the call was made: a `VIA_*` value.
    pub via: u8,
    pub _pad: [u8; 3],
    /// The socket's inode number (as in /proc/PID/fd and sock_diag), 0 if unknown.
    pub inode: u64,
    /// accept: the inode of the listening socket the connection came from, 0 if unknown.
    pub listener_inode: u64,
}

/// What a task runs at an event, read in the kernel: its executable file (`mm->exe_file`,
/// whatever name it was exec'd by) and a fingerprint of its arguments as they are now (a
/// process may rewrite them after exec). Its flags are the record header's `image_flags`.
/// In a socket record it takes the place of an address the record's kind has no use for
/// (`SockEvent::image_slot`): the record stays the size the 512-byte stack allows (with the
/// diagnostics on, 6.1's verifier refused 32 bytes more).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageId {
    /// The executable's inode number, when `IMAGE_EXE` is set.
    pub exe_ino: u64,
    /// `args_fingerprint` of the argument area, when `IMAGE_ARGS` is set.
    pub args_hash: u64,
}

/// `RecordHeader::image_flags`: the executable was read; it had no links left (deleted, or a
/// memfd); the arguments were read.
pub const IMAGE_EXE: u16 = 1 << 0;
pub const IMAGE_UNLINKED: u16 = 1 << 1;
pub const IMAGE_ARGS: u16 = 1 << 2;

impl SockEvent {
    /// Where a socket record of `kind` keeps its `ImageId`: a bind's peer address (a socket
    /// being bound has none), else the requested address (only a bind has one).
    #[inline(always)]
    pub fn image_slot(&mut self, kind: EventKind) -> &mut [u8; 16] {
        if matches!(kind, EventKind::Bind) {
            &mut self.remote_addr
        } else {
            &mut self.req_addr
        }
    }

    /// The `ImageId` of a socket record of `kind` and its `IMAGE_*` flags.
    pub fn image(&self, kind: EventKind) -> (ImageId, u16) {
        let slot = if matches!(kind, EventKind::Bind) {
            &self.remote_addr
        } else {
            &self.req_addr
        };
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&slot[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(b)
        };
        let image = ImageId {
            exe_ino: word(0),
            args_hash: word(1),
        };
        (image, self.header.image_flags)
    }
}

/// Bytes of the argument area the fingerprint covers.
pub const ARGS_HASHED: usize = 256;
const FINGERPRINT_PRIME: u64 = 0x0000_0100_0000_01b3;
const FINGERPRINT_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// The fingerprint of an argument area (NUL-separated, as in /proc/PID/cmdline): FNV-1a over
/// the 8-byte little-endian words of its first `ARGS_HASHED` bytes, zero-padded to that size
/// (a loop without branches, which keeps the kernel's verification linear), then the length.
/// The kernel computes it at each event; the daemon over the arguments it holds.
pub fn args_fingerprint(args: &[u8]) -> u64 {
    let mut padded = [0u8; ARGS_HASHED];
    let n = args.len().min(ARGS_HASHED);
    padded[..n].copy_from_slice(&args[..n]);
    let mut h = FINGERPRINT_BASIS;
    for chunk in padded.chunks(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(FINGERPRINT_PRIME);
    }
    (h ^ args.len() as u64).wrapping_mul(FINGERPRINT_PRIME)
}

/// One step of `args_fingerprint`, for the kernel's loop.
#[inline(always)]
pub const fn fingerprint_step(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(FINGERPRINT_PRIME)
}

/// The start of `args_fingerprint`, for the kernel's loop.
pub const FINGERPRINT_START: u64 = FINGERPRINT_BASIS;

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
    /// Bit N set: the new image's descriptor N (0 stdin, 1 stdout, 2 stderr) is an IPv4 or IPv6
    /// socket, the mark of a bind or reverse shell.
    pub stdio_sockets: u8,
    pub _pad: [u8; 3],
    /// The lowest of those sockets, when `stdio_sockets` is not 0.
    pub stdio: SockEnds,
    /// The new image's executable and its arguments' fingerprint (flags: the header's
    /// `image_flags`).
    pub image: ImageId,
    /// `EXE_PATH_FULL` when the walk of the executable's dentries reached a root.
    pub exe_path_flags: u32,
    pub _pad2: u32,
    /// The executable's path, one name per step from the file up to the process's root (mount
    /// points crossed: a crossing is a step with no name), each `exe_name_lens[i]` long (the
    /// name's own length: longer than `EXE_NAME_LEN` means cut). Fixed slots, so the verifier
    /// sees no offset that depends on earlier names.
    pub exe_name_lens: [u16; EXE_PATH_DEPTH],
    pub exe_names: [[u8; EXE_NAME_LEN]; EXE_PATH_DEPTH],
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
}

/// Steps of the executable's path walk at most (names and mount crossings).
pub const EXE_PATH_DEPTH: usize = 16;
/// Bytes kept of each name on the path.
pub const EXE_NAME_LEN: usize = 64;
/// `ExecEvent::exe_path_flags`: the walk reached a root.
pub const EXE_PATH_FULL: u32 = 1 << 0;
/// `ExecEvent::exe_path_flags`: that root is not the process's own but a detached mount's or a
/// pseudo file system's (a memfd's): the path is relative to it.
pub const EXE_PATH_DETACHED: u32 = 1 << 1;

/// A socket's family, protocol, type and both endpoints, as `SockEvent` has them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockEnds {
    /// AF_INET / AF_INET6; 0 when not read.
    pub family: u8,
    pub _pad: u8,
    pub protocol: u16,
    pub sock_type: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad2: [u8; 6],
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// The socket's inode number, 0 if unknown.
    pub inode: u64,
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
const _: () = assert!(core::mem::size_of::<ImageId>() == 16);
const _: () = assert!(core::mem::size_of::<SockEnds>() == 56);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 2528);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 104);

/// `SockEvent::via`: the call came from a syscall (or its path is unknown).
pub const VIA_SYSCALL: u8 = 0;
/// Through io_uring, run by the thread that submitted it.
pub const VIA_IO_URING: u8 = 1;
/// Through io_uring, run by the ring's SQPOLL thread (`iou-sqp-PID`).
pub const VIA_IO_URING_SQPOLL: u8 = 2;
/// Through io_uring, run by one of its worker threads (`iou-wrk-PID`).
pub const VIA_IO_URING_WORKER: u8 = 3;

/// io_uring opcodes (UAPI `IORING_OP_*`) of the calls portwatch reports.
pub const IORING_OP_ACCEPT: u8 = 13;
pub const IORING_OP_BIND: u8 = 56;
pub const IORING_OP_LISTEN: u8 = 57;

/// A syscall in flight, stored by the enter hook under the thread id, taken by the exit hook;
/// or an io_uring request, stored at submission under its address, taken at completion.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub kind: u8,
    pub req_family: u8,
    pub flags: u8,
    /// io_uring requests: the `VIA_*` of the submitting thread.
    pub via: u8,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_covers_the_first_bytes_and_the_length() {
        let a = args_fingerprint(b"python3\0srv.py\0");
        assert_eq!(a, args_fingerprint(b"python3\0srv.py\0"));
        assert_ne!(a, args_fingerprint(b"python3\0srv.pz\0"));
        assert_ne!(
            a,
            args_fingerprint(b"python3\0srv.py\0\0"),
            "the length counts"
        );
        let long = [b'x'; 300];
        let mut other = long;
        other[299] = b'y';
        assert_eq!(
            args_fingerprint(&long),
            args_fingerprint(&other),
            "past 256: not covered"
        );
        // The kernel's loop: every word of the zero-padded first ARGS_HASHED bytes.
        let mut padded = [0u8; ARGS_HASHED];
        padded[..15].copy_from_slice(b"python3\0srv.py\0");
        let mut h = FINGERPRINT_START;
        for w in padded.chunks(8) {
            h = fingerprint_step(h, u64::from_le_bytes(w.try_into().unwrap()));
        }
        assert_eq!(
            fingerprint_step(h, 15),
            a,
            "the kernel's steps give the same"
        );
    }

    #[test]
    fn event_kinds_round_trip_and_reject_unknown_values() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(kind as u8), Ok(kind));
        }
        assert_eq!(EventKind::try_from(0), Err(0));
        assert_eq!(EventKind::try_from(7), Err(7));
    }
}
