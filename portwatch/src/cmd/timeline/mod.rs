//! `portwatch timeline FILE...`: what happened, read back from portwatch's own files (native
//! records, each file with its rotations PATH.N … PATH.1 first): per port or per process, who
//! bound and listened when, the connections accepted and from where, the close, with the
//! process and its chain. Records missing from a run (its `seq` gaps) are counted, so a reader
//! knows when the story has holes.
use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::{
    cli::TimelineArgs,
    clock::epoch_ms,
    error::{Error, Result},
};

mod story;

use story::{Key, Story};

/// The files of `path` oldest first: its rotations (PATH.N down to PATH.1), then PATH.
fn with_rotations(path: &Path) -> Vec<PathBuf> {
    let rotated = |n: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    let mut files: Vec<PathBuf> = (1..).map(rotated).take_while(|p| p.exists()).collect();
    files.reverse();
    files.push(path.to_owned());
    files
}

/// `2026-12-03T11:00:00Z` or with a fraction (up to ns) as epoch ms.
fn parse_time(text: &str) -> Result<i64> {
    let bad = || {
        Error::Usage(format!(
            "time `{text}`: write RFC 3339 UTC, e.g. 2026-12-03T11:00:00Z or 2026-12-03T11:00:00.5Z"
        ))
    };
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    if secs.len() != 19 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    epoch_ms(&format!("{secs}.{frac:0<9}Z")).ok_or_else(bad)
}

/// Whether a record passes the filters (`--pid`, `--exe`, `--since`, `--until`).
struct Select {
    pids: Vec<u32>,
    exes: Vec<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl Select {
    fn admits(&self, v: &Value) -> bool {
        let pid = v["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        let exe = v["exe"].as_str();
        let at = v["time"].as_str().and_then(epoch_ms);
        (self.pids.is_empty() || pid.is_some_and(|p| self.pids.contains(&p)))
            && (self.exes.is_empty()
                || exe.is_some_and(|e| {
                    self.exes
                        .iter()
                        .any(|x| e == x || e.rsplit('/').next() == Some(x.as_str()))
                }))
            && self.since.is_none_or(|s| at.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| at.is_some_and(|t| t <= u))
    }
}

pub fn run(args: &TimelineArgs) -> Result<()> {
    let select = Select {
        pids: args.pid.clone(),
        exes: args.exe.clone(),
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
    };
    let mut story = Story::new(if args.by_process {
        Key::Process
    } else {
        Key::Port
    });
    for path in &args.files {
        for file in with_rotations(path) {
            let text =
                fs::read(&file).map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
            for (n, line) in text.split(|&b| b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_slice(line).map_err(|e| {
                    Error::Usage(format!(
                        "{} line {}: not a JSON record ({e}); timeline reads portwatch's native files (format=native)",
                        file.display(),
                        n + 1
                    ))
                })?;
                if v["seq"].is_null() || !v["event"].is_string() {
                    return Err(Error::Usage(format!(
                        "{} line {}: not a native portwatch record; timeline reads the native format (format=native)",
                        file.display(),
                        n + 1
                    )));
                }
                story.sequence(&v);
                if select.admits(&v) {
                    story.add(&v);
                }
            }
        }
    }
    let ports: Vec<u16> = args.port.clone();
    let out = if args.json {
        story.json(&ports)
    } else {
        story.text(&ports)
    };
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Error::StdoutClosed),
        Err(e) => Err(Error::io("writing stdout", e)),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_seconds_or_a_fraction_and_refuse_the_rest() {
        assert_eq!(
            parse_time("2026-01-01T00:00:01Z").unwrap(),
            parse_time("2026-01-01T00:00:00.999999999Z").unwrap() + 1
        );
        assert_eq!(parse_time("2026-01-01T00:00:00.5Z").unwrap() % 1000, 500);
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.x Z",
            "yesterday",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
