//! `flood` records: the processes whose listener births the kernel shed past the flood limit
//! (`portwatch_common::flood`), each named with its counts at most once a second while it lasts.
use portwatch_common::{
    FloodState,
    flood::{SHED_BIND, SHED_LISTEN},
};
use rustc_hash::FxHashMap;

use super::Stream;
use crate::{
    clock::Clock,
    error::Result,
    model::{loss::LossCounts, task::Comm},
    output::{
        record::{FloodRecord, Record},
        sink::Sink,
    },
};

/// How often the kernel's table is walked while births are being shed.
const WALK_EVERY_NS: u64 = 1_000_000_000;

/// What the flood records said so far.
#[derive(Default)]
pub struct FloodReports {
    /// Per pid: its process start and, per `SHED_*` slot, the count reported and the latest
    /// shed birth it covered. Pruned to the kernel's table at each walk.
    reported: FxHashMap<u32, Reported>,
    /// The kernel's shed total when its table was last walked, and when (boot-clock ns).
    walked_total: u64,
    walked_ns: u64,
    /// Births were shed since the last walk, which waits for `WALK_EVERY_NS`.
    pending: bool,
}

struct Reported {
    start_ns: u64,
    shed: [u64; 2],
    until_ns: [u64; 2],
}

impl FloodReports {
    /// When the next walk is due (boot-clock ns), if births were shed since the last.
    pub fn due_ns(&self) -> Option<u64> {
        self.pending.then_some(self.walked_ns + WALK_EVERY_NS)
    }
}

impl<S: Sink> Stream<S> {
    /// Writes a `flood` record for each process and kind the kernel shed births of since the
    /// last ones, when its shed counters moved and a second has passed since the last walk.
    pub(super) fn report_floods(&mut self, counts: &LossCounts, clock: &Clock) -> Result<()> {
        let now = clock.boot_now();
        let f = &mut self.losses.floods;
        f.pending |= counts.shed.total() > f.walked_total;
        if !f.pending || now < f.walked_ns + WALK_EVERY_NS {
            return Ok(());
        }
        f.pending = false;
        f.walked_total = counts.shed.total();
        f.walked_ns = now;
        let table = self.losses.counters.floods()?;
        let mut records = Vec::new();
        for (pid, state) in &table {
            // The same process, unless its entry was evicted and made again (counts from zero).
            let same = |r: &Reported| {
                r.start_ns == state.start_ns && r.shed.iter().zip(state.shed).all(|(a, b)| *a <= b)
            };
            let prior = match self.losses.floods.reported.get_mut(pid) {
                Some(r) if same(r) => r,
                _ => {
                    let fresh = Reported {
                        start_ns: state.start_ns,
                        shed: [0; 2],
                        until_ns: [state.first_shed_ns; 2],
                    };
                    self.losses.floods.reported.insert(*pid, fresh);
                    self.losses
                        .floods
                        .reported
                        .get_mut(pid)
                        .expect("just inserted")
                }
            };
            for (slot, kind) in [(SHED_LISTEN, "listen"), (SHED_BIND, "bind")] {
                let count = state.shed[slot].saturating_sub(prior.shed[slot]);
                if count == 0 {
                    continue;
                }
                let since = prior.until_ns[slot].max(state.first_shed_ns);
                prior.shed[slot] = state.shed[slot];
                prior.until_ns[slot] = state.last_shed_ns;
                records.push((*pid, *state, slot, kind, count, since));
            }
        }
        let live: rustc_hash::FxHashSet<u32> = table.iter().map(|(pid, _)| *pid).collect();
        self.losses
            .floods
            .reported
            .retain(|pid, _| live.contains(pid));
        for (pid, state, slot, kind, count, since) in records {
            let record = self.flood_record(pid, &state, (slot, kind), count, since, clock);
            self.out.write(&Record::Flood(record))?;
        }
        Ok(())
    }

    fn flood_record(
        &mut self,
        pid: u32,
        state: &FloodState,
        (slot, kind): (usize, &'static str),
        count: u64,
        since_ns: u64,
        clock: &Clock,
    ) -> FloodRecord {
        let comm = Comm::new(&state.comm);
        let process = self.enricher.flooder(pid, state.start_ns, clock);
        FloodRecord {
            time: clock.timestamp(state.last_shed_ns),
            pid,
            uid: state.uid,
            gid: state.gid,
            comm: comm.text().into_owned(),
            kind,
            count,
            total: state.shed[slot],
            since: clock.timestamp(since_ns),
            interval_s: state.last_shed_ns.saturating_sub(since_ns) as f64 / 1e9,
            process,
        }
    }
}
