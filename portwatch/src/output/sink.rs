//! Where encoded records go. A sink takes whole lines and must not split one: any `io::Write`
//! through `Writer` (`ls`, tests), stdout through `Queued` for `watch`, which never blocks.
use std::{
    io::{self, Write},
    os::fd::{AsRawFd, BorrowedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc::{Sender, channel},
    },
    time::{Duration, Instant},
};

/// A destination for encoded records.
pub trait Sink {
    /// Takes `bytes` (whole records): true when they will be written in full, false when the
    /// sink dropped them all rather than block (its reader stopped reading); `Output` counts
    /// those. An error ends the stream.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<bool>;
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
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<bool> {
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
    tx: Option<Sender<Vec<u8>>>,
    /// Bytes taken and not yet written.
    queued: Arc<AtomicUsize>,
    /// Records (lines) taken, and written.
    taken: u64,
    written: Arc<AtomicU64>,
    bound: usize,
    /// The writer's error (EPIPE when the reader went away), handed to the next `write_all`.
    failed: Arc<Mutex<Option<io::Error>>>,
}

/// How much may wait for stdout's reader: some 27,000 records, several seconds of a storm.
pub const QUEUE_BYTES: usize = 8 << 20;

/// The most a pipe writes atomically (PIPE_BUF): the writer thread writes whole lines in
/// pieces up to this size, so a write that blocks (a reader that stopped) leaves no half line
/// in the pipe, and the lines written are known exactly.
const ATOMIC_WRITE: usize = 4096;

/// The next piece of `chunk` to write: whole lines, up to `ATOMIC_WRITE` bytes (a longer line
/// alone).
fn next_piece(chunk: &[u8]) -> &[u8] {
    let window = &chunk[..chunk.len().min(ATOMIC_WRITE)];
    match memchr::memrchr(b'\n', window) {
        Some(end) => &chunk[..=end],
        None => match memchr::memchr(b'\n', chunk) {
            Some(end) => &chunk[..=end],
            None => chunk,
        },
    }
}

impl Queued {
    pub fn new<W: Write + Send + 'static>(mut w: W, bound: usize) -> io::Result<Self> {
        let (tx, rx) = channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(None));
        let (q, n, f) = (
            Arc::clone(&queued),
            Arc::clone(&written),
            Arc::clone(&failed),
        );
        std::thread::Builder::new()
            .name("output".into())
            .spawn(move || {
                for chunk in rx {
                    let mut rest = &chunk[..];
                    while !rest.is_empty() {
                        let piece = next_piece(rest);
                        if let Err(e) = w.write_all(piece).and_then(|()| w.flush()) {
                            *f.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                            return;
                        }
                        rest = &rest[piece.len()..];
                        q.fetch_sub(piece.len(), Ordering::Release);
                        n.fetch_add(lines(piece), Ordering::Release);
                    }
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            queued,
            taken: 0,
            written,
            bound,
            failed,
        })
    }
}

impl Sink for Queued {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<bool> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(e) = failed {
            return Err(e);
        }
        if self.queued.load(Ordering::Acquire) + bytes.len() > self.bound {
            return Ok(false);
        }
        self.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(bytes.to_vec()).is_ok());
        if !sent {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.taken += lines(bytes);
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
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<bool> {
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
            if q.write_all(&chunk).unwrap() {
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
