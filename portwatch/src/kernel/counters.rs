//! The kernel's per-CPU counters (lost events, in-flight table full, unreadable sockets),
//! summed over CPUs.
use aya::maps::{MapData, PerCpuArray};
use portwatch_common::{EventKind, counters};

use crate::{
    error::{Error, Result},
    model::loss::{KindCounts, LossCounts},
    pipeline::source::Counters,
};

pub struct KernelCounters {
    map: PerCpuArray<MapData, u64>,
}

impl KernelCounters {
    pub fn new(map: PerCpuArray<MapData, u64>) -> Self {
        Self { map }
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

    fn read(&self, decode_errors: u64) -> Result<LossCounts> {
        let ring_buffer_full = self.per_kind(counters::lost)?;
        let in_flight_table_full = self.per_kind(counters::pending_full)?;
        Ok(LossCounts {
            lost_total: ring_buffer_full.total() + in_flight_table_full.total() + decode_errors,
            ring_buffer_full,
            in_flight_table_full,
            decode_errors,
            // The output's own, added by the stream.
            output_dropped: 0,
            socket_read_errors: self.sum(counters::SOCK_READ_FAILED)?,
            task_read_errors: self.sum(counters::TASK_READ_FAILED)?,
            fork_table_full: self.sum(counters::FORK_PARENT_FULL)?,
        })
    }
}
