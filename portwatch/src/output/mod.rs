//! The output side: format-neutral records (`record`) are numbered, encoded once by the chosen
//! format (`format`) and handed to a sink (`sink`) in whole lines. Buffered; the event loop
//! flushes after each drain of the ring buffer (the first record of a burst at once, the others
//! within `cmd::watch::DRAIN`).
pub mod format;
pub mod record;
pub mod sink;

use crate::error::{Error, Result};
use format::Encoder;
use record::Record;
use sink::Sink;

/// Lines are formatted straight into the output buffer, which is written out when it holds this
/// much (or at `flush`).
const BUFFER_BYTES: usize = 256 * 1024;

/// Numbered records, encoded into a buffer of whole lines and written to one sink.
pub struct Output<S: Sink> {
    encoder: Box<dyn Encoder>,
    sink: S,
    /// Whole lines not yet written (reused: no allocation per record).
    buffer: Vec<u8>,
    /// Event records written (not start/loss/stop), those in `buffer` included.
    pub events: u64,
    /// Records (and of them, events) in `buffer`.
    buffered: (u64, u64),
    /// Records the sink dropped rather than block: numbered, never written.
    pub dropped: u64,
    /// The next record's sequence number. Numbers of lost events are skipped (`skip`), so the
    /// gaps in a stream are exactly its losses.
    next_seq: u64,
}

impl<S: Sink> Output<S> {
    pub fn new(encoder: Box<dyn Encoder>, sink: S) -> Self {
        Self {
            encoder,
            sink,
            buffer: Vec::with_capacity(BUFFER_BYTES + 4096),
            events: 0,
            buffered: (0, 0),
            dropped: 0,
            next_seq: 0,
        }
    }

    /// Leaves `n` sequence numbers unused: events that were lost at this point of the stream.
    pub fn skip(&mut self, n: u64) {
        self.next_seq += n;
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        self.encoder.encode(self.next_seq, record, &mut self.buffer);
        self.next_seq += 1;
        self.buffered.0 += 1;
        if record.is_event() {
            self.events += 1;
            self.buffered.1 += 1;
        }
        if self.buffer.len() >= BUFFER_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.write_out()?;
        self.sink.flush().map_err(Error::from_output)
    }

    /// Waits at most `limit` for the sink to write out what it took; what it could not write
    /// by then is counted as dropped. True when everything was written.
    pub fn settle(&mut self, limit: std::time::Duration) -> bool {
        let unwritten = self.sink.settle(limit);
        self.dropped += unwritten;
        unwritten == 0
    }

    /// `record` encoded under the next sequence number, for another destination than the sink.
    pub fn encode_alone(&mut self, record: &Record) -> Vec<u8> {
        let mut line = Vec::new();
        self.encoder.encode(self.next_seq, record, &mut line);
        self.next_seq += 1;
        line
    }

    fn write_out(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let (records, events) = std::mem::take(&mut self.buffered);
        let taken = self.sink.write_all(&mut self.buffer, records);
        // Cleared even on error: the caller stops on an output error anyway.
        self.buffer.clear();
        if !taken.map_err(Error::from_output)? {
            self.dropped += records;
            self.events -= events;
        }
        Ok(())
    }
}

/// Like `BufWriter`: what is still buffered goes out when the output is dropped (errors are
/// ignored there; `flush` reports them).
impl<S: Sink> Drop for Output<S> {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_complete(n: usize) -> Record {
        Record::SnapshotComplete(record::SnapshotRecord {
            time: String::new(),
            listeners: n,
        })
    }

    #[test]
    fn lines_are_numbered_buffered_and_written_whole() {
        let mut sink = Vec::new();
        {
            let mut out = Output::new(Box::new(format::Native), sink::Writer(&mut sink));
            out.write(&snapshot_complete(1)).unwrap();
            out.skip(2); // two lost events
            out.write(&snapshot_complete(2)).unwrap();
            out.flush().unwrap();
            // Enough lines to pass the buffer size, and one left for drop to write.
            for _ in 0..BUFFER_BYTES / 64 {
                out.write(&snapshot_complete(3)).unwrap();
            }
        }
        let text = String::from_utf8(sink).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + BUFFER_BYTES / 64);
        assert!(lines[0].starts_with("{\"seq\":0,"));
        assert!(lines[1].starts_with("{\"seq\":3,"));
        let last = format!("{{\"seq\":{},", 3 + BUFFER_BYTES / 64);
        assert!(lines.last().unwrap().starts_with(&last));
        assert!(text.ends_with("}\n"));
    }
}
