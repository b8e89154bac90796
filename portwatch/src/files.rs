//! Opening files that someone else may have put in place: a FIFO opened for reading waits for
//! a writer, which would stall the daemon's one thread, so files are opened without waiting
//! and refused unless regular.
use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

/// `path` opened for reading if it is a regular file (a FIFO, device or directory is refused
/// with `InvalidInput`).
pub fn open_regular(path: impl AsRef<Path>) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}
