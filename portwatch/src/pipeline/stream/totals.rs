//! The totals: `loss` records whenever a counter moves, the `stop` record last, and the bounded
//! wait for the outputs to write what they took.
use super::Stream;
use crate::{
    clock::Clock,
    error::Result,
    model::loss::LossCounts,
    output::{
        record::{LossRecord, Record, StopRecord},
        sink::Sink,
    },
};

impl<S: Sink> Stream<S> {
    /// Everything counted lost before the output: the kernel's counters and decode errors (each
    /// sink's own drops are added by `Output`, per sink).
    pub(super) fn counts(&mut self) -> Result<LossCounts> {
        self.losses.counters.read(self.losses.decode_errors)
    }

    /// Writes a `loss` record when any counter (or any sink's drops) moved since the last one;
    /// returns the counts.
    pub(super) fn report_loss(&mut self, clock: &Clock) -> Result<LossCounts> {
        let counts = self.counts()?;
        let closes_lost = |c: &LossCounts| c.ring_buffer_full.close + c.in_flight_table_full.close;
        if closes_lost(&counts) > closes_lost(&self.losses.reported) {
            self.known.listeners.closes_lost();
        }
        if counts.births_lost_since(&self.losses.reported) {
            self.known.reconciler.loss(clock.boot_now());
        }
        let drops = self.out.drops();
        if counts != self.losses.reported || drops != self.losses.reported_drops {
            // Losses not yet visible as sequence gaps get their numbers now, just before the
            // record that counts them.
            self.out.skip(self.losses.seq.reported(&counts));
            self.out.write(&Record::Loss(LossRecord {
                time: clock.stamp_now(),
                counts,
                sinks: None,
            }))?;
            self.losses.reported = counts;
            self.losses.reported_drops = drops;
        }
        Ok(counts)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()
    }

    /// Reopens the sinks' destinations (SIGHUP).
    pub fn reopen(&mut self) {
        self.out.reopen();
    }

    /// The totals, last.
    pub fn finish(&mut self, reason: &'static str, clock: &Clock) -> Result<()> {
        let counts = self.report_loss(clock)?;
        self.out.write(&Record::Stop(StopRecord {
            time: clock.stamp_now(),
            reason,
            events: 0, // each sink's own, filled in by `Output`
            counts,
            sinks: None,
        }))?;
        self.flush()
    }

    /// Waits at most `limit` for the output to write out everything; what it could not is
    /// counted as dropped. The sinks that did not write everything (the stop record, maybe).
    pub fn settle(&mut self, limit: std::time::Duration) -> Vec<String> {
        self.out.settle(limit)
    }

    /// Sink `name`'s stop record with the totals as they are now, numbered after everything
    /// else but not written: for stderr, when the sink did not take the real one.
    pub fn stop_line(
        &mut self,
        name: &str,
        reason: &'static str,
        clock: &Clock,
    ) -> Result<Vec<u8>> {
        let counts = self.counts()?;
        let time = clock.stamp_now();
        Ok(self.out.encode_alone(name, |events, dropped, drops| {
            Record::Stop(StopRecord {
                time,
                reason,
                events,
                counts: counts.with_output_dropped(dropped),
                sinks: drops,
            })
        }))
    }
}
