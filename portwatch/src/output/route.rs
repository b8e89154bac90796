//! One output as `Output` sees it: its sink, its format, and what it took and dropped.
use super::sink::{Dropped, Lines, Sink};
use crate::error::{Error, Result};

/// A sink, its format and what it was given.
pub(super) struct Route<S> {
    pub name: String,
    pub encoding: usize,
    pub sink: S,
    /// Event records it took.
    pub events: u64,
    /// Records it refused rather than block, or could not write.
    pub refused: u64,
}

impl<S: Sink> Route<S> {
    pub(super) fn dropped(&self) -> u64 {
        self.refused + self.sink.lost()
    }

    /// Event records it took and did not drop to make room for urgent ones.
    pub(super) fn events(&self) -> u64 {
        self.events - self.sink.evicted_events()
    }
}

impl<S: Sink> Route<S> {
    pub(super) fn new(name: String, encoding: usize, sink: S) -> Self {
        Self {
            name,
            encoding,
            sink,
            events: 0,
            refused: 0,
        }
    }

    /// Gives the sink `lines`; counts what it refuses, and returns that.
    pub(super) fn hand_over(&mut self, lines: Lines) -> Result<Dropped> {
        let events = lines.dropped().events;
        let refused = self.sink.take(lines).map_err(Error::from_output)?;
        self.events += events - refused.events;
        self.refused += refused.records;
        Ok(refused)
    }
}
