//! Where encoded records go. A sink takes whole lines, shared as `Bytes` between the sinks of
//! one format, and must not split one. `watch` runs each destination (stdout, a file) behind a
//! `Queued` writer thread with a bounded queue, so a slow or dead one never blocks the ring
//! buffer or the other sinks (destinations: `stdout`, `file`, `syslog`); `Writer` (`ls`, tests) and `Memory` (`doctor`, tests) write in
//! place.
mod file;
mod lines;
mod queued;
mod stdout;
mod syslog;

use std::{io, time::Duration};

pub use file::{File, Rotation};
pub use lines::{Dropped, Heading, Lines, Mark, Worth};
pub use queued::{Destination, Progress, QUEUE_BYTES, Queued};
pub use stdout::{Stdout, widen_pipe};
pub use syslog::{Framing, Syslog, Target};

/// A destination for encoded records.
pub trait Sink {
    /// Takes `lines`: what it took will be written (or, if the destination fails them later or
    /// a full queue drops them for urgent ones, counted in `lost`); what it refused rather than
    /// block is returned, and `Output` counts it. An error ends the stream.
    fn take(&mut self, lines: Lines) -> io::Result<Dropped>;
    fn flush(&mut self) -> io::Result<()>;
    /// Waits at most `limit` for what was taken to be written, and returns how many of its
    /// records were neither written nor counted in `lost` (0: all done).
    fn settle(&mut self, _limit: Duration) -> u64 {
        0
    }
    /// Records taken and then lost (a full disk; dropped from a full queue to make room for
    /// urgent ones): dropped too.
    fn lost(&self) -> u64 {
        0
    }
    /// Of those, event records that a full queue dropped after taking them.
    fn evicted_events(&self) -> u64 {
        0
    }
    /// The births (socket inodes) among the lines a full queue dropped after taking them, since
    /// the last call.
    fn undelivered(&mut self) -> Vec<u64> {
        Vec::new()
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
    fn take(&mut self, lines: Lines) -> io::Result<Dropped> {
        (**self).take(lines)
    }
    fn evicted_events(&self) -> u64 {
        (**self).evicted_events()
    }
    fn undelivered(&mut self) -> Vec<u64> {
        (**self).undelivered()
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
    fn take(&mut self, lines: Lines) -> io::Result<Dropped> {
        self.0.write_all(&lines.bytes).map(|()| Dropped::default())
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
    fn take(&mut self, lines: Lines) -> io::Result<Dropped> {
        self.0.borrow_mut().extend_from_slice(&lines.bytes);
        Ok(Dropped::default())
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
