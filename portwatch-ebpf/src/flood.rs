//! Listener births are never crowded out: one process's flood of them is shed here into counts
//! (see `portwatch_common::flood`), and the ring's last quarter is kept for them
//! (`maps::room_for_bulk`).
use aya_ebpf::{macros::map, maps::LruPerCpuHashMap};
use portwatch_common::{
    EventKind, FLAG_SOCK, FloodLimit, FloodState, SockEvent,
    flood::{FLOOD_TABLE_MAX, SHED_BIND, SHED_LISTEN},
};

/// Set by the daemon before load (`--flood-rate`, `--flood-burst`).
#[unsafe(no_mangle)]
static FLOOD_LIMIT: FloodLimit = FloodLimit {
    period_ns: 0,
    tolerance_ns: 0,
};

/// Per CPU: each CPU's value is only ever written by programs running on it, so counts need no
/// atomics (which the BPF target of Rust lacks); the rate applies per CPU, the daemon sums.
#[map(name = "FLOOD")]
static FLOOD: LruPerCpuHashMap<u32, FloodState> =
    LruPerCpuHashMap::with_max_entries(FLOOD_TABLE_MAX, 0);

/// Whether `ev` makes a listener (`portwatch_common::is_birth`).
#[inline(always)]
pub fn is_birth(ev: &SockEvent, kind: EventKind) -> bool {
    let protocol = (ev.header.flags & FLAG_SOCK != 0).then_some(ev.protocol);
    portwatch_common::is_birth(kind, ev.header.errno, protocol)
}

/// Whether the current process may send this birth: false when it is past its flood limit, in
/// which case the birth is counted in its `FLOOD` entry (the daemon reports it).
#[inline(always)]
pub fn admit(ev: &SockEvent, kind: EventKind) -> bool {
    let limit = unsafe { core::ptr::read_volatile(&raw const FLOOD_LIMIT) };
    if limit.period_ns == 0 {
        return true;
    }
    let t = &ev.task;
    let now = t.ts_ns;
    let Some(state) = FLOOD.get_ptr_mut(&t.pid) else {
        let fresh = FloodState {
            start_ns: t.start_ns,
            due_ns: now + limit.period_ns,
            uid: t.uid,
            gid: t.gid,
            comm: t.comm,
            ..FloodState::default()
        };
        // A full LRU table makes room itself; an error leaves the birth admitted.
        let _ = FLOOD.insert(&t.pid, &fresh, 0);
        return true;
    };
    // SAFETY: this CPU's map value: no other writer while this program runs.
    unsafe {
        if (*state).start_ns != t.start_ns {
            // The pid was reused (or the entry is new to this CPU): a fresh allowance.
            (*state).start_ns = t.start_ns;
            (*state).due_ns = now + limit.period_ns;
            (*state).shed = [0; 2];
            (*state).first_shed_ns = 0;
            (*state).last_shed_ns = 0;
            (*state).uid = t.uid;
            (*state).gid = t.gid;
            (*state).comm = t.comm;
            return true;
        }
        let due = if (*state).due_ns > now {
            (*state).due_ns
        } else {
            now
        };
        if due - now <= limit.tolerance_ns {
            (*state).due_ns = due + limit.period_ns;
            return true;
        }
        let slot = if kind == EventKind::Listen {
            SHED_LISTEN
        } else {
            SHED_BIND
        };
        (*state).shed[slot] += 1;
        if (*state).first_shed_ns == 0 {
            (*state).first_shed_ns = now;
        }
        (*state).last_shed_ns = now;
        (*state).comm = t.comm;
    }
    false
}
