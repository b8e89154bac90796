//! Where encoded records go. A sink takes whole lines, shared as `Bytes` between the sinks of
//! one format, and must not split one. `watch` runs each destination (stdout, a file) behind a
//! `Queued` writer thread with a bounded queue, so a slow or dead one never blocks the ring
//! buffer or the other sinks (destinations: `stdout`, `file`, `syslog`); `Writer` (`ls`, tests) and `Memory` (`doctor`, tests) write in
//! place.
mod file;
mod queued;
mod stdout;
mod syslog;

use std::{io, time::Duration};

use bytes::Bytes;

pub use file::{File, Rotation};
pub use queued::{Destination, Progress, QUEUE_BYTES, Queued};
pub use stdout::{Stdout, widen_pipe};
pub use syslog::{Framing, Syslog, Target};

/// Whole encoded records, shared by the sinks of one format.
#[derive(Clone)]
pub struct Lines {
    pub bytes: Bytes,
    /// How many records.
    pub count: u64,
    /// The memory `bytes` keeps alive (its buffer's capacity), which a queue's bound counts.
    pub held: usize,
}

impl Lines {
    /// Lines copied into a buffer of their size.
    pub fn copied(bytes: &[u8]) -> Self {
        Self {
            bytes: Bytes::copy_from_slice(bytes),
            count: lines(bytes),
            held: bytes.len(),
        }
    }
}

/// A destination for encoded records.
pub trait Sink {
    /// Takes `lines`: true when they will be written (or, if the destination fails them later,
    /// counted in `lost`), false when the sink dropped them all rather than block; `Output`
    /// counts those. An error ends the stream.
    fn take(&mut self, lines: Lines) -> io::Result<bool>;
    fn flush(&mut self) -> io::Result<()>;
    /// Waits at most `limit` for what was taken to be written, and returns how many of its
    /// records were neither written nor counted in `lost` (0: all done).
    fn settle(&mut self, _limit: Duration) -> u64 {
        0
    }
    /// Records taken and then lost by the destination (a full disk): dropped too.
    fn lost(&self) -> u64 {
        0
    }
    /// Records written shortened to fit the destination (a syslog receiver's limit).
    fn truncated(&self) -> u64 {
        0
    }
    /// Memory waiting to be written, in bytes.
    fn queued(&self) -> usize {
        0
    }
    /// Reopens the destination (SIGHUP: a file moved away by logrotate).
    fn reopen(&mut self) {}
}

impl Sink for Box<dyn Sink> {
    fn take(&mut self, lines: Lines) -> io::Result<bool> {
        (**self).take(lines)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn settle(&mut self, limit: Duration) -> u64 {
        (**self).settle(limit)
    }
    fn lost(&self) -> u64 {
        (**self).lost()
    }
    fn truncated(&self) -> u64 {
        (**self).truncated()
    }
    fn queued(&self) -> usize {
        (**self).queued()
    }
    fn reopen(&mut self) {
        (**self).reopen();
    }
}

/// Any writer as a sink, writing in place: a `Vec` in tests, stdout for `ls`.
pub struct Writer<W: io::Write>(pub W);

impl<W: io::Write> Sink for Writer<W> {
    fn take(&mut self, lines: Lines) -> io::Result<bool> {
        self.0.write_all(&lines.bytes).map(|()| true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Records kept in memory, readable while the stream still holds the sink (`doctor`, tests).
#[derive(Clone, Default)]
pub struct Memory(pub std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Memory {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<Vec<u8>> {
        self.0
            .borrow()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }
}

impl Sink for Memory {
    fn take(&mut self, lines: Lines) -> io::Result<bool> {
        self.0.borrow_mut().extend_from_slice(&lines.bytes);
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The next piece of `chunk` to write: whole lines, up to `limit` bytes (a longer line alone).
pub(super) fn next_piece(chunk: &[u8], limit: usize) -> &[u8] {
    let window = &chunk[..chunk.len().min(limit)];
    if window.len() == chunk.len() {
        return chunk;
    }
    match memchr::memrchr(b'\n', window) {
        Some(end) => &chunk[..=end],
        None => match memchr::memchr(b'\n', chunk) {
            Some(end) => &chunk[..=end],
            None => chunk,
        },
    }
}

/// How many lines `bytes` holds.
pub fn lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}
