//! Writing records as JSON lines. Buffered; the caller flushes after each batch, so a record is
//! on its way within one ring-buffer wake-up of the kernel event.
use std::io::{self, BufWriter, Write};

use crate::{
    error::{Error, Result},
    record::Record,
};

pub struct JsonLines<W: Write> {
    out: BufWriter<W>,
    /// Event records written (not start/loss/stop).
    pub events: u64,
    /// The next record's sequence number. Numbers of lost events are skipped (`skip`), so the
    /// gaps in a stream are exactly its losses.
    next_seq: u64,
}

/// A record with its place in the stream.
#[derive(serde::Serialize)]
struct Numbered<'a> {
    seq: u64,
    #[serde(flatten)]
    record: &'a Record,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, out),
            events: 0,
            next_seq: 0,
        }
    }

    /// Leaves `n` sequence numbers unused: events that were lost at this point of the stream.
    pub fn skip(&mut self, n: u64) {
        self.next_seq += n;
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        let numbered = Numbered {
            seq: self.next_seq,
            record,
        };
        self.next_seq += 1;
        serde_json::to_writer(&mut self.out, &numbered)
            .map_err(|e| Error::from_output(io::Error::from(e)))?;
        self.out.write_all(b"\n").map_err(Error::from_output)?;
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
