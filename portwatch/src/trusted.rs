//! Files that steer portwatch (the baseline, the configuration file): whoever can write one can
//! silence alerts or send the records elsewhere, so one is read only when it is a regular file of
//! bounded size, owned by root or portwatch's own user and writable by no one else (the rule
//! sshd's StrictModes applies to authorized_keys), and UTF-8.
use std::{
    io::{self, Read},
    os::unix::fs::MetadataExt,
    path::Path,
};

use crate::files::open_regular;

/// Why a file was not read.
pub enum Refused {
    Io(io::Error),
    /// Refused as a whole, with the fix.
    Problem(String),
    /// Not UTF-8 from this line on.
    NotUtf8 {
        line: usize,
    },
}

/// Reads the `kind` file at `path` (at most `max` bytes); `risk` says what someone who could
/// write it could do ("silence every alert").
pub fn read(path: &Path, max: u64, kind: &str, risk: &str) -> Result<String, Refused> {
    let shown = path.display();
    let mut file = match open_regular(path) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return Err(Refused::Problem(format!(
                "not a regular file (a FIFO, device or directory cannot be a {kind})"
            )));
        }
        opened => opened.map_err(Refused::Io)?,
    };
    let meta = file.metadata().map_err(Refused::Io)?;
    if meta.len() > max {
        return Err(Refused::Problem(format!(
            "{} bytes, more than the {max} a {kind} may have",
            meta.len()
        )));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(Refused::Problem(format!(
            "owned by uid {}, neither root nor portwatch's user (uid {me}), who could {risk} \
             with it; chown it to root",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Refused::Problem(format!(
            "writable by its group or by everyone (mode {:04o}), who could {risk} with it; \
             chmod go-w {shown}",
            meta.mode() & 0o7777
        )));
    }
    let mut raw = Vec::new();
    file.by_ref()
        .take(max + 1)
        .read_to_end(&mut raw)
        .map_err(Refused::Io)?;
    if raw.len() as u64 > max {
        return Err(Refused::Problem(format!(
            "grew past {max} bytes while it was read"
        )));
    }
    String::from_utf8(raw).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        Refused::NotUtf8 {
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })
}
