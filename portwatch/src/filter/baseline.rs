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
//! `*`; EXECUTABLE the rest of the line (so it may contain spaces), an absolute path or `*`.
use std::{fmt::Write as _, fs, net::IpAddr, path::Path};

use crate::{
    error::{Error, Result},
    model::net::{Proto, Scope},
    model::{listener::Listener, process::ListenerOwner},
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

impl Baseline {
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read baseline {}", path.display()), e))?;
        Self::parse(&text, &path.display().to_string())
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
    let any = |f: &str| f == "*";
    let proto = match words[0] {
        "*" => None,
        name => Some(
            Proto::from_name(name)
                .ok_or_else(|| format!("unknown protocol `{name}` (expected tcp, udp or *)"))?,
        ),
    };
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`{p}` is not a port number (1-65535)"))
    };
    let ports = if any(words[1]) {
        None
    } else if let Some((lo, hi)) = words[1].split_once('-') {
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo > hi {
            return Err(format!("port range `{}` is backwards", words[1]));
        }
        Some((lo, hi))
    } else {
        let p = port(words[1])?;
        Some((p, p))
    };
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
    let exe = match rest {
        "*" => None,
        e if e.starts_with('/') => Some(e.to_owned()),
        e => return Err(format!("executable `{e}` is not an absolute path or *")),
    };
    Ok(Rule {
        line: number,
        proto,
        ports,
        scope,
        user,
        exe,
    })
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
        let _ = writeln!(out, "{proto:<4} {port:<6} {scope:<10} {user:<12} {exe}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(
        proto: Proto,
        addr: &str,
        port: u16,
        user: &'a str,
        exe: &'a str,
    ) -> Subject<'a> {
        Subject {
            proto,
            address: addr.parse().unwrap(),
            port,
            uid: Some(0),
            user: Some(user),
            exe: Some(exe),
        }
    }

    #[test]
    fn rules_match_what_they_say() {
        let b = Baseline::parse(
            "# comment\n\
             tcp 22 all root /usr/sbin/sshd\n\
             \n\
             udp 5353 * * *   # mdns from anyone\n\
             tcp 8000-8099 127.0.0.1 app /opt/my app/server\n\
             tcp 9000 address 0 *\n",
            "b.txt",
        )
        .unwrap();
        assert_eq!(b.rules.len(), 4);
        let ok = |s: Subject<'_>| b.check(&s).is_none();
        assert!(ok(subject(
            Proto::Tcp,
            "0.0.0.0",
            22,
            "root",
            "/usr/sbin/sshd"
        )));
        assert!(ok(subject(Proto::Tcp, "::", 22, "root", "/usr/sbin/sshd")));
        assert!(
            !ok(subject(
                Proto::Tcp,
                "127.0.0.1",
                22,
                "root",
                "/usr/sbin/sshd"
            )),
            "scope"
        );
        assert!(
            !ok(subject(Proto::Tcp, "0.0.0.0", 22, "root", "/tmp/sshd")),
            "exe"
        );
        assert!(
            !ok(subject(Proto::Tcp, "0.0.0.0", 22, "bob", "/usr/sbin/sshd")),
            "user"
        );
        assert!(
            !ok(subject(Proto::Udp, "0.0.0.0", 22, "root", "/usr/sbin/sshd")),
            "proto"
        );
        assert!(ok(subject(Proto::Udp, "10.0.0.1", 5353, "x", "/bin/x")));
        assert!(ok(subject(
            Proto::Tcp,
            "127.0.0.1",
            8050,
            "app",
            "/opt/my app/server"
        )));
        assert!(ok(subject(
            Proto::Tcp,
            "::ffff:127.0.0.1",
            8099,
            "app",
            "/opt/my app/server"
        )));
        assert!(!ok(subject(
            Proto::Tcp,
            "127.0.0.1",
            8100,
            "app",
            "/opt/my app/server"
        )));
        assert!(
            ok(subject(Proto::Tcp, "10.1.1.1", 9000, "root", "/x")),
            "uid 0"
        );
        let alert = b
            .check(&subject(Proto::Tcp, "0.0.0.0", 4444, "root", "/usr/bin/nc"))
            .unwrap();
        assert_eq!(
            alert,
            "not in baseline b.txt: no rule allows tcp 4444 all root /usr/bin/nc"
        );
    }

    #[test]
    fn malformed_lines_are_refused_with_line_and_problem() {
        let err = |text: &str| Baseline::parse(text, "b.txt").unwrap_err().to_string();
        let e = err("tcp 22 all root /usr/sbin/sshd\ntcpp 22 all root /x\n");
        assert!(
            e.contains("b.txt line 2") && e.contains("unknown protocol `tcpp`"),
            "{e}"
        );
        assert!(err("tcp 70000 all root /x").contains("`70000` is not a port number"));
        assert!(err("tcp 90-80 all root /x").contains("backwards"));
        assert!(err("tcp 22 everywhere root /x").contains("unknown scope `everywhere`"));
        assert!(err("tcp 22 all root").contains("expected 5 fields"));
        assert!(err("tcp 22 all root sshd").contains("not an absolute path"));
    }

    /// A listener owned by `user` running `exe` (None: an owner portwatch could not read).
    fn entry(
        proto: Proto,
        local: &str,
        owner: Option<(u32, &str, &str)>,
    ) -> (Listener, ListenerOwner) {
        use crate::{
            model::{process::ProcessContext, task::Task},
            testkit,
        };
        let context = ProcessContext {
            user: owner.map(|(_, user, _)| user.to_owned()),
            exe: owner.map(|(_, _, exe)| exe.into()),
            ..ProcessContext::default()
        };
        let task = owner.map(|(uid, ..)| Task {
            uid,
            ..Task::default()
        });
        (
            testkit::listener(proto, local, 1, &[]),
            testkit::listener_owner(task, context),
        )
    }

    #[test]
    fn rendered_baseline_parses_back_and_allows_what_it_was_made_from() {
        let listeners = [
            entry(
                Proto::Tcp,
                "0.0.0.0:22",
                Some((0, "root", "/usr/sbin/sshd")),
            ),
            entry(
                Proto::Tcp,
                "[::1]:8080",
                Some((1000, "app", "/opt/my app/server")),
            ),
            entry(
                Proto::Udp,
                "10.1.2.3:53",
                Some((53, "dns", "/usr/sbin/dnsd")),
            ),
            entry(Proto::Tcp, "[::]:22", Some((0, "root", "/usr/sbin/sshd"))),
            entry(Proto::Udp, "0.0.0.0:68", None),
        ];
        let text = render(&listeners, "now");
        let b = Baseline::parse(&text, "x").unwrap();
        // sshd's two sockets (0.0.0.0 and ::) are both scope "all": one rule.
        assert_eq!(b.rules.len(), 4, "{text}");
        for (l, owner) in &listeners {
            let s = Subject {
                proto: l.socket.proto,
                address: l.socket.local.ip(),
                port: l.socket.local.port(),
                uid: owner.task.as_ref().map(|t| t.uid),
                user: owner.process.user.as_deref(),
                exe: owner.process.exe.as_deref(),
            };
            assert_eq!(b.check(&s), None, "{l:?}\n{text}");
        }
        // And nothing else: another executable on sshd's port alerts.
        let intruder = Subject {
            proto: Proto::Tcp,
            address: "0.0.0.0".parse().unwrap(),
            port: 22,
            uid: Some(0),
            user: Some("root"),
            exe: Some("/tmp/sshd"),
        };
        assert!(b.check(&intruder).is_some());
        assert!(
            Baseline::parse(&render(&[], "now"), "x")
                .unwrap()
                .rules
                .is_empty()
        );
    }
}
