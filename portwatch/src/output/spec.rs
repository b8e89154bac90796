//! `--output` values: where records go, each sink with its format and options.
//!
//! `stdout[,format=F]`, `file:PATH[,format=F][,max-size=SIZE][,backups=N]` (SIZE is bytes or a
//! number with K, M or G, powers of 1024), or `syslog[:unix:PATH|:udp://HOST:PORT|:tcp://HOST:PORT]
//! [,format=F][,facility=NAME][,max-line=BYTES]`. A format not named is `--format`'s.
use std::{path::PathBuf, str::FromStr};

use super::{
    format::Format,
    sink::{Framing, Rotation, Syslog, Target},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub kind: OutputKind,
    pub format: Option<Format>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Stdout,
    File { path: PathBuf, rotation: Rotation },
    Syslog { target: Target, framing: Framing },
}

/// The syslog facilities by name (RFC 5424 numbers).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// daemon, 8 KiB: what rsyslog takes by default (its maxMessageSize).
pub const DEFAULT_FRAMING: Framing = Framing {
    facility: 3,
    max_line: 8192,
};

/// A file is rotated at 100 MiB, and five rotated files are kept.
pub const DEFAULT_ROTATION: Rotation = Rotation {
    max_bytes: Some(100 << 20),
    backups: 5,
};

impl OutputSpec {
    pub const STDOUT: Self = Self {
        kind: OutputKind::Stdout,
        format: None,
    };

    /// How records and messages name the sink: `stdout`, `file:PATH`.
    pub fn name(&self) -> String {
        match &self.kind {
            OutputKind::Stdout => "stdout".into(),
            OutputKind::File { path, .. } => format!("file:{}", path.display()),
            OutputKind::Syslog { target, .. } => Syslog::name(target),
        }
    }
}

impl FromStr for OutputSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (target, options) = s.split_once(',').unwrap_or((s, ""));
        let mut kind = kind(target)?;
        let mut format = None;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("option `{option}` needs a value (KEY=VALUE)"))?;
            if key == "format" {
                format = Some(
                    <Format as clap::ValueEnum>::from_str(value, false).map_err(|_| {
                        format!("unknown format `{value}` (known: native, ecs, ocsf)")
                    })?,
                );
            } else {
                set_option(&mut kind, target, key, value)?;
            }
        }
        Ok(Self { kind, format })
    }
}

/// The destination of `--output TARGET[,...]`, with its default options.
fn kind(target: &str) -> Result<OutputKind, String> {
    Ok(if target == "stdout" {
        OutputKind::Stdout
    } else if let Some(path) = target.strip_prefix("file:") {
        if path.is_empty() {
            return Err("`file:` needs a path, e.g. file:/var/log/portwatch/events.json".into());
        }
        OutputKind::File {
            path: path.into(),
            rotation: DEFAULT_ROTATION,
        }
    } else if let Some(rest) = target.strip_prefix("syslog") {
        let to = match rest.strip_prefix(':') {
            None if rest.is_empty() => Target::Unix("/dev/log".into()),
            Some(path) if path.starts_with("unix:") && path.len() > 5 => {
                Target::Unix(path[5..].into())
            }
            Some(addr) if addr.starts_with("udp://") && addr.len() > 6 => {
                Target::Udp(host_port(&addr[6..])?)
            }
            Some(addr) if addr.starts_with("tcp://") && addr.len() > 6 => {
                Target::Tcp(host_port(&addr[6..])?)
            }
            _ => {
                return Err(format!(
                    "`{target}`: syslog takes unix:PATH, udp://HOST:PORT or tcp://HOST:PORT (or nothing: /dev/log)"
                ));
            }
        };
        OutputKind::Syslog {
            target: to,
            framing: DEFAULT_FRAMING,
        }
    } else {
        return Err(format!(
            "unknown output `{target}` (known: stdout, file:PATH, syslog, syslog:unix:PATH, syslog:udp://HOST:PORT, syslog:tcp://HOST:PORT)"
        ));
    })
}

/// One option of a file or syslog destination.
fn set_option(kind: &mut OutputKind, target: &str, key: &str, value: &str) -> Result<(), String> {
    match (key, kind) {
        ("max-size", OutputKind::File { rotation, .. }) => {
            rotation.max_bytes = match value {
                "0" | "none" => None,
                v => Some(size(v)?),
            };
        }
        ("backups", OutputKind::File { rotation, .. }) => {
            rotation.backups = value
                .parse()
                .ok()
                .filter(|&n| n <= 1000)
                .ok_or_else(|| format!("backups `{value}`: a number from 0 to 1000"))?;
        }
        ("facility", OutputKind::Syslog { framing, .. }) => {
            framing.facility = FACILITIES
                .iter()
                .position(|f| *f == value)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| format!("facility `{value}` (known: {})", FACILITIES.join(", ")))?;
        }
        ("max-line", OutputKind::Syslog { framing, .. }) => {
            framing.max_line = value
                .parse()
                .ok()
                .filter(|n| (480..=1 << 20).contains(n))
                .ok_or_else(|| format!("max-line `{value}`: bytes, from 480 to 1048576"))?;
        }
        _ => {
            return Err(format!(
                "`{key}` is not an option of `{target}` (stdout takes format; file: format, max-size, backups; syslog: format, facility, max-line)"
            ));
        }
    }
    Ok(())
}

/// HOST:PORT, with a port.
fn host_port(addr: &str) -> Result<String, String> {
    let port = addr.rsplit_once(':').map(|(_, p)| p);
    match port.map(str::parse::<u16>) {
        Some(Ok(p)) if p > 0 => Ok(addr.to_owned()),
        _ => Err(format!(
            "`{addr}`: HOST:PORT, e.g. 127.0.0.1:514 or [::1]:514"
        )),
    }
}

/// `100M`, `4096`, `1G`.
fn size(v: &str) -> Result<u64, String> {
    let (digits, unit) = match v.as_bytes().last() {
        Some(b'K' | b'k') => (&v[..v.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n >= 4096)
        .ok_or_else(|| format!("max-size `{v}`: a size of at least 4096 bytes, e.g. 100M"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_with_their_options_and_bad_ones_are_named() {
        assert_eq!("stdout".parse(), Ok(OutputSpec::STDOUT));
        let f: OutputSpec = "file:/var/log/pw.json,format=ocsf,max-size=10M,backups=2"
            .parse()
            .unwrap();
        assert_eq!(f.format, Some(Format::Ocsf));
        assert_eq!(
            f.kind,
            OutputKind::File {
                path: "/var/log/pw.json".into(),
                rotation: Rotation {
                    max_bytes: Some(10 << 20),
                    backups: 2
                }
            }
        );
        assert_eq!(f.name(), "file:/var/log/pw.json");
        let sys: OutputSpec = "syslog:tcp://127.0.0.1:514,facility=local3,max-line=2048"
            .parse()
            .unwrap();
        assert_eq!(
            sys.kind,
            OutputKind::Syslog {
                target: Target::Tcp("127.0.0.1:514".into()),
                framing: Framing {
                    facility: 19,
                    max_line: 2048
                }
            }
        );
        assert_eq!(sys.name(), "syslog:tcp://127.0.0.1:514");
        let local: OutputSpec = "syslog".parse().unwrap();
        assert_eq!(local.name(), "syslog:unix:/dev/log");
        for (bad, says) in [
            ("kafka://x", "unknown output `kafka://x`"),
            ("file:", "needs a path"),
            ("stdout,max-size=1M", "not an option of `stdout`"),
            ("file:/x,format=xml", "unknown format `xml`"),
            ("file:/x,max-size=12", "at least 4096"),
            ("file:/x,backups=-1", "from 0 to 1000"),
            ("file:/x,backups", "needs a value"),
            ("syslog:tcp://host", "HOST:PORT"),
            ("syslog:http://x:1", "syslog takes"),
            ("syslog,facility=mars", "facility `mars`"),
            ("syslog,max-line=10", "from 480"),
        ] {
            let e = bad.parse::<OutputSpec>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
