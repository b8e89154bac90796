//! A destination run by a thread of its own behind a bounded queue, so that one that stops
//! taking lines (`portwatch watch | sleep 60`, a full disk, a dead syslog receiver) can neither
//! block the event loop (signals, the ring buffer, the other sinks) nor make memory grow: at
//! most `bound` bytes wait; what comes beyond is dropped, whole, and counted by `Output`; what
//! the destination itself fails to write is counted here (`Progress::lost`).
use std::{
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc::{Sender, channel},
    },
    time::{Duration, Instant},
};

use super::{Lines, Sink, lines};

/// How much may wait for a destination: some 27,000 native records, several seconds of a storm.
pub const QUEUE_BYTES: usize = 8 << 20;

/// Where a queue's thread writes.
pub trait Destination: Send + 'static {
    /// Writes `lines` (whole lines), telling `progress` what was written and what was lost (never
    /// half a line); an error ends the stream (stdout's reader gone).
    fn write(&mut self, lines: &[u8], progress: &Progress) -> io::Result<()>;
    /// Opens the destination again (SIGHUP).
    fn reopen(&mut self) {}
}

/// What a queue's thread has done with the lines it was given.
#[derive(Default)]
pub struct Progress {
    /// Memory taken and not yet done with, in bytes (`Lines::held`).
    queued: AtomicUsize,
    written: AtomicU64,
    lost: AtomicU64,
    /// Records written shortened (a syslog receiver's size limit).
    truncated: AtomicU64,
}

impl Progress {
    pub fn wrote(&self, piece: &[u8]) {
        self.written.fetch_add(lines(piece), Ordering::Release);
        self.queued.fetch_sub(piece.len(), Ordering::Release);
    }

    pub fn truncated(&self) {
        self.truncated.fetch_add(1, Ordering::Release);
    }

    pub fn lost(&self, piece: &[u8]) {
        self.lost.fetch_add(lines(piece), Ordering::Release);
        self.queued.fetch_sub(piece.len(), Ordering::Release);
    }
}

enum Message {
    Lines(Lines),
    Reopen,
}

pub struct Queued {
    tx: Option<Sender<Message>>,
    progress: Arc<Progress>,
    /// Records taken.
    taken: u64,
    bound: usize,
    /// The destination's error (EPIPE when the reader went away), handed to the next `take`.
    failed: Arc<Mutex<Option<io::Error>>>,
}

impl Queued {
    /// `dest` on a thread called `name`, with at most `bound` bytes waiting.
    pub fn new(mut dest: impl Destination, bound: usize, name: &str) -> io::Result<Self> {
        let (tx, rx) = channel::<Message>();
        let progress = Arc::new(Progress::default());
        let failed = Arc::new(Mutex::new(None));
        let (p, f) = (Arc::clone(&progress), Arc::clone(&failed));
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for message in rx {
                    let Message::Lines(lines) = message else {
                        dest.reopen();
                        continue;
                    };
                    if let Err(e) = dest.write(&lines.bytes, &p) {
                        *f.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        return;
                    }
                    // The rest of the charge: the buffer's capacity beyond its lines.
                    p.queued
                        .fetch_sub(lines.held - lines.bytes.len(), Ordering::Release);
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            progress,
            taken: 0,
            bound,
            failed,
        })
    }
}

impl Sink for Queued {
    fn take(&mut self, lines: Lines) -> io::Result<bool> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(e) = failed {
            return Err(e);
        }
        let held = lines.held.max(lines.bytes.len());
        if self.progress.queued.load(Ordering::Acquire) + held > self.bound {
            return Ok(false);
        }
        self.progress.queued.fetch_add(held, Ordering::AcqRel);
        let count = lines.count;
        let message = Message::Lines(Lines { held, ..lines });
        if self.tx.as_ref().is_none_or(|tx| tx.send(message).is_err()) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.taken += count;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn settle(&mut self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        while self.progress.queued.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let done = self.progress.written.load(Ordering::Acquire) + self.lost();
        self.taken.saturating_sub(done)
    }

    fn lost(&self) -> u64 {
        self.progress.lost.load(Ordering::Acquire)
    }

    fn truncated(&self) -> u64 {
        self.progress.truncated.load(Ordering::Acquire)
    }

    fn queued(&self) -> usize {
        self.progress.queued.load(Ordering::Acquire)
    }

    fn reopen(&mut self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Reopen);
        }
    }
}
