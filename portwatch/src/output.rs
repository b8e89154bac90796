//! Writing records as JSON lines. Buffered; the event loop flushes after each drain of the ring
//! buffer (at least every `watch::DRAIN`), so a record is written within that time of its event.
use std::{
    io::Write,
    os::fd::{AsRawFd, BorrowedFd},
};

use crate::{
    error::{Error, Result},
    record::Record,
};

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

/// Lines are formatted straight into the output buffer, which is written out when it holds this
/// much (or at `flush`).
const BUFFER_BYTES: usize = 256 * 1024;

pub struct JsonLines<W: Write> {
    out: W,
    /// Whole lines not yet written (reused: no allocation per record).
    buffer: Vec<u8>,
    /// Event records written (not start/loss/stop).
    pub events: u64,
    /// The next record's sequence number. Numbers of lost events are skipped (`skip`), so the
    /// gaps in a stream are exactly its losses.
    next_seq: u64,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            buffer: Vec::with_capacity(BUFFER_BYTES + 4096),
            events: 0,
            next_seq: 0,
        }
    }

    /// Leaves `n` sequence numbers unused: events that were lost at this point of the stream.
    pub fn skip(&mut self, n: u64) {
        self.next_seq += n;
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        record.write_line(self.next_seq, &mut self.buffer);
        self.next_seq += 1;
        if self.buffer.len() >= BUFFER_BYTES {
            self.write_out()?;
        }
        if matches!(
            record,
            Record::Bind(_) | Record::Listen(_) | Record::Accept(_) | Record::Close(_)
        ) {
            self.events += 1;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.write_out()?;
        self.out.flush().map_err(Error::from_output)
    }

    fn write_out(&mut self) -> Result<()> {
        let written = self.out.write_all(&self.buffer);
        // Cleared even on error: the caller stops on an output error anyway.
        self.buffer.clear();
        written.map_err(Error::from_output)
    }
}

/// Like `BufWriter`: what is still buffered goes out when the writer is dropped (errors are
/// ignored there; `flush` reports them).
impl<W: Write> Drop for JsonLines<W> {
    fn drop(&mut self) {
        let _ = self.write_out();
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

    fn snapshot_complete(n: usize) -> Record {
        Record::SnapshotComplete(crate::record::SnapshotRecord {
            time: String::new(),
            listeners: n,
        })
    }

    #[test]
    fn lines_are_numbered_buffered_and_written_whole() {
        let mut sink = Vec::new();
        {
            let mut out = JsonLines::new(&mut sink);
            out.write(&snapshot_complete(1)).unwrap();
            out.skip(2); // two lost events
            out.write(&snapshot_complete(2)).unwrap();
            out.flush().unwrap();
            // Enough lines to pass the buffer size, and one left for drop to write.
            for _ in 0..BUFFER_BYTES / 64 {
                out.write(&snapshot_complete(3)).unwrap();
            }
        }
        let text = String::from_utf8(sink).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + BUFFER_BYTES / 64);
        assert!(lines[0].starts_with("{\"seq\":0,"));
        assert!(lines[1].starts_with("{\"seq\":3,"));
        let last = format!("{{\"seq\":{},", 3 + BUFFER_BYTES / 64);
        assert!(lines.last().unwrap().starts_with(&last));
        assert!(text.ends_with("}\n"));
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
