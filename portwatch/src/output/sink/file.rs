//! A file as a destination (`--output file:PATH`): created mode 0600, appended to, rotated by
//! size into PATH.1 … PATH.N, reopened on SIGHUP (after an external logrotate moved it away),
//! and never a half line: a write that fails (a full disk) is cut back to the last whole line,
//! its lines are counted as lost, and writing goes on when the disk has room again.
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{
    Lines, next_piece,
    queued::{Destination, Progress},
};

/// When a file is rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write would take the file past this size (None: never).
    pub max_bytes: Option<u64>,
    /// Rotated files kept: PATH.1 (the newest) to PATH.N.
    pub backups: u32,
}

pub struct File {
    path: PathBuf,
    /// None while it cannot be opened (each write tries again).
    file: Option<fs::File>,
    rotation: Rotation,
    /// Whether the last write failed: a warning on stderr once per episode.
    failing: bool,
}

fn open(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl File {
    /// Opens (creating) `path`; an error here is a start-up error.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            file: Some(open(path)?),
            rotation,
            failing: false,
        })
    }

    fn backup(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    /// PATH.N-1 → PATH.N, …, PATH → PATH.1, and a new PATH.
    fn rotate(&mut self) {
        self.file = None;
        let moved = if self.rotation.backups == 0 {
            fs::remove_file(&self.path)
        } else {
            for n in (1..self.rotation.backups).rev() {
                let _ = fs::rename(self.backup(n), self.backup(n + 1));
            }
            fs::rename(&self.path, self.backup(1))
        };
        if let Err(e) = moved {
            eprintln!(
                "portwatch: warning: rotating {}: {e}; writing on in the same file",
                self.path.display()
            );
        }
        self.reopen();
    }

    /// Appends whole lines `piece`, or counts them lost.
    fn append(&mut self, piece: &[u8], progress: &Progress) {
        if self.file.is_none() {
            self.file = open(&self.path).ok();
        }
        let result = match &mut self.file {
            Some(file) => file.metadata().map(|m| m.len()).and_then(|before| {
                file.write_all(piece).inspect_err(|_| {
                    // What went in of these lines comes out again: no half line stays.
                    let _ = file.set_len(before);
                })
            }),
            None => Err(io::Error::other("cannot be opened")),
        };
        match result {
            Ok(()) => {
                progress.wrote(piece);
                if self.failing {
                    eprintln!("portwatch: {}: writing again", self.path.display());
                }
                self.failing = false;
            }
            Err(e) => {
                progress.lost(piece);
                if !self.failing {
                    eprintln!(
                        "portwatch: warning: {}: {e}; its records are dropped, and counted, until it can be written again",
                        self.path.display()
                    );
                }
                self.failing = true;
            }
        }
    }

    fn size(&self) -> u64 {
        self.file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len())
    }
}

impl Destination for File {
    fn write(&mut self, lines: &Lines, progress: &Progress) -> io::Result<()> {
        let mut rest = &lines.bytes[..];
        while !rest.is_empty() {
            let mut limit = usize::MAX;
            if let Some(max) = self.rotation.max_bytes {
                let first = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                let size = self.size();
                if size > 0 && size + first as u64 > max {
                    self.rotate();
                }
                // A line longer than the limit goes alone into a file of its own.
                limit = usize::try_from(max.saturating_sub(self.size()))
                    .unwrap_or(usize::MAX)
                    .max(1);
            }
            let piece = next_piece(rest, limit);
            self.append(piece, progress);
            rest = &rest[piece.len()..];
        }
        Ok(())
    }

    fn reopen(&mut self) {
        match open(&self.path) {
            Ok(f) => self.file = Some(f),
            Err(e) => {
                self.file = None;
                eprintln!(
                    "portwatch: warning: reopening {}: {e}; trying again at the next record",
                    self.path.display()
                );
            }
        }
    }
}
