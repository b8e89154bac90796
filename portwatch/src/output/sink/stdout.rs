//! stdout as a destination: a pipe (a log shipper) or a file. A pipe that has no room for more
//! gets whole lines of at most PIPE_BUF bytes per write, so a write that blocks (a reader that
//! stopped) leaves no half line in the pipe, and the lines written are known exactly.
use std::{
    io::Write,
    os::fd::{AsRawFd, BorrowedFd},
};

use super::{
    Lines, next_piece,
    queued::{Destination, Progress},
};

/// The most a pipe writes atomically (PIPE_BUF).
const ATOMIC_WRITE: usize = 4096;

/// stdout (a duplicate of its descriptor, so nothing goes through `io::stdout()`'s buffer).
pub struct Stdout {
    file: std::fs::File,
    /// The pipe's capacity; None when stdout is not a pipe.
    capacity: Option<usize>,
}

impl Stdout {
    pub fn new(file: std::fs::File) -> Self {
        // SAFETY: no pointer argument; fails (-1) on anything but a pipe.
        let capacity =
            usize::try_from(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETPIPE_SZ) }).ok();
        Self { file, capacity }
    }
}

impl Destination for Stdout {
    fn write(&mut self, lines: &Lines, progress: &Progress) -> std::io::Result<()> {
        let mut rest = &lines.bytes[..];
        while !rest.is_empty() {
            let piece = next_piece(rest, room(self.file.as_raw_fd(), self.capacity));
            self.file.write_all(piece)?;
            rest = &rest[piece.len()..];
            progress.wrote(piece);
        }
        Ok(())
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
    use crate::output::sink::{Lines, Queued, Sink};
    use std::{
        os::fd::{AsFd, FromRawFd, OwnedFd},
        time::{Duration, Instant},
    };

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
        let stdout = Stdout::new(std::fs::File::from(write));
        let mut q = Queued::new(stdout, 64 * 1024, "test-output").unwrap();
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
            if q.take(Lines::copied(
                &chunk,
                crate::output::sink::Heading::default(),
            ))
            .unwrap()
            .records
                == 0
            {
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
