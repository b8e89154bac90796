//! A syslog receiver as a destination (`--output syslog[:unix:PATH|:udp://HOST:PORT|:tcp://HOST:PORT]`):
//! each record is one RFC 5424 message, APP-NAME `portwatch`, PROCID its pid, MSGID the record
//! kind, no structured data, the JSON record as MSG; octet-counted on TCP (RFC 6587), one
//! datagram each on a unix socket or UDP. A message longer than the receiver takes (`max-line`)
//! has its longest strings shortened until it fits, still valid JSON, and is counted. A receiver
//! that is gone costs the records sent meanwhile, counted; portwatch reconnects (at most once a
//! second) and goes on.
use std::{
    io::{self, Write},
    net::{TcpStream, ToSocketAddrs, UdpSocket},
    os::unix::net::UnixDatagram,
    path::PathBuf,
    time::{Duration, Instant},
};

use super::Heading;
use super::{
    Lines,
    queued::{Destination, Progress},
};
use crate::clock::Clock;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Udp(String),
    Tcp(String),
}

/// How messages are made, besides the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// The facility's number (daemon: 3).
    pub facility: u8,
    /// The longest message, header included (rsyslog's default limit is 8 KiB).
    pub max_line: usize,
}

enum Conn {
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

pub struct Syslog {
    target: Target,
    framing: Framing,
    conn: Option<Conn>,
    /// No new connection is tried before then (after a failed one).
    retry_at: Option<Instant>,
    hostname: String,
    pid: u32,
    /// Whether the receiver is failing: a warning once per episode.
    failing: bool,
    message: Vec<u8>,
}

const RETRY: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(2);

impl Syslog {
    pub fn new(target: Target, framing: Framing) -> Self {
        Self {
            target,
            framing,
            conn: None,
            retry_at: None,
            hostname: crate::host::Host::read()
                .hostname
                .unwrap_or_else(|| "-".into()),
            pid: std::process::id(),
            failing: false,
            message: Vec::new(),
        }
    }

    pub fn name(target: &Target) -> String {
        match target {
            Target::Unix(p) => format!("syslog:unix:{}", p.display()),
            Target::Udp(a) => format!("syslog:udp://{a}"),
            Target::Tcp(a) => format!("syslog:tcp://{a}"),
        }
    }

    fn connect(&self) -> io::Result<Conn> {
        Ok(match &self.target {
            Target::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                Conn::Unix(s)
            }
            Target::Udp(addr) => {
                let to = resolve(addr)?;
                let s = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
                s.connect(to)?;
                Conn::Udp(s)
            }
            Target::Tcp(addr) => {
                let s = TcpStream::connect_timeout(&resolve(addr)?, TIMEOUT)?;
                s.set_write_timeout(Some(TIMEOUT))?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }

    /// A connection that the receiver has not closed: one it closed (rsyslog stopped) is
    /// dropped here, before a record is written into it and lost unseen.
    fn ready(&mut self) -> Option<&mut Conn> {
        if let Some(Conn::Tcp(s)) = &self.conn {
            if closed_by_peer(s) {
                self.conn = None;
            }
        }
        if self.conn.is_none() && self.retry_at.is_none_or(|t| Instant::now() >= t) {
            match self.connect() {
                Ok(c) => {
                    self.conn = Some(c);
                    self.retry_at = None;
                }
                Err(e) => {
                    self.retry_at = Some(Instant::now() + RETRY);
                    self.warn(&e);
                }
            }
        }
        self.conn.as_mut()
    }

    fn warn(&mut self, e: &io::Error) {
        if !self.failing {
            eprintln!(
                "portwatch: warning: {}: {e}; its records are dropped, and counted, until it takes them again",
                Self::name(&self.target)
            );
        }
        self.failing = true;
    }

    /// The RFC 5424 message for one record line (without its newline) at `level`, into
    /// `self.message`; true when its strings had to be shortened to fit.
    fn frame(&mut self, line: &[u8], heading: Heading) -> bool {
        let pri = u32::from(self.framing.facility) * 8 + heading.level.syslog();
        let now = Clock::now().format_now();
        // RFC 5424 allows six digits of the second's fraction.
        let time = format!("{}Z", &now[..26]);
        let header = format!("<{pri}>1 {time} {} portwatch {} ", self.hostname, self.pid);
        self.message.clear();
        self.message.extend_from_slice(header.as_bytes());
        self.message.extend_from_slice(heading.kind.as_bytes());
        self.message.extend_from_slice(b" - ");
        let room = self.framing.max_line.saturating_sub(self.message.len());
        if line.len() <= room {
            self.message.extend_from_slice(line);
            false
        } else {
            self.message.extend_from_slice(&shorten(line, room));
            true
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let Self { conn, message, .. } = self;
        match conn {
            Some(Conn::Unix(s)) => s.send(message).map(drop),
            Some(Conn::Udp(s)) => s.send(message).map(drop),
            Some(Conn::Tcp(s)) => {
                let mut framed = Vec::with_capacity(message.len() + 8);
                framed.extend_from_slice(message.len().to_string().as_bytes());
                framed.push(b' ');
                framed.extend_from_slice(message);
                s.write_all(&framed)
            }
            None => Err(io::Error::other("not connected")),
        }
    }
}

impl Destination for Syslog {
    fn write(&mut self, lines: &Lines, progress: &Progress) -> io::Result<()> {
        let mut connected = self.ready().is_some();
        for (line, heading) in lines.each() {
            // Checked before every record: a receiver that closed since is found before a
            // record goes into a connection nobody reads.
            if connected && matches!(&self.conn, Some(Conn::Tcp(s)) if closed_by_peer(s)) {
                connected = self.ready().is_some();
            }
            if !connected {
                progress.lost(line);
                continue;
            }
            if self.frame(line.strip_suffix(b"\n").unwrap_or(line), heading) {
                progress.truncated();
            }
            match self.send() {
                Ok(()) => {
                    if self.failing {
                        eprintln!(
                            "portwatch: {}: taking records again",
                            Self::name(&self.target)
                        );
                    }
                    self.failing = false;
                    progress.wrote(line);
                }
                Err(e) => {
                    // A half-sent TCP frame dies with its connection: the receiver drops it.
                    self.conn = None;
                    self.retry_at = Some(Instant::now() + RETRY);
                    self.warn(&e);
                    progress.lost(line);
                    connected = false;
                }
            }
        }
        Ok(())
    }
}

/// Whether the receiver closed or reset the connection (it never sends anything else).
fn closed_by_peer(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte buffer; MSG_PEEK leaves any data, MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recv(
            std::os::fd::AsRawFd::as_raw_fd(s),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    !(n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock)
}

fn resolve(addr: &str) -> io::Result<std::net::SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{addr}: no address")))
}

/// `line` (a JSON object) with its longest strings cut, each marked, until it takes at most
/// `room` bytes; still one valid JSON object. If even that cannot fit, a JSON object saying so.
fn shorten(line: &[u8], room: usize) -> Vec<u8> {
    const MARK: &str = "...(truncated)";
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(line) else {
        return b"{\"truncated\":true}".to_vec();
    };
    for _ in 0..64 {
        let out = serde_json::to_vec(&v).unwrap_or_default();
        if out.len() <= room {
            return out;
        }
        let over = out.len() - room;
        let Some(longest) = longest_string(&mut v) else {
            break;
        };
        let keep = longest
            .len()
            .saturating_sub(over + MARK.len())
            .min(longest.len() / 2);
        let mut cut = keep;
        while !longest.is_char_boundary(cut) {
            cut -= 1;
        }
        longest.truncate(cut);
        longest.push_str(MARK);
    }
    b"{\"truncated\":true}".to_vec()
}

fn longest_string(v: &mut serde_json::Value) -> Option<&mut String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s),
        Value::Array(items) => items
            .iter_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        Value::Object(map) => map
            .values_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::verdict::Level;

    #[test]
    fn a_long_record_is_shortened_to_valid_json() {
        let line = br#"{"seq":3,"event":"listen","args":["python3","-c",""#;
        let mut long = line.to_vec();
        long.extend(std::iter::repeat_n(b'x', 10_000));
        long.extend_from_slice(br#""],"exe":"/usr/bin/python3"}"#);
        let short = shorten(&long, 2000);
        assert!(short.len() <= 2000, "{}", short.len());
        let v: serde_json::Value = serde_json::from_slice(&short).unwrap();
        assert_eq!(v["event"], "listen");
        assert_eq!(v["exe"], "/usr/bin/python3");
        assert!(v["args"][2].as_str().unwrap().ends_with("...(truncated)"));
    }

    #[test]
    fn a_message_is_rfc_5424_with_the_kind_as_msgid() {
        let framing = Framing {
            facility: 3,
            max_line: 8192,
        };
        let mut s = Syslog::new(Target::Udp("127.0.0.1:9".into()), framing);
        s.frame(
            br#"{"seq":0,"event":"loss","lost_total":1}"#,
            Heading {
                level: Level::Notable,
                kind: "loss",
            },
        );
        let m = String::from_utf8(s.message.clone()).unwrap();
        // <daemon.warning>1 TIME HOST portwatch PID loss - MSG
        let parts: Vec<&str> = m.splitn(8, ' ').collect();
        assert_eq!(parts[0], "<28>1");
        assert_eq!(parts[1].len(), 27, "{m}");
        assert_eq!((parts[3], parts[5], parts[6]), ("portwatch", "loss", "-"));
        assert_eq!(parts[7], r#"{"seq":0,"event":"loss","lost_total":1}"#);
    }
}
