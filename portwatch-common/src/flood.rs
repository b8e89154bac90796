//! Shedding one process's flood of listener births (successful listens and UDP binds): the limit
//! the daemon sets before load, and what the kernel keeps per process in `FLOOD`.
//!
//! Each process may make `burst` births at once and one every `period_ns` after that on each
//! CPU (a GCRA token bucket); beyond, its births are counted in its entry and in the per-kind `shed`
//! counters instead of taking ring-buffer space, so one process cannot crowd the others' births
//! out. The daemon reports each flooding process with its counts (`flood` records) and then
//! lists the host's listeners again, so a listener whose birth was shed is still named.

/// Processes whose births the kernel tracks at once (LRU: the least recently active go first).
pub const FLOOD_TABLE_MAX: u32 = 4096;

/// `FLOOD_LIMIT`: a `period_ns` of 0 turns shedding off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodLimit {
    /// Nanoseconds per birth at the sustained rate.
    pub period_ns: u64,
    /// How far ahead of the sustained rate a process may run: `burst * period_ns`.
    pub tolerance_ns: u64,
}

impl FloodLimit {
    /// `rate` births per second per process, `burst` at once; a rate of 0 is no limit.
    pub const fn new(rate: u64, burst: u64) -> Self {
        if rate == 0 {
            return Self {
                period_ns: 0,
                tolerance_ns: 0,
            };
        }
        let period_ns = 1_000_000_000 / rate;
        Self {
            period_ns,
            tolerance_ns: period_ns.saturating_mul(burst),
        }
    }
}

/// `FloodState::shed` slots: what a process's shed births were.
pub const SHED_BIND: usize = 0;
pub const SHED_LISTEN: usize = 1;

/// One process's births on one CPU, key: its pid (tgid). The daemon sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FloodState {
    /// The process's start (CLOCK_BOOTTIME ns): a reused pid is another process.
    pub start_ns: u64,
    /// When its next birth is due at the sustained rate (GCRA's theoretical arrival time).
    pub due_ns: u64,
    /// Births shed since the process's first, per `SHED_*` slot (never reset: the daemon
    /// reports differences).
    pub shed: [u64; 2],
    /// First and latest shed birth (boot-clock ns; 0: none yet).
    pub first_shed_ns: u64,
    pub last_shed_ns: u64,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; crate::TASK_COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<FloodState>() == 72);
const _: () = assert!(core::mem::size_of::<FloodLimit>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        assert_eq!(FloodLimit::new(0, 10).period_ns, 0);
        let l = FloodLimit::new(200, 500);
        assert_eq!(l.period_ns, 5_000_000);
        assert_eq!(l.tolerance_ns, 2_500_000_000);
    }
}
