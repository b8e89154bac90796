//! A destination run by a thread of its own behind a bounded queue, so that one that stops
//! taking lines (`portwatch watch | sleep 60`, a full disk, a dead syslog receiver) can neither
//! block the event loop (signals, the ring buffer, the other sinks) nor make memory grow: at
//! most `bound` bytes wait. When lines come to a full queue, what matters is kept (`Worth`):
//! lines worth less than the best of the new ones are dropped to make room, bulk before
//! urgent, the new lines' first, then the queued ones newest first but never from before a
//! queued loss or stop record (which counted what was dropped before it); only when nothing
//! worth less is left are the new lines refused. Every drop is whole lines and counted (refused
//! ones by `Output`, evicted ones here, with what the destination itself fails to write, in
//! `Progress::lost`); a dropped birth goes back to `Output`, so the listener is reported again
//! while it lives.
use std::{
    collections::VecDeque,
    io,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Dropped, Lines, Sink, Worth, lines};

/// How much may wait for a destination: some 27,000 native records, several seconds of a storm.
pub const QUEUE_BYTES: usize = 8 << 20;

/// Where a queue's thread writes.
pub trait Destination: Send + 'static {
    /// Writes `lines` (whole lines), telling `progress` what was written and what was lost (never
    /// half a line); an error ends the stream (stdout's reader gone).
    fn write(&mut self, lines: &Lines, progress: &Progress) -> io::Result<()>;
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

#[derive(Default)]
struct Waiting {
    messages: VecDeque<Message>,
    /// The sink is gone: the thread ends once the queue is empty.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    ready: Condvar,
    progress: Progress,
    /// The destination's error (EPIPE when the reader went away), handed to the next `take`.
    failed: Mutex<Option<io::Error>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct Queued {
    shared: Arc<Shared>,
    /// Records taken.
    taken: u64,
    bound: usize,
    /// Taken and then dropped for urgent lines.
    evicted: Dropped,
}

impl Queued {
    /// `dest` on a thread called `name`, with at most `bound` bytes waiting.
    pub fn new(mut dest: impl Destination, bound: usize, name: &str) -> io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Some(message) = next(&s) {
                    let Message::Lines(lines) = message else {
                        dest.reopen();
                        continue;
                    };
                    if !lines.bytes.is_empty() {
                        if let Err(e) = dest.write(&lines, &s.progress) {
                            *lock(&s.failed) = Some(e);
                            return;
                        }
                    }
                    // The rest of the charge: the buffer's capacity beyond its lines.
                    s.progress
                        .queued
                        .fetch_sub(lines.held - lines.bytes.len(), Ordering::Release);
                }
            })?;
        Ok(Self {
            shared,
            taken: 0,
            bound,
            evicted: Dropped::default(),
        })
    }

    fn queued(&self) -> usize {
        self.shared.progress.queued.load(Ordering::Acquire)
    }

    /// Drops queued lines worth less than `worth`, newest first, until `need` more bytes fit,
    /// stopping at the newest queued loss or stop record.
    fn evict(&mut self, waiting: &mut Waiting, worth: Worth, need: usize) {
        for message in waiting.messages.iter_mut().rev() {
            let over = (self.queued() + need).saturating_sub(self.bound);
            if over == 0 {
                return;
            }
            let Message::Lines(queued) = message else {
                continue;
            };
            if queued.marks.is_none() {
                return; // a loss or stop record: what came before it is counted in it
            }
            if !queued.has_below(worth) {
                continue;
            }
            let (kept, dropped) = queued.without_below(worth, over);
            let freed = queued.held - kept.held;
            self.shared
                .progress
                .queued
                .fetch_sub(freed, Ordering::AcqRel);
            self.shared
                .progress
                .lost
                .fetch_add(dropped.records, Ordering::AcqRel);
            self.evicted.add(dropped);
            *queued = kept;
        }
    }
}

/// The next message for the thread, waiting for one; None once the sink is gone and the queue
/// is empty.
fn next(s: &Shared) -> Option<Message> {
    let mut waiting = lock(&s.waiting);
    loop {
        if let Some(m) = waiting.messages.pop_front() {
            return Some(m);
        }
        if waiting.closed {
            return None;
        }
        waiting = s
            .ready
            .wait(waiting)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl Sink for Queued {
    fn take(&mut self, lines: Lines) -> io::Result<Dropped> {
        if let Some(e) = lock(&self.shared.failed).take() {
            return Err(e);
        }
        let shared = Arc::clone(&self.shared);
        let mut waiting = lock(&shared.waiting);
        let mut lines = Lines {
            held: lines.held.max(lines.bytes.len()),
            ..lines
        };
        let mut refused = Dropped::default();
        let top = lines.top();
        for worth in [Worth::Urgent, Worth::Vital] {
            let over = (self.queued() + lines.held).saturating_sub(self.bound);
            if over == 0 || worth > top {
                break;
            }
            // The new lines are the newest: theirs go first.
            if lines.has_below(worth) {
                let (kept, dropped) = lines.without_below(worth, over);
                refused.add(dropped);
                lines = kept;
            }
            self.evict(&mut waiting, worth, lines.held);
        }
        if self.queued() + lines.held > self.bound {
            refused.add(lines.dropped());
            return Ok(refused);
        }
        if lines.count == 0 {
            return Ok(refused);
        }
        self.shared
            .progress
            .queued
            .fetch_add(lines.held, Ordering::AcqRel);
        self.taken += lines.count;
        waiting.messages.push_back(Message::Lines(lines));
        self.shared.ready.notify_one();
        Ok(refused)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn settle(&mut self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        while self.queued() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let p = &self.shared.progress;
        let done = p.written.load(Ordering::Acquire) + self.lost();
        self.taken.saturating_sub(done)
    }

    fn lost(&self) -> u64 {
        self.shared.progress.lost.load(Ordering::Acquire)
    }

    fn evicted_events(&self) -> u64 {
        self.evicted.events
    }

    fn undelivered(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.evicted.births)
    }

    fn truncated(&self) -> u64 {
        self.shared.progress.truncated.load(Ordering::Acquire)
    }

    fn queued(&self) -> usize {
        Queued::queued(self)
    }

    fn reopen(&mut self) {
        lock(&self.shared.waiting)
            .messages
            .push_back(Message::Reopen);
        self.shared.ready.notify_one();
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        lock(&self.shared.waiting).closed = true;
        self.shared.ready.notify_one();
    }
}

#[cfg(test)]
mod tests;
