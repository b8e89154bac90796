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
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, out),
            events: 0,
        }
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)
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
