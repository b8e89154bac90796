//! Kernel struct and tracepoint offsets, read by the daemon from this kernel before load.

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
    // the executable: mm_struct.exe_file → file.f_inode (number, device, links) and file.f_path
    // (mount, dentry), walked up to task_struct.fs->root as d_path does
    pub mm_exe_file: u32,
    pub file_inode: u32,
    pub file_path_mnt: u32,
    pub file_path_dentry: u32,
    pub inode_sb: u32,
    pub inode_nlink: u32,
    pub sb_dev: u32,
    pub dentry_parent: u32,
    pub dentry_name_len: u32,
    pub dentry_name: u32,
    pub vfsmount_root: u32,
    /// struct mount: its `struct vfsmount mnt`, parent mount and mount point.
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub task_fs: u32,
    pub fs_root_mnt: u32,
    pub fs_root_dentry: u32,
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
    /// sock_common.skc_state (TCP_LISTEN, ...): a listen(2) on a listening socket only changes
    /// its backlog, and the listen hooks skip it.
    pub sk_state: u32,
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
    pub tp_exec_old_pid: u32,
    // sched/sched_process_fork tracepoint record
    pub tp_fork_child_pid: u32,
    // io_uring (all ABSENT, and `iou_complete` IOU_NONE, on kernels without it in BTF)
    /// How `io_uring_complete` gives the result: an `IOU_*` value.
    pub iou_complete: u32,
    pub req_opcode: u32,
    /// io_kiocb.flags (its low 32 bits hold the bits read here)
    pub req_flags: u32,
    pub req_fixed_file_bit: u32,
    /// io_kiocb.file: for bind, listen and accept also the start of their command struct
    pub req_file: u32,
    /// io_kiocb.cqe.fd: the descriptor (or fixed-file slot) the request names
    pub req_cqe_fd: u32,
    pub req_async_data: u32,
    /// io_bind.addr_len and io_listen.backlog, relative to io_kiocb.file
    pub bind_addr_len: u32,
    pub listen_backlog: u32,
    /// io_accept.file_slot (non-zero: the connection goes to a fixed-file slot)
    pub accept_file_slot: u32,
    /// io_async_msghdr.addr: where io_uring's bind copied the address
    pub msghdr_addr: u32,
    /// io_uring_cqe.res
    pub cqe_res: u32,
}

/// `KernelOffsets::iou_complete`: no io_uring tracepoints to use.
pub const IOU_NONE: u32 = 0;
/// `io_uring_complete(ctx, req, cqe)` (since 6.3): the result is `cqe->res`.
pub const IOU_CQE: u32 = 1;
/// `io_uring_complete(ctx, req, user_data, res, cflags, ...)`: the result is argument 3.
pub const IOU_RES_ARG: u32 = 2;
