//! Writing records as JSON lines. Buffered; the event loop flushes after each drain of the ring
//! buffer (at least every `watch::DRAIN`), so a record is written within that time of its event.
use std::io::{BufWriter, Write};

use crate::{
    error::{Error, Result},
    record::Record,
};

pub struct JsonLines<W: Write> {
    out: BufWriter<W>,
    /// The line being formatted (reused: no allocation per record).
    line: Vec<u8>,
    /// Event records written (not start/loss/stop).
    pub events: u64,
    /// The next record's sequence number. Numbers of lost events are skipped (`skip`), so the
    /// gaps in a stream are exactly its losses.
    next_seq: u64,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(256 * 1024, out),
            line: Vec::with_capacity(4096),
            events: 0,
            next_seq: 0,
        }
    }

    /// Leaves `n` sequence numbers unused: events that were lost at this point of the stream.
    pub fn skip(&mut self, n: u64) {
        self.next_seq += n;
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        self.line.clear();
        record.write_line(self.next_seq, &mut self.line);
        self.next_seq += 1;
        self.out.write_all(&self.line).map_err(Error::from_output)?;
        if matches!(
            record,
            Record::Bind(_) | Record::Listen(_) | Record::Accept(_) | Record::Close(_)
        ) {
            self.events += 1;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(Error::from_output)
    }
}
