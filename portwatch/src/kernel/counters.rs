//! The kernel's per-CPU counters (lost events, in-flight table full, shed births, unreadable
//! sockets), summed over CPUs, and its table of flooding processes (`FLOOD`).
use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use portwatch_common::{EventKind, FloodState, counters};

use crate::{
    error::{Error, Result},
    model::loss::{KindCounts, LossCounts, ShedCounts},
    model::source::Counters,
};

pub struct KernelCounters {
    map: PerCpuArray<MapData, u64>,
    floods: PerCpuHashMap<MapData, u32, FloodState>,
}

impl KernelCounters {
    pub fn new(
        map: PerCpuArray<MapData, u64>,
        floods: PerCpuHashMap<MapData, u32, FloodState>,
    ) -> Self {
        Self { map, floods }
    }

    fn sum(&self, index: u32) -> Result<u64> {
        let values = self
            .map
            .get(&index, 0)
            .map_err(|e| Error::Load(format!("reading the counters map: {e}")))?;
        Ok(values.iter().sum())
    }

    fn per_kind(&self, index: fn(EventKind) -> u32) -> Result<KindCounts> {
        let mut a = [0u64; EventKind::ALL.len()];
        for (slot, kind) in a.iter_mut().zip(EventKind::ALL) {
            *slot = self.sum(index(kind))?;
        }
        Ok(KindCounts::from_array(a))
    }
}

impl Counters for KernelCounters {
    fn exec_lost(&self) -> Result<u64> {
        self.sum(counters::lost(EventKind::Exec))
    }

    fn floods(&self) -> Result<Vec<(u32, FloodState)>> {
        // Entries the kernel evicts or replaces meanwhile end the walk early or are skipped:
        // the next walk, after the next shed birth, sees the rest.
        Ok(self
            .floods
            .iter()
            .filter_map(std::result::Result::ok)
            .map(|(pid, per_cpu)| (pid, summed(&per_cpu)))
            .collect())
    }

    fn read(&self, decode_errors: u64) -> Result<LossCounts> {
        let mut counts = LossCounts {
            lost_total: 0,
            ring_buffer_full: self.per_kind(counters::lost)?,
            in_flight_table_full: self.per_kind(counters::pending_full)?,
            shed: ShedCounts {
                bind: self.sum(counters::shed(EventKind::Bind))?,
                listen: self.sum(counters::shed(EventKind::Listen))?,
            },
            decode_errors,
            // The output's own, added by the stream.
            output_dropped: 0,
            socket_read_errors: self.sum(counters::SOCK_READ_FAILED)?,
            task_read_errors: self.sum(counters::TASK_READ_FAILED)?,
            fork_table_full: self.sum(counters::FORK_PARENT_FULL)?,
        };
        counts.lost_total = counts.kernel_lost();
        Ok(counts)
    }
}

/// One process's entry over the CPUs that hold its current process (a CPU may still hold an
/// earlier process of the same pid, or nothing).
fn summed(per_cpu: &[FloodState]) -> FloodState {
    let start_ns = per_cpu.iter().map(|s| s.start_ns).max().unwrap_or(0);
    let mut out = FloodState {
        start_ns,
        ..FloodState::default()
    };
    for s in per_cpu.iter().filter(|s| s.start_ns == start_ns) {
        out.shed[0] += s.shed[0];
        out.shed[1] += s.shed[1];
        if s.first_shed_ns != 0 && (out.first_shed_ns == 0 || s.first_shed_ns < out.first_shed_ns) {
            out.first_shed_ns = s.first_shed_ns;
        }
        if s.last_shed_ns >= out.last_shed_ns {
            out.last_shed_ns = s.last_shed_ns;
            out.uid = s.uid;
            out.gid = s.gid;
            out.comm = s.comm;
        }
    }
    out
}
