//! A destination run by a thread of its own behind a bounded queue, so that one that stops
//! taking lines (`portwatch watch | sleep 60`, a full disk, a dead syslog receiver) can neither
//! block the event loop (signals, the ring buffer, the other sinks) nor make memory grow: at
//! most `bound` bytes wait. When lines come to a full queue, what matters is kept: the bulk
//! lines (accepts, closes, failed binds) of the new lines, then of the queued ones newest
//! first, are dropped to make room for the urgent ones (listener births, judgements,
//! portwatch's own records); only when none are left is an urgent line refused. Every drop is
//! whole lines and counted (refused ones by `Output`, evicted ones here, with what the
//! destination itself fails to write, in `Progress::lost`); a refused birth goes back to
//! `Output`, so the listener is reported again while it lives.
use std::{
    collections::VecDeque,
    io,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{Dropped, Lines, Sink, lines};

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
                        if let Err(e) = dest.write(&lines.bytes, &s.progress) {
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

    /// Drops bulk lines of the queued ones, newest first, until `need` more bytes fit.
    fn evict(&mut self, waiting: &mut Waiting, need: usize) {
        for message in waiting.messages.iter_mut().rev() {
            let over = (self.queued() + need).saturating_sub(self.bound);
            if over == 0 {
                return;
            }
            let Message::Lines(queued) = message else {
                continue;
            };
            if !queued.has_bulk() {
                continue;
            }
            let (kept, dropped) = queued.without_bulk(over);
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
        let over = (self.queued() + lines.held).saturating_sub(self.bound);
        if over > 0 {
            // The new lines are the newest: their bulk goes first.
            if lines.has_bulk() {
                let (kept, dropped) = lines.without_bulk(over);
                refused.add(dropped);
                lines = kept;
            }
            self.evict(&mut waiting, lines.held);
            if self.queued() + lines.held > self.bound {
                refused.add(lines.dropped());
                return Ok(refused);
            }
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
mod tests {
    use std::sync::mpsc::{Receiver, Sender, channel};

    use super::*;
    use crate::output::sink::Mark;

    /// A destination that writes only when the test lets it, one message at a time.
    struct Gated {
        go: Receiver<()>,
        wrote: Sender<Vec<u8>>,
    }

    impl Destination for Gated {
        fn write(&mut self, lines: &[u8], progress: &Progress) -> io::Result<()> {
            let _ = self.go.recv();
            progress.wrote(lines);
            let _ = self.wrote.send(lines.to_vec());
            Ok(())
        }
    }

    /// `n` lines of 100 bytes, urgent or not, the urgent ones births of inodes from `first`.
    fn lines(n: usize, urgent: bool, first: u64) -> Lines {
        let mut bytes = Vec::new();
        let mut marks = Vec::new();
        for i in 0..n {
            let tag = if urgent { b'u' } else { b'b' };
            bytes.extend_from_slice(&[tag; 99]);
            bytes.push(b'\n');
            marks.push(Mark {
                end: bytes.len() as u32,
                urgent,
                event: true,
                birth: if urgent { first + i as u64 } else { 0 },
            });
        }
        Lines {
            count: n as u64,
            held: bytes.len(),
            bytes: bytes.into(),
            marks: Some(marks.into()),
        }
    }

    #[test]
    fn a_full_queue_drops_bulk_lines_for_urgent_ones_and_refuses_only_when_none_are_left() {
        let (go, gate) = channel();
        let (wrote, written) = channel();
        let mut q = Queued::new(Gated { go: gate, wrote }, 1100, "test-queue").unwrap();
        // The thread takes the first line and waits at the gate (its 100 bytes still count);
        // 10 bulk lines fill the queue behind it.
        assert_eq!(q.take(lines(1, false, 0)).unwrap(), Dropped::default());
        while !lock(&q.shared.waiting).messages.is_empty() {
            std::thread::yield_now();
        }
        assert_eq!(q.take(lines(10, false, 0)).unwrap(), Dropped::default());
        // A mixed batch: its bulk line is refused, its urgent ones push out queued bulk ones.
        let mut mixed = lines(3, true, 100).bytes.to_vec();
        mixed.extend_from_slice(&lines(1, false, 0).bytes);
        let mut marks: Vec<Mark> = lines(3, true, 100).marks.unwrap().to_vec();
        marks.push(Mark {
            end: 400,
            urgent: false,
            event: true,
            birth: 0,
        });
        let refused = q
            .take(Lines {
                count: 4,
                held: 400,
                bytes: mixed.into(),
                marks: Some(marks.into()),
            })
            .unwrap();
        assert_eq!((refused.records, refused.births.len()), (1, 0));
        assert_eq!(q.lost(), 3, "three queued bulk lines dropped for them");
        assert_eq!(q.evicted_events(), 3);
        // Seven bulk and three urgent queued: seven more urgent lines take the bulk ones'
        // place; the next urgent ones find none left and are refused, births and all.
        assert_eq!(q.take(lines(7, true, 200)).unwrap(), Dropped::default());
        let refused = q.take(lines(2, true, 300)).unwrap();
        assert_eq!(refused.records, 2);
        assert_eq!(refused.births, [300, 301]);
        assert_eq!(q.lost(), 10);
        // Everything taken and kept is written, in order: the urgent lines only.
        for _ in 0..4 {
            go.send(()).unwrap();
        }
        drop(go);
        // The bulk chunk, emptied, is not written at all.
        let mut out = Vec::new();
        for _ in 0..3 {
            out.extend(written.recv_timeout(Duration::from_secs(5)).unwrap());
        }
        let text = String::from_utf8(out).unwrap();
        let kinds: String = text.lines().map(|l| char::from(l.as_bytes()[0])).collect();
        assert_eq!(kinds, "buuuuuuuuuu");
        assert_eq!(q.settle(Duration::from_secs(1)), 0);
    }
}
