//! Where encoded records go. A sink takes whole lines, shared as `Bytes` between the sinks of
//! one format, and must not split one. `watch` runs each destination (stdout, a file) behind a
//! `Queued` writer thread with a bounded queue, so a slow or dead one never blocks the ring
//! buffer or the other sinks (destinations: `stdout`, `file`, `syslog`); `Writer` (`ls`, tests) and `Memory` (`doctor`, tests) write in
//! place.
mod file;
mod queued;
mod stdout;
mod syslog;

use std::{io, sync::Arc, time::Duration};

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
    /// What each line is worth, in order (None: every line is `urgent`, none an event or a
    /// birth, as loss and stop records).
    pub marks: Option<Arc<[Mark]>>,
}

/// One line of `Lines`: where it ends and what a full queue may drop first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// Offset just past its newline.
    pub end: u32,
    /// Kept when a full queue drops what it can (listener births, judgements, portwatch's own
    /// records); accepts, closes and failed binds go first.
    pub urgent: bool,
    /// An event record (counted in the stop record's `events`).
    pub event: bool,
    /// The socket inode of a listener this line reports the birth of (0: none): one that is
    /// dropped is reported again while the listener lives.
    pub birth: u64,
}

/// What a sink did not take of some lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub records: u64,
    pub events: u64,
    /// The births among them (`Mark::birth`).
    pub births: Vec<u64>,
}

impl Dropped {
    pub fn add(&mut self, other: Self) {
        self.records += other.records;
        self.events += other.events;
        self.births.extend(other.births);
    }
}

impl Lines {
    /// Lines copied into a buffer of their size.
    pub fn copied(bytes: &[u8]) -> Self {
        Self {
            bytes: Bytes::copy_from_slice(bytes),
            count: lines(bytes),
            held: bytes.len(),
            marks: None,
        }
    }

    /// Whether any line may be dropped before the urgent ones.
    pub fn has_bulk(&self) -> bool {
        self.marks
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| !m.urgent))
    }

    /// All of them, as dropped.
    pub fn dropped(&self) -> Dropped {
        match &self.marks {
            None => Dropped {
                records: self.count,
                ..Dropped::default()
            },
            Some(marks) => Dropped {
                records: self.count,
                events: marks.iter().filter(|m| m.event).count() as u64,
                births: marks.iter().map(|m| m.birth).filter(|&b| b != 0).collect(),
            },
        }
    }

    /// These lines without their last bulk lines, as many as it takes to free `need` bytes
    /// (all of them, at most), copied; and what that leaves out.
    pub fn without_bulk(&self, need: usize) -> (Self, Dropped) {
        let Some(marks) = &self.marks else {
            return (self.clone(), Dropped::default());
        };
        // Newest first: which lines go.
        let mut freed = 0;
        let mut cut = vec![false; marks.len()];
        for (i, m) in marks.iter().enumerate().rev() {
            if freed >= need {
                break;
            }
            if !m.urgent {
                let start = if i == 0 { 0 } else { marks[i - 1].end };
                freed += (m.end - start) as usize;
                cut[i] = true;
            }
        }
        let mut bytes = Vec::new();
        let mut kept = Vec::new();
        let mut dropped = Dropped::default();
        let mut start = 0;
        for (m, cut) in marks.iter().zip(cut) {
            let end = m.end as usize;
            if !cut {
                bytes.extend_from_slice(&self.bytes[start..end]);
                kept.push(Mark {
                    end: bytes.len() as u32,
                    ..*m
                });
            } else {
                dropped.records += 1;
                dropped.events += u64::from(m.event);
            }
            start = end;
        }
        let lines = Self {
            count: kept.len() as u64,
            held: bytes.len(),
            bytes: bytes.into(),
            marks: Some(kept.into()),
        };
        (lines, dropped)
    }
}

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
