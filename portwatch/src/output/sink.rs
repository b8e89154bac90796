//! Where encoded records go. A sink takes whole lines and must not split one; stdout is the
//! first (any `io::Write` through `Writer`).
use std::{
    io::{self, Write},
    os::fd::{AsRawFd, BorrowedFd},
};

/// A destination for encoded records.
pub trait Sink {
    /// Writes `bytes` (whole records) in full, or fails.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// Any writer as a sink: stdout, a `Vec` in tests.
pub struct Writer<W: Write>(pub W);

impl<W: Write> Sink for Writer<W> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
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
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(())
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
