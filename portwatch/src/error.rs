//! Every way portwatch can fail, each message naming the cause and the fix on one line.
use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "missing privileges: {0}; run portwatch as root (sudo portwatch ...) or give it CAP_BPF and CAP_PERFMON"
    )]
    Privileges(String),

    #[error(
        "no kernel BTF at {}: {reason}; portwatch needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (or a BTF file for this kernel passed with --btf)",
        path.display()
    )]
    NoBtf { path: PathBuf, reason: String },

    #[error(
        "tracefs is not mounted (no /sys/kernel/tracing/events); mount it with `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    NoTracefs,

    #[error(
        "tracefs is mounted at {} but this user cannot read it (it is root's, mode 0700); run portwatch as root, or give it CAP_DAC_READ_SEARCH as well as CAP_BPF and CAP_PERFMON",
        .0.display()
    )]
    TracefsUnreadable(PathBuf),

    #[error(
        "this kernel's layout is not supported: {0}; please report it with the output of `uname -r`"
    )]
    Layout(String),

    #[error("cannot load portwatch's kernel programs: {0}")]
    Load(String),

    #[error("cannot attach the `{hook}` hook, so {without} ({attempts}); {fix}")]
    Hook {
        hook: &'static str,
        without: &'static str,
        attempts: String,
        fix: String,
    },

    #[error("{0}")]
    Usage(String),

    #[error(
        "baseline {path} line {line}: {problem}; fix the line or regenerate it with `portwatch baseline`"
    )]
    Baseline {
        path: String,
        line: usize,
        problem: String,
    },

    /// A baseline file refused as a whole (not a regular file, too large, writable by others).
    #[error("baseline {path}: {problem}")]
    BaselineFile { path: String, problem: String },

    #[error("cannot write events: {0}")]
    Output(io::Error),

    /// `portwatch doctor` found paths portwatch does not see (each named on stderr).
    #[error("{0} of the {1} paths checked are blind (see above)")]
    Doctor(usize, usize),

    /// stdout was closed by its reader (`portwatch watch | head -1`): not a failure.
    #[error("stdout closed")]
    StdoutClosed,

    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub fn from_output(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Self::StdoutClosed
        } else {
            Self::Output(e)
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `outer: inner: innermost` (aya's errors nest the errno).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
