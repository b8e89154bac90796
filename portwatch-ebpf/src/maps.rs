//! Maps and globals shared by all programs (names are the ABI in portwatch-common).
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_RING_SIZE},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use portwatch_common::{KernelOffsets, Pending, counters};

/// Event records to the daemon. The daemon resizes it at load time (`--ring-buffer-size`).
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Past this fraction of the ring (1/WAKE_FRACTION), every record wakes the daemon: it is then
/// batching (see `cmd::watch`) and must drain before the ring fills.
const WAKE_FRACTION: u64 = 8;

/// Records that make no listener may fill the ring up to (RESERVE_FRACTION - 1) / RESERVE_FRACTION
/// of it: the rest is kept for listener births, which a churn of other records cannot crowd out.
const RESERVE_FRACTION: u64 = 4;

/// Whether a record that makes no listener may take ring space (see `RESERVE_FRACTION`).
#[inline(always)]
pub fn room_for_bulk() -> bool {
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    queued < size - size / RESERVE_FRACTION
}

/// Flags for submitting a record. Below `WAKE_FRACTION` the kernel's adaptive rule applies: a
/// record wakes the daemon only when the daemon had read everything before it, so the first record
/// after a quiet spell is written at once, and while the daemon is busy no record wakes it again.
#[inline(always)]
pub fn wakeup_flags() -> u64 {
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    if queued >= size / WAKE_FRACTION {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        0
    }
}

/// Per-CPU event and error counters, indexed by `portwatch_common::counters`.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

/// Per-CPU record sequence (see `RecordHeader::seq`).
#[map(name = "SEQ")]
pub static SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Stamps a record header with this CPU and its next sequence number. Called once per record
/// the kernel tries to send, so gaps seen in userspace are exactly the records lost.
#[inline(always)]
pub fn stamp(header: &mut portwatch_common::RecordHeader) {
    header.cpu = unsafe { aya_ebpf::helpers::generated::bpf_get_smp_processor_id() };
    if let Some(seq) = SEQ.get_ptr_mut(0) {
        // Per-CPU slot: no other writer while this program runs on this CPU.
        unsafe {
            header.seq = *seq;
            *seq += 1;
        }
    }
}

/// Syscalls in flight, keyed by `bpf_get_current_pid_tgid()`; every exit hook removes its entry.
#[map(name = "PENDING")]
pub static PENDING: HashMap<u64, Pending> = HashMap::with_max_entries(16384, 0);

/// Bound UDP sockets of user processes, socket cookie → inode, so their release can be reported
/// (`hooks/udp_close.rs`). Not preallocated: the kernel memory follows the live sockets.
#[map(name = "BOUND_UDP")]
pub static BOUND_UDP: HashMap<u64, u64> = HashMap::with_max_entries(
    portwatch_common::BOUND_UDP_MAX,
    aya_ebpf::bindings::BPF_F_NO_PREALLOC,
);

/// Each live task's parent at fork (child tid → parent), so a process reparented before its
/// first record is still attributed to the process that made it. Written at fork, removed at
/// the task's exit; not preallocated: the kernel memory follows the live tasks.
#[map(name = "FORK_PARENT")]
pub static FORK_PARENT: HashMap<u32, portwatch_common::ForkParent> = HashMap::with_max_entries(
    portwatch_common::FORK_PARENTS_MAX,
    aya_ebpf::bindings::BPF_F_NO_PREALLOC,
);

/// io_uring requests in flight (bind, listen, accept), by request address, from submission to
/// completion. LRU: a request whose completion is never traced (CQE skipped) cannot pile up.
#[map(name = "URING_PENDING")]
pub static URING_PENDING: LruHashMap<u64, Pending> = LruHashMap::with_max_entries(16384, 0);

/// Which kinds the io_uring hook reports (bit `1 << kind`): those whose own hook is a syscall
/// tracepoint, which io_uring bypasses. Written by the daemon once the hooks are attached.
#[map(name = "URING_KINDS")]
pub static URING_KINDS: Array<u32> = Array::with_max_entries(1, 0);

/// Set by the daemon before load (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

/// Reads one offset; volatile so the compiler cannot fold the load-time value into a zero.
macro_rules! offset {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&raw const $crate::maps::OFFSETS.$field) };
        value as usize
    }};
}
pub(crate) use offset;

pub fn offsets_valid() -> bool {
    unsafe { core::ptr::read_volatile(&raw const OFFSETS.valid) != 0 }
}

/// Stores the arguments of a call in flight for its exit hook; a full table is counted.
pub fn remember(pending: &Pending, kind: portwatch_common::EventKind) {
    let id = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    if PENDING.insert(id, pending, 0).is_err() {
        bump(counters::pending_full(kind));
    }
}

/// Takes the current thread's call in flight out of `PENDING` (every exit hook does, so the table
/// never keeps a finished call) and returns it if it is a call of `kind`.
#[inline(always)]
pub fn take(kind: portwatch_common::EventKind) -> Option<Pending> {
    let id = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    let pending = unsafe { PENDING.get(id) }.copied();
    if pending.is_some() {
        let _ = PENDING.remove(id);
    }
    pending.filter(|p| p.kind == kind as u8)
}

pub fn bump(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer while this program runs on this CPU.
        unsafe { *slot += 1 };
    }
}
