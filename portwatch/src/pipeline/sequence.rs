//! Loss sequencing: every lost event gets a number in the output's `seq`, so the gaps in a
//! stream are exactly what it lost.
use rustc_hash::FxHashMap;

use crate::model::loss::LossCounts;

/// Gives every lost event a sequence number in the output, exactly once, as close to where it
/// was lost as can be known.
///
/// The kernel numbers every record each CPU tries to send, so a jump between two records of a
/// CPU reveals ring-buffer losses where they happened. Losses not revealed that way (the last
/// records of a CPU, in-flight table overflows, births shed by the flood limit, which take no
/// kernel sequence number) are numbered when a `loss` record counts them;
/// ring-buffer losses numbered early are not numbered again when their gap shows up later.
/// Decode errors are numbered where they occur. So at any `loss` or `stop` record, the gaps in
/// the stream's `seq` add up to its `lost_total`.
#[derive(Default)]
pub struct LossSequencer {
    next_per_cpu: FxHashMap<u32, u64>,
    /// Ring-buffer losses numbered so far (revealed or in advance).
    ring_numbered: u64,
    /// Of those, numbered in advance and not yet revealed by a gap.
    ring_in_advance: u64,
    /// In-flight table overflows and shed births numbered so far.
    table_numbered: u64,
}

impl LossSequencer {
    /// A record `seq` from `cpu`: how many new numbers to skip for losses it reveals.
    pub fn revealed(&mut self, cpu: u32, seq: u64) -> u64 {
        let next = self.next_per_cpu.entry(cpu).or_insert(0);
        let gap = seq.saturating_sub(*next);
        *next = seq + 1;
        let already = gap.min(self.ring_in_advance);
        self.ring_in_advance -= already;
        self.ring_numbered += gap - already;
        gap - already
    }

    /// Counts about to be reported: how many numbers to skip so that every counted loss has one.
    pub fn reported(&mut self, counts: &LossCounts) -> u64 {
        let ring = counts
            .ring_buffer_full
            .total()
            .saturating_sub(self.ring_numbered);
        self.ring_numbered += ring;
        self.ring_in_advance += ring;
        let table = (counts.in_flight_table_full.total() + counts.shed.total())
            .saturating_sub(self.table_numbered);
        self.table_numbered += table;
        ring + table
    }
}

#[cfg(test)]
mod tests {
    use super::LossSequencer;
    use crate::model::loss::{KindCounts, LossCounts};

    fn ring_lost(n: u64) -> LossCounts {
        LossCounts {
            ring_buffer_full: KindCounts {
                bind: n,
                ..KindCounts::default()
            },
            ..LossCounts::default()
        }
    }

    #[test]
    fn every_loss_gets_exactly_one_number() {
        let mut s = LossSequencer::default();
        assert_eq!(s.revealed(0, 0), 0);
        assert_eq!(
            s.revealed(1, 3),
            3,
            "three lost on CPU 1 before its first record"
        );
        assert_eq!(s.revealed(0, 1), 0);
        // Two more lost on CPU 0, counted before any gap shows them.
        assert_eq!(s.reported(&ring_lost(5)), 2);
        // The gap that reveals them later costs no new numbers.
        assert_eq!(s.revealed(0, 4), 0);
        // A fresh loss revealed by a gap, then counted: numbered once.
        assert_eq!(s.revealed(1, 5), 1);
        assert_eq!(s.reported(&ring_lost(6)), 0);
        let mut table = ring_lost(6);
        table.in_flight_table_full.listen = 2;
        assert_eq!(s.reported(&table), 2);
    }
}
