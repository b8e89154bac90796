//! Where encoded records go. A sink takes whole lines and must not split one: any `io::Write`
//! through `Writer` (`ls`, tests), stdout through `Queued` for `watch`, which never blocks.
use std::{
    io::{self, Write},
    os::fd::{AsRawFd, BorrowedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc::{Receiver, Sender, channel, sync_channel},
    },
    time::{Duration, Instant},
};

/// A destination for encoded records.
pub trait Sink {
    /// Takes `bytes`, whole records, `lines` of them: true when they will be written in full,
    /// false when the sink dropped them all rather than block (its reader stopped reading);
    /// `Output` counts those. The sink may keep the buffer itself and leave another in its place;
    /// the caller clears what it finds there either way. An error ends the stream.
    fn write_all(&mut self, bytes: &mut Vec<u8>, lines: u64) -> io::Result<bool>;
    fn flush(&mut self) -> io::Result<()>;
    /// Waits at most `limit` for what was taken to be written, and returns how many of its
    /// records were not (0: all written).
    fn settle(&mut self, _limit: Duration) -> u64 {
        0
    }
}

/// Any writer as a sink, writing in place: a `Vec` in tests, stdout for `ls`.
pub struct Writer<W: Write>(pub W);

impl<W: Write> Sink for Writer<W> {
    fn write_all(&mut self, bytes: &mut Vec<u8>, _lines: u64) -> io::Result<bool> {
        self.0.write_all(bytes).map(|()| true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A writer run by a thread of its own, so that a reader that stops reading (`portwatch watch |
/// sleep 60`) can neither block the event loop (signals, the ring buffer) nor make memory grow:
/// at most `bound` bytes wait; what comes beyond is dropped, whole, and counted by `Output`.
pub struct Queued {
    tx: Option<Sender<Chunk>>,
    /// Emptied buffers the writer hands back, for `write_all` to swap in (a few at most).
    spare: Receiver<Vec<u8>>,
    /// Memory taken and not yet written, in bytes (see `Chunk::charge`).
    queued: Arc<AtomicUsize>,
    /// Records (lines) taken, and written.
    taken: u64,
    written: Arc<AtomicU64>,
    bound: usize,
    /// The writer's error (EPIPE when the reader went away), handed to the next `write_all`.
    failed: Arc<Mutex<Option<io::Error>>>,
}

/// Lines for the writer thread, and the memory they hold: the buffer's capacity, so the bound is
/// on memory, not on bytes of lines.
struct Chunk {
    bytes: Vec<u8>,
    charge: usize,
}

/// How much may wait for stdout's reader: some 27,000 records, several seconds of a storm.
pub const QUEUE_BYTES: usize = 8 << 20;

/// Below this, the lines are copied into a buffer of their size; above, the buffer itself is
/// handed over and a spare one takes its place (no copy of a storm's output).
const HAND_OVER: usize = 64 * 1024;

/// Spare buffers kept for swapping in.
const SPARES: usize = 2;

/// The most a pipe writes atomically (PIPE_BUF). When a pipe has no room for more, the writer
/// thread writes whole lines in pieces up to this size, so a write that blocks (a reader that
/// stopped) leaves no half line in the pipe, and the lines written are known exactly.
const ATOMIC_WRITE: usize = 4096;

/// The next piece of `chunk` to write: whole lines, up to `limit` bytes (a longer line alone).
fn next_piece(chunk: &[u8], limit: usize) -> &[u8] {
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

/// How much `fd` takes without blocking, when it is a pipe: its capacity less what it holds
/// (counted in whole pages, as the pipe stores it, and a page of margin for the one being
/// filled). Anything else (a file, a terminal): no limit.
fn room(fd: i32, capacity: Option<usize>) -> usize {
    let Some(capacity) = capacity else {
        return usize::MAX;
    };
    let mut held: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut held) } != 0 {
        return ATOMIC_WRITE;
    }
    let pages = (held.max(0) as usize).div_ceil(4096) + 1;
    capacity.saturating_sub(pages * 4096).max(ATOMIC_WRITE)
}

impl Queued {
    pub fn new<W: Write + AsRawFd + Send + 'static>(mut w: W, bound: usize) -> io::Result<Self> {
        let (tx, rx) = channel::<Chunk>();
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(SPARES);
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(None));
        let (q, n, f) = (
            Arc::clone(&queued),
            Arc::clone(&written),
            Arc::clone(&failed),
        );
        let fd = w.as_raw_fd();
        // SAFETY: no pointer argument; fails (-1) on anything but a pipe.
        let capacity = usize::try_from(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }).ok();
        std::thread::Builder::new()
            .name("output".into())
            .spawn(move || {
                for Chunk { mut bytes, charge } in rx {
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let piece = next_piece(rest, room(fd, capacity));
                        if let Err(e) = w.write_all(piece).and_then(|()| w.flush()) {
                            *f.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                            return;
                        }
                        rest = &rest[piece.len()..];
                        n.fetch_add(lines(piece), Ordering::Release);
                        q.fetch_sub(piece.len(), Ordering::Release);
                    }
                    // The rest of the charge: the buffer's capacity beyond its lines.
                    q.fetch_sub(charge - bytes.len(), Ordering::Release);
                    bytes.clear();
                    let _ = spare_tx.try_send(bytes);
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            spare,
            queued,
            taken: 0,
            written,
            bound,
            failed,
        })
    }
}

impl Sink for Queued {
    fn write_all(&mut self, bytes: &mut Vec<u8>, lines: u64) -> io::Result<bool> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(e) = failed {
            return Err(e);
        }
        let hand_over = bytes.len() >= HAND_OVER;
        let charge = if hand_over {
            bytes.capacity()
        } else {
            bytes.len()
        };
        if self.queued.load(Ordering::Acquire) + charge > self.bound {
            return Ok(false);
        }
        let chunk = if hand_over {
            let capacity = bytes.capacity();
            let spare = self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(capacity));
            std::mem::replace(bytes, spare)
        } else {
            bytes.to_vec()
        };
        self.queued.fetch_add(charge, Ordering::AcqRel);
        let sent = self.tx.as_ref().is_some_and(|tx| {
            tx.send(Chunk {
                bytes: chunk,
                charge,
            })
            .is_ok()
        });
        if !sent {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.taken += lines;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn settle(&mut self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        while self.queued.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.taken - self.written.load(Ordering::Acquire)
    }
}

fn lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
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
    fn write_all(&mut self, bytes: &mut Vec<u8>, _lines: u64) -> io::Result<bool> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The capacity asked for when the output is a pipe. Linux's default, 64 KiB, holds about 85
/// records: a reader that is a little late (a log shipper on a busy host) then stalls the writer
/// every 64 KiB, and the ring buffer fills behind it. 1 MiB is what an unprivileged process may
/// set by default (/proc/sys/fs/pipe-max-size).
const PIPE_BYTES: i32 = 1 << 20;

/// Grows the pipe `fd` to `PIPE_BYTES` if it is a smaller pipe; anything else is left alone.
/// Best effort: a refusal (a user over their pipe quota) keeps the pipe as it was.
pub fn widen_pipe(fd: BorrowedFd) {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETPIPE_SZ and F_SETPIPE_SZ take no pointer; on a descriptor that is not a pipe
    // they fail with EBADF and change nothing.
    unsafe {
        let size = libc::fcntl(fd, libc::F_GETPIPE_SZ);
        if size > 0 && size < PIPE_BYTES {
            libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    fn pipe_size(fd: BorrowedFd) -> i32 {
        // SAFETY: no pointer argument.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) }
    }

    /// A reader that never reads: the queue takes what fits, refuses the rest whole (counted by
    /// `Output`), never blocks, and the pipe holds whole lines, exactly as many as `settle`
    /// says were written.
    #[test]
    fn a_reader_that_stops_reading_blocks_nothing_and_gets_whole_lines() {
        use std::io::Read;
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe(2) just opened both; each is owned once.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut q = Queued::new(std::fs::File::from(write), 64 * 1024).unwrap();
        let line = [&[b'x'; 99][..], b"\n"].concat();
        // Chunks bigger than a pipe writes atomically, as the output's are.
        let chunk = line.repeat(100);
        let held = |fd: &OwnedFd| {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            assert_eq!(
                unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) },
                0
            );
            n as usize
        };
        let (mut taken, mut refused) = (0, 0);
        // Until the queue refuses and the pipe has stopped filling for 100 ms (the writer is
        // blocked): bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut last, mut still) = (usize::MAX, 0);
        while Instant::now() < deadline && still < 100 {
            if q.write_all(&mut chunk.clone(), 100).unwrap() {
                taken += 100;
            } else {
                refused += 100;
                let now = held(&read);
                still = if now == last { still + 1 } else { 0 };
                last = now;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert!(refused > 0 && taken > 0, "{taken} taken, {refused} refused");
        let unwritten = q.settle(Duration::from_millis(200));
        assert!(
            unwritten > 0,
            "{taken} taken, {refused} refused, {unwritten} unwritten"
        );
        let mut bytes = vec![0; held(&read)];
        std::fs::File::from(read).read_exact(&mut bytes).unwrap();
        assert!(bytes.ends_with(b"\n"), "a half line");
        assert_eq!(bytes.len() % line.len(), 0, "whole lines only");
        assert_eq!((bytes.len() / line.len()) as u64, taken - unwritten);
    }

    #[test]
    fn a_pipe_grows_to_one_mebibyte_and_a_file_is_left_alone() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe(2) just opened both; each is owned once.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        assert!(pipe_size(write.as_fd()) < PIPE_BYTES);
        widen_pipe(write.as_fd());
        assert_eq!(pipe_size(read.as_fd()), PIPE_BYTES);

        let file = std::fs::File::open("/proc/self/stat").unwrap();
        widen_pipe(file.as_fd());
        assert_eq!(pipe_size(file.as_fd()), -1);
    }
}
