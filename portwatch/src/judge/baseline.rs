//! Baselines: an allowlist of listeners a person can read and edit, and the check that marks
//! every listener it does not allow.
//!
//! One rule per line, `#` starts a comment:
//!
//! ```text
//! PROTOCOL  PORT        SCOPE                      USER   EXECUTABLE
//! tcp       22          all                        root   /usr/sbin/sshd
//! udp       5353        *                          *      *
//! tcp       8000-8099   127.0.0.1                  app    /opt/app/bin/server
//! ```
//!
//! PROTOCOL is `tcp`, `udp` or `*`; PORT a number, a range `A-B` or `*`; SCOPE `loopback`,
//! `all`, `address` (any specific address), an IP address, or `*`; USER a name, a numeric uid or
//! `*`; EXECUTABLE the rest of the line (so it may contain spaces), an absolute path or `*`,
//! written as records write it (`model::text`): `\\` for a backslash, `\xNN` for a byte that is
//! not UTF-8 or a control character, and `\x23` for a `#`, which would start a comment.
use std::{fmt::Write as _, net::IpAddr, path::Path};

use crate::{
    error::{Error, Result},
    model::net::{Proto, Scope},
    model::{listener::Listener, process::ListenerOwner, text},
    trusted::Refused,
};

#[derive(Clone, Debug, PartialEq, Eq)]
enum ScopeRule {
    Scope(Scope),
    Ip(IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum UserRule {
    Name(String),
    Uid(u32),
}

/// One allowlist line; None fields are `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub line: usize,
    proto: Option<Proto>,
    ports: Option<(u16, u16)>,
    scope: Option<ScopeRule>,
    user: Option<UserRule>,
    exe: Option<String>,
}

/// What a listener is, for matching.
pub struct Subject<'a> {
    pub proto: Proto,
    pub address: IpAddr,
    pub port: u16,
    pub uid: Option<u32>,
    pub user: Option<&'a str>,
    pub exe: Option<&'a str>,
}

impl Subject<'_> {
    fn describe(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.proto.name(),
            self.port,
            scope_text(self.address),
            self.user.map_or_else(
                || self.uid.map_or_else(|| "?".into(), |u| u.to_string()),
                str::to_owned
            ),
            self.exe.unwrap_or("?")
        )
    }
}

fn scope_text(ip: IpAddr) -> String {
    match Scope::of(&(ip, 0).into()) {
        Scope::Address => ip.to_string(),
        s => s.name().to_owned(),
    }
}

impl Rule {
    fn allows(&self, s: &Subject<'_>) -> bool {
        self.proto.is_none_or(|p| p == s.proto)
            && self
                .ports
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&s.port))
            && self.scope.as_ref().is_none_or(|rule| match rule {
                ScopeRule::Scope(scope) => *scope == Scope::of(&(s.address, 0).into()),
                ScopeRule::Ip(ip) => ip.to_canonical() == s.address.to_canonical(),
            })
            && self.user.as_ref().is_none_or(|rule| match rule {
                UserRule::Name(n) => s.user == Some(n.as_str()),
                UserRule::Uid(u) => s.uid == Some(*u),
            })
            && self.exe.as_deref().is_none_or(|e| s.exe == Some(e))
    }
}

#[derive(Clone, Debug)]
pub struct Baseline {
    pub path: String,
    pub rules: Vec<Rule>,
}

/// The largest baseline accepted, 1 MiB (some 17,000 rules): it is read with this bound, so a
/// wrong path (`/dev/zero`, a log file) cannot fill memory.
pub const MAX_BYTES: u64 = 1 << 20;

impl Baseline {
    /// Reads and parses the baseline at `path`, refusing, in one line, a file that is not a
    /// regular file, is larger than `MAX_BYTES`, or could be changed by someone other than root
    /// and portwatch's own user: whoever can write the baseline can silence every alert (the
    /// rule sshd's StrictModes applies to authorized_keys).
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        match crate::trusted::read(path, MAX_BYTES, "baseline", "silence every alert") {
            Ok(text) => Self::parse(&text, &shown),
            Err(Refused::Io(e)) => Err(Error::io(format!("cannot read baseline {shown}"), e)),
            Err(Refused::Problem(problem)) => Err(Error::BaselineFile {
                path: shown,
                problem,
            }),
            Err(Refused::NotUtf8 { line }) => Err(Error::Baseline {
                path: shown,
                line,
                problem: "not UTF-8 text (write a byte that is not UTF-8 as \\xNN)".into(),
            }),
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Self> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let problem = |problem: String| Error::Baseline {
                path: path.to_owned(),
                line: i + 1,
                problem,
            };
            rules.push(parse_rule(line, i + 1).map_err(problem)?);
        }
        Ok(Self {
            path: path.to_owned(),
            rules,
        })
    }

    /// None when a rule allows the listener; otherwise the alert text, saying why.
    pub fn check(&self, s: &Subject<'_>) -> Option<String> {
        if self.rules.iter().any(|r| r.allows(s)) {
            return None;
        }
        Some(format!(
            "not in baseline {}: no rule allows {}",
            self.path,
            s.describe()
        ))
    }
}

fn parse_rule(line: &str, number: usize) -> std::result::Result<Rule, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 5 {
        return Err(format!(
            "expected 5 fields (PROTOCOL PORT SCOPE USER EXECUTABLE), found {}",
            words.len()
        ));
    }
    let proto = match words[0] {
        "*" => None,
        name => Some(
            Proto::from_name(name)
                .ok_or_else(|| format!("unknown protocol `{name}` (expected tcp, udp or *)"))?,
        ),
    };
    let ports = parse_ports(words[1])?;
    let scope = match words[2] {
        "*" => None,
        "loopback" => Some(ScopeRule::Scope(Scope::Loopback)),
        "all" => Some(ScopeRule::Scope(Scope::All)),
        "address" => Some(ScopeRule::Scope(Scope::Address)),
        other => Some(ScopeRule::Ip(other.parse().map_err(|_| {
            format!("unknown scope `{other}` (expected loopback, all, address, an IP address or *)")
        })?)),
    };
    let user = match words[3] {
        "*" => None,
        u if u.bytes().all(|b| b.is_ascii_digit()) => Some(UserRule::Uid(
            u.parse()
                .map_err(|_| format!("uid `{u}` is out of range"))?,
        )),
        u => Some(UserRule::Name(u.to_owned())),
    };
    // The executable is the rest of the line after the fourth field.
    let rest = {
        let mut s = line;
        for w in &words[..4] {
            s = s.trim_start().strip_prefix(w).unwrap_or(s);
        }
        s.trim()
    };
    let exe = parse_exe(rest)?;
    Ok(Rule {
        line: number,
        proto,
        ports,
        scope,
        user,
        exe,
    })
}

/// PORT: a number, a range `A-B`, or `*` (None).
fn parse_ports(field: &str) -> std::result::Result<Option<(u16, u16)>, String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`{p}` is not a port number (1-65535)"))
    };
    if field == "*" {
        return Ok(None);
    }
    if let Some((lo, hi)) = field.split_once('-') {
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo > hi {
            return Err(format!("port range `{field}` is backwards"));
        }
        return Ok(Some((lo, hi)));
    }
    let p = port(field)?;
    Ok(Some((p, p)))
}

/// EXECUTABLE: an absolute path in the records' escaped form, or `*` (None).
fn parse_exe(rest: &str) -> std::result::Result<Option<String>, String> {
    match rest {
        "*" => Ok(None),
        e if e.starts_with('/') => {
            let bytes = text::unescape(e).ok_or_else(|| {
                format!(
                    "executable `{e}` has a backslash that is not an escape \
                     (write `\\\\` for a backslash, `\\xNN` for any byte)"
                )
            })?;
            // The form records use, however the rule spelled it (`\x41` is `A`).
            Ok(Some(text::escape(&bytes).into_owned()))
        }
        e => Err(format!("executable `{e}` is not an absolute path or *")),
    }
}

/// The current listeners as a baseline file (one rule per distinct listener).
pub fn render(listeners: &[(Listener, ListenerOwner)], generated: &str) -> String {
    let mut rules: Vec<(&str, u16, String, String, String)> = listeners
        .iter()
        .map(|(l, owner)| {
            let p = &owner.process;
            (
                l.socket.proto.name(),
                l.socket.local.port(),
                scope_text(l.socket.local.ip()),
                p.user
                    .clone()
                    .or_else(|| owner.task.as_ref().map(|t| t.uid.to_string()))
                    .unwrap_or_else(|| "*".into()),
                p.exe.as_deref().unwrap_or("*").to_owned(),
            )
        })
        .collect();
    rules.sort();
    rules.dedup();
    let mut out = format!(
        "# portwatch baseline, generated {generated}: the listeners allowed on this host.\n\
         # One rule per line: PROTOCOL PORT SCOPE USER EXECUTABLE\n\
         #   PROTOCOL tcp, udp or *; PORT a number, A-B or *; SCOPE loopback, all, address,\n\
         #   an IP address or *; USER a name, a uid or *; EXECUTABLE an absolute path or *.\n\
         # Use it with: portwatch watch --baseline FILE\n"
    );
    for (proto, port, scope, user, exe) in rules {
        let exe = rule_text(&exe);
        let _ = writeln!(out, "{proto:<4} {port:<6} {scope:<10} {user:<12} {exe}");
    }
    out
}

/// An executable as a rule reads it back: a `#` would start a comment, and white space at the
/// end of a line (a space, U+00A0, ...) is trimmed, so it is written as `\xNN` bytes.
fn rule_text(exe: &str) -> String {
    let kept = exe.trim_end_matches(char::is_whitespace);
    let mut out = kept.replace('#', "\\x23");
    for b in exe[kept.len()..].bytes() {
        let _ = write!(out, "\\x{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests;
