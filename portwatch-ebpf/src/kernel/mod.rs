//! The one place that reads kernel structures. Offsets come from `maps::OFFSETS`, which the daemon
//! fills from the running kernel's BTF; sizes were checked there too, so the widths used here
//! (u16 family/port/protocol/type, u32 IPv4 address, 16-byte IPv6 address, ...) are the kernel's.
use aya_ebpf::helpers::{
    bpf_get_current_task, bpf_probe_read_kernel,
    generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
};
use portwatch_common::{
    ABSENT, AF_INET, AF_INET6, FLAG_SOCK, SockEnds, SockEvent, TASK_LOGINUID, TCP_LISTEN, TaskInfo,
    VIA_IO_URING, VIA_IO_URING_SQPOLL, VIA_IO_URING_WORKER, VIA_SYSCALL,
};

use crate::maps::offset;

/// A kernel read failed or a pointer did not lead where it should; which one, for the
/// diagnostics (`diag` says each in words).
#[derive(Clone, Copy)]
pub struct ReadError(pub Why);

#[derive(Clone, Copy)]
pub enum Why {
    /// bpf_probe_read_kernel faulted (a stale or wrong pointer, or a wrong offset).
    Fault,
    /// The descriptor is negative or past the task's table.
    BadFd,
    /// The descriptor or request has no file (closed meanwhile).
    NoFile,
    /// The file is not a socket (its private data does not point back to it).
    NotSocket,
    /// The socket has no `struct sock` (released), or the task no memory map (exiting).
    Gone,
}

#[inline(always)]
pub fn read<T>(ptr: *const u8) -> Result<T, ReadError> {
    unsafe { bpf_probe_read_kernel(ptr.cast::<T>()) }.map_err(|_| ReadError(Why::Fault))
}

pub mod image;

#[inline(always)]
pub(crate) fn current_task() -> *const u8 {
    unsafe { bpf_get_current_task() as *const u8 }
}

// A read that fails part-way clears what it had filled (the daemon ignores those fields
// without their flag anyway): every failure point then leaves the same state, so the verifier
// walks the rest of the program once, not once per failure point. With the diagnostics on,
// that is the difference between loading and passing its million-instruction limit.

/// Parent, process start times, login uid and network namespace of the current task.
#[inline(always)]
pub fn read_task(t: &mut TaskInfo) -> Result<(), ReadError> {
    let read = read_task_fields(t);
    if read.is_err() {
        t.ppid = 0;
        t.loginuid = 0;
        t.start_ns = 0;
        t.parent_start_ns = 0;
        t.netns = 0;
        t.flags &= !TASK_LOGINUID;
    }
    read
}

#[inline(always)]
fn read_task_fields(t: &mut TaskInfo) -> Result<(), ReadError> {
    let task = current_task();
    let leader: *const u8 = read(task.wrapping_add(offset!(task_group_leader)))?;
    t.start_ns = read(leader.wrapping_add(offset!(task_start_boottime)))?;
    let parent: *const u8 = read(leader.wrapping_add(offset!(task_real_parent)))?;
    let ppid: i32 = read(parent.wrapping_add(offset!(task_tgid)))?;
    t.ppid = ppid as u32;
    let parent_leader: *const u8 = read(parent.wrapping_add(offset!(task_group_leader)))?;
    t.parent_start_ns = read(parent_leader.wrapping_add(offset!(task_start_boottime)))?;
    // Reparented since (its parent exited): the parent that forked it, if the fork was seen.
    // The key is a copy on the stack: `t` may be ring buffer memory (the exec record is built
    // in place), which 6.1's verifier does not take as a map key.
    let pid: u32 = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    if let Some(f) = unsafe { crate::maps::FORK_PARENT.get(&pid) } {
        t.ppid = f.pid;
        t.parent_start_ns = f.start_ns;
    }
    if offset!(task_loginuid) != ABSENT as usize {
        t.loginuid = read(task.wrapping_add(offset!(task_loginuid)))?;
        t.flags |= TASK_LOGINUID;
    }
    // nsproxy is gone only in the last steps of exit; the namespace is then simply unknown (0).
    let nsproxy: *const u8 = read(task.wrapping_add(offset!(task_nsproxy)))?;
    if !nsproxy.is_null() {
        let net: *const u8 = read(nsproxy.wrapping_add(offset!(nsproxy_net_ns)))?;
        t.netns = read(net.wrapping_add(offset!(net_ns_inum)))?;
    }
    Ok(())
}

/// The current process's start (its thread-group leader's, CLOCK_BOOTTIME ns): with its pid,
/// the identity records give a parent.
#[inline(always)]
pub fn current_process_start() -> Result<u64, ReadError> {
    let leader: *const u8 = read(current_task().wrapping_add(offset!(task_group_leader)))?;
    read(leader.wrapping_add(offset!(task_start_boottime)))
}

/// Start and end of the current process's argument strings (mm->arg_start, mm->arg_end).
#[inline(always)]
pub fn args_range() -> Result<(u64, u64), ReadError> {
    let mm: *const u8 = read(current_task().wrapping_add(offset!(task_mm)))?;
    if mm.is_null() {
        return Err(ReadError(Why::Gone));
    }
    Ok((
        read(mm.wrapping_add(offset!(mm_arg_start)))?,
        read(mm.wrapping_add(offset!(mm_arg_end)))?,
    ))
}

/// Follows the current task's file descriptor `fd` to its `struct sock`:
/// task_struct.files → files_struct.fdt → fdtable.fd[fd] → file.private_data (struct socket)
/// → socket.sk. Fails unless the file really is a socket (`socket.file` points back to it).
#[inline(always)]
pub fn sock_of_fd(fd: i32) -> Result<*const u8, ReadError> {
    if fd < 0 {
        return Err(ReadError(Why::BadFd));
    }
    let task = current_task();
    let files: *const u8 = read(task.wrapping_add(offset!(task_files)))?;
    let fdt: *const u8 = read(files.wrapping_add(offset!(files_fdt)))?;
    let max_fds: u32 = read(fdt.wrapping_add(offset!(fdtable_max_fds)))?;
    if fd as u32 >= max_fds {
        return Err(ReadError(Why::BadFd));
    }
    let fd_array: *const u8 = read(fdt.wrapping_add(offset!(fdtable_fd)))?;
    let file: *const u8 = read(fd_array.wrapping_add(fd as usize * 8))?;
    sock_of_file(file)
}

/// The `struct sock` of a socket's `struct file`: file.private_data (struct socket) → socket.sk.
/// Fails unless the file really is a socket (`socket.file` points back to it).
#[inline(always)]
pub fn sock_of_file(file: *const u8) -> Result<*const u8, ReadError> {
    if file.is_null() {
        return Err(ReadError(Why::NoFile));
    }
    let socket: *const u8 = read(file.wrapping_add(offset!(file_private_data)))?;
    let back: *const u8 = read(socket.wrapping_add(offset!(socket_file)))?;
    if back != file {
        return Err(ReadError(Why::NotSocket));
    }
    let sk: *const u8 = read(socket.wrapping_add(offset!(socket_sk)))?;
    if sk.is_null() {
        return Err(ReadError(Why::Gone));
    }
    Ok(sk)
}

/// Copies family, protocol, type and both endpoints of `sk` into `ev`, and sets `FLAG_SOCK`.
#[inline(always)]
pub fn fill_from_sock(sk: *const u8, ev: &mut SockEvent) -> Result<(), ReadError> {
    let read = fill_sock_fields(sk, ev);
    if read.is_err() {
        ev.family = 0;
        ev.protocol = 0;
        ev.sock_type = 0;
        ev.local_port = 0;
        ev.remote_port = 0;
        ev.local_addr = [0; 16];
        ev.remote_addr = [0; 16];
    }
    read
}

/// Reads family, protocol, type, both endpoints and inode of `$sk` into the fields of those
/// names of `$e` (a `SockEvent` or a `SockEnds`), returning early on a failed read. A macro
/// rather than a shared struct so that neither record needs a copy on the 512-byte stack.
macro_rules! read_sock_fields {
    ($sk:expr, $e:expr) => {{
        let sk: *const u8 = $sk;
        let family: u16 = read(sk.wrapping_add(offset!(sk_family)))?;
        $e.family = family as u8;
        $e.protocol = read(sk.wrapping_add(offset!(sk_protocol)))?;
        $e.sock_type = read(sk.wrapping_add(offset!(sk_type)))?;
        $e.local_port = read(sk.wrapping_add(offset!(sk_num)))?;
        if $e.local_port == 0 {
            // A listener that closes has already given its port back (inet_put_port zeroes
            // inet_num before the state change is traced); inet_sport still holds it.
            let sport: u16 = read(sk.wrapping_add(offset!(sk_sport)))?;
            $e.local_port = u16::from_be(sport);
        }
        let dport: u16 = read(sk.wrapping_add(offset!(sk_dport)))?;
        $e.remote_port = u16::from_be(dport);
        if family == AF_INET {
            let local: [u8; 4] = read(sk.wrapping_add(offset!(sk_rcv_saddr)))?;
            let remote: [u8; 4] = read(sk.wrapping_add(offset!(sk_daddr)))?;
            $e.local_addr[..4].copy_from_slice(&local);
            $e.remote_addr[..4].copy_from_slice(&remote);
        } else if family == AF_INET6 {
            $e.local_addr = read(sk.wrapping_add(offset!(sk_v6_rcv_saddr)))?;
            $e.remote_addr = read(sk.wrapping_add(offset!(sk_v6_daddr)))?;
        }
        $e.inode = socket_inode(sk);
    }};
}

#[inline(always)]
fn fill_sock_fields(sk: *const u8, ev: &mut SockEvent) -> Result<(), ReadError> {
    read_sock_fields!(sk, ev);
    ev.header.flags |= FLAG_SOCK;
    Ok(())
}

/// Family, protocol, type, both endpoints and inode of `sk` (all zero when a read fails).
#[inline(always)]
pub fn read_ends(sk: *const u8, e: &mut SockEnds) -> Result<(), ReadError> {
    let read = read_ends_fields(sk, e);
    if read.is_err() {
        *e = SockEnds::default();
    }
    read
}

#[inline(always)]
fn read_ends_fields(sk: *const u8, e: &mut SockEnds) -> Result<(), ReadError> {
    read_sock_fields!(sk, e);
    Ok(())
}

/// The family of `sk` (AF_INET, AF_UNIX, ...).
#[inline(always)]
pub fn sock_family(sk: *const u8) -> Result<u16, ReadError> {
    read(sk.wrapping_add(offset!(sk_family)))
}

/// The inode number of `sk`'s socket (SOCK_INODE(sk->sk_socket)->i_ino), 0 if it has none.
#[inline(always)]
pub fn socket_inode(sk: *const u8) -> u64 {
    let Ok(socket) = read::<*const u8>(sk.wrapping_add(offset!(sk_socket))) else {
        return 0;
    };
    if socket.is_null() {
        return 0;
    }
    let inode = socket
        .wrapping_sub(offset!(socket_alloc_socket))
        .wrapping_add(offset!(socket_alloc_inode));
    read(inode.wrapping_add(offset!(inode_ino))).unwrap_or(0)
}

/// The inode of `sk`'s socket when it belongs to a user process (its socket has a file), else 0.
#[inline(always)]
pub fn user_socket_inode(sk: *const u8) -> u64 {
    let Ok(socket) = read::<*const u8>(sk.wrapping_add(offset!(sk_socket))) else {
        return 0;
    };
    match read::<*const u8>(socket.wrapping_add(offset!(socket_file))) {
        Ok(file) if !socket.is_null() && !file.is_null() => socket_inode(sk),
        _ => 0,
    }
}

/// The listen backlog of `sk` (set before `inet_csk_listen_start` runs).
#[inline(always)]
pub fn listen_backlog(sk: *const u8) -> u32 {
    read(sk.wrapping_add(offset!(sk_max_ack_backlog))).unwrap_or(0)
}

/// Whether `sk` is already listening (a second listen(2) on it only sets the backlog).
#[inline(always)]
pub fn is_listening(sk: *const u8) -> bool {
    read::<u8>(sk.wrapping_add(offset!(sk_state))).is_ok_and(|s| i32::from(s) == TCP_LISTEN)
}

/// The `struct sock *` of a `struct socket *`.
#[inline(always)]
pub fn sock_of_socket(socket: *const u8) -> Result<*const u8, ReadError> {
    let sk: *const u8 = read(socket.wrapping_add(offset!(socket_sk)))?;
    if sk.is_null() {
        Err(ReadError(Why::Gone))
    } else {
        Ok(sk)
    }
}

/// How the current thread runs a call, from its name, which the kernel gives io_uring's own
/// threads: `iou-sqp-PID` (SQPOLL) and `iou-wrk-PID` (workers); `VIA_SYSCALL` for any other.
#[inline(always)]
pub fn io_thread() -> u8 {
    let comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
    match &comm[..8] {
        b"iou-sqp-" => VIA_IO_URING_SQPOLL,
        b"iou-wrk-" => VIA_IO_URING_WORKER,
        _ => VIA_SYSCALL,
    }
}

/// In a kernel-function hook: how the call was made. io_uring's threads say so by their name;
/// a submitting thread runs the request inside io_uring_enter(2).
#[inline(always)]
pub fn call_path() -> u8 {
    match io_thread() {
        VIA_SYSCALL if syscall_nr() == Some(SYS_IO_URING_ENTER) => VIA_IO_URING,
        via => via,
    }
}

/// x86_64's io_uring_enter(2).
const SYS_IO_URING_ENTER: u64 = 426;

/// The number of the syscall the current task is in (x86_64), from the user registers saved at
/// syscall entry.
#[inline(always)]
fn syscall_nr() -> Option<u64> {
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    read::<u64>(regs.wrapping_add(offset!(pt_regs_orig_ax))).ok()
}

/// In a kernel-function hook: the descriptor argument of the syscall the current task is in,
/// when that syscall is number `nr` (x86_64); -1 when the call came another way (io_uring, an
/// in-kernel socket). The user registers saved at syscall entry hold number and arguments.
#[inline(always)]
pub fn syscall_fd(nr: u64) -> i32 {
    if syscall_nr() != Some(nr) {
        return -1;
    }
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    read::<u64>(regs.wrapping_add(offset!(pt_regs_di))).map_or(-1, |fd| fd as i32)
}
