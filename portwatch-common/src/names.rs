//! Map, global and program names: the daemon looks things up by these.
pub const EVENTS_MAP: &str = "EVENTS";
pub const COUNTERS_MAP: &str = "COUNTERS";
pub const SEQ_MAP: &str = "SEQ";
pub const PENDING_MAP: &str = "PENDING";
pub const OFFSETS_GLOBAL: &str = "OFFSETS";
pub const FILTER_GLOBAL: &str = "FILTER";
pub const FLOOD_LIMIT_GLOBAL: &str = "FLOOD_LIMIT";
pub const FLOOD_MAP: &str = "FLOOD";
pub const SCRATCH_MAP: &str = "SCRATCH";
pub const FILTER_PIDS_MAP: &str = "FILTER_PIDS";
pub const FILTER_UIDS_MAP: &str = "FILTER_UIDS";
pub const FILTER_CGROUPS_MAP: &str = "FILTER_CGROUPS";
pub const FILTER_NETNS_MAP: &str = "FILTER_NETNS";
pub const FILTER_PORTS_MAP: &str = "FILTER_PORTS";
pub const BOUND_UDP_MAP: &str = "BOUND_UDP";
pub const URING_PENDING_MAP: &str = "URING_PENDING";
pub const URING_KINDS_MAP: &str = "URING_KINDS";
pub const FORK_PARENT_MAP: &str = "FORK_PARENT";
/// Every map of the kernel object. The kernel crate's `#[map(name = ...)]` attributes need
/// literals; the daemon checks at load that each of these names exists.
pub const MAPS: [&str; 15] = [
    EVENTS_MAP,
    COUNTERS_MAP,
    SEQ_MAP,
    PENDING_MAP,
    FILTER_PIDS_MAP,
    FILTER_UIDS_MAP,
    FILTER_CGROUPS_MAP,
    FILTER_NETNS_MAP,
    FILTER_PORTS_MAP,
    BOUND_UDP_MAP,
    URING_PENDING_MAP,
    URING_KINDS_MAP,
    FORK_PARENT_MAP,
    FLOOD_MAP,
    SCRATCH_MAP,
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
pub const PROCESS_FORK: &str = "process_fork";
pub const UDP_POST_BIND4: &str = "udp_post_bind4";
pub const UDP_POST_BIND6: &str = "udp_post_bind6";
pub const UDP_RELEASE: &str = "udp_release";
pub const URING_SUBMIT: &str = "uring_submit";
pub const URING_COMPLETE: &str = "uring_complete";
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
