//! Built-in detections (called through `judge`): judgements on a new listener (a listen, a UDP bind, a snapshot listener)
//! or an accept, made from what the record already knows, each naming its rule, severity, ATT&CK technique and the
//! evidence. All are on by default; `--no-detection NAME` (or `[detections] disable` in the
//! configuration file) turns one off.
//!
//! `program` judges what runs (a shell, an inline interpreter, netcat, a memfd, a fake kernel
//! thread); `socket` judges where and how it listens (the port, who else serves it, io_uring);
//! `stdio` judges a program started with sockets as its standard streams (an `exec` record).
pub use crate::model::verdict::{Detection, Severity};
use crate::model::{listener::Neighbour, process::Ancestor};

mod health;
mod program;
mod socket;
mod stdio;

pub use health::CLOSE_WAIT_RISES;
pub use socket::BACKDOOR_PORTS;

/// The rules, by name, with what each is about (for `--help` and the README).
pub const RULES: [(&str, &str); 13] = [
    (
        "shell-listener",
        "a shell (sh, bash, dash, zsh, ksh, busybox) listening or accepting",
    ),
    (
        "inline-interpreter-listener",
        "an interpreter (python, perl, ruby, php, node, lua) listening or accepting from an inline program (-c, -e, -r)",
    ),
    (
        "netcat-listener",
        "netcat or socat listening (critical when it runs a command for its peer)",
    ),
    (
        "fileless-listener",
        "a listener whose executable is deleted or a memfd",
    ),
    (
        "kernel-thread-name",
        "a process named like a kernel thread (kworker, ksoftirqd, ...) with a socket",
    ),
    (
        "backdoor-port",
        "a listener on a port backdoors and C2 commonly use",
    ),
    (
        "privileged-port",
        "a non-root process listening on a port below 1024 (through CAP_NET_BIND_SERVICE or the ip_unprivileged_port_start sysctl)",
    ),
    (
        "reuseport-hijack",
        "a TCP listener joining, with SO_REUSEPORT, a port another executable or user already serves",
    ),
    (
        "io-uring-listener",
        "a listener or accept made through io_uring by an executable not on the io_uring allowlist",
    ),
    (
        "webshell",
        "a shell, or an interpreter running an inline program, listening, accepting or started on a socket with a web server (nginx, apache2, httpd, php-fpm, ...) among its ancestors",
    ),
    (
        "socket-stdio",
        "a program started with an IP socket as stdin, stdout or stderr: a bind or reverse shell (critical for a shell)",
    ),
    (
        "accept-queue-overflow",
        "watch --stats: a TCP listener dropped connection attempts since the last check because its accept queue was full",
    ),
    (
        "close-wait-growing",
        "watch --stats: a TCP listener's connections in CLOSE_WAIT rose at 3 checks in a row without a fall (a descriptor leak)",
    ),
];

/// What a rule looks at.
#[derive(Default, Clone, Copy)]
pub struct Subject<'a> {
    /// "listening on tcp 0.0.0.0:4444" or "accepting on ...": for the reasons.
    pub doing: &'a str,
    pub accept: bool,
    pub pid: u32,
    pub comm: &'a str,
    pub exe: Option<&'a str>,
    /// The executable had no links left (deleted, or a memfd).
    pub exe_deleted: bool,
    pub args: Option<&'a [String]>,
    /// The arguments it was started with, when it has rewritten them since: judged too, so
    /// rewriting them after exec hides nothing.
    pub exec_args: Option<&'a [String]>,
    pub uid: Option<u32>,
    /// Its effective capabilities, read while it ran (None: gone first, or not asked for).
    pub caps: Option<u64>,
    pub port: Option<u16>,
    /// TCP: the listeners already serving an overlapping address and port (only SO_REUSEPORT
    /// lets a second one listen there). None for UDP, where SO_REUSEADDR allows it too.
    pub joined: Option<&'a [Neighbour]>,
    /// It was made through io_uring.
    pub io_uring: bool,
    /// The process's parent, grandparent, ... (newest first).
    pub ancestors: &'a [Ancestor],
}

#[derive(Clone, Debug)]
pub struct Rules {
    disabled: Vec<String>,
    ports: Vec<u16>,
    /// Executables (a path, or a file name) allowed to listen and accept through io_uring.
    uring_allow: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            disabled: Vec::new(),
            ports: BACKDOOR_PORTS.to_vec(),
            uring_allow: Vec::new(),
        }
    }
}

/// Collects the enabled rules' findings.
struct Findings<'r> {
    rules: &'r Rules,
    found: Vec<Detection>,
}

impl Findings<'_> {
    fn add(
        &mut self,
        name: &'static str,
        severity: Severity,
        technique: &'static str,
        reason: String,
    ) {
        self.add_finding(name, severity, Some(technique), reason);
    }

    fn add_finding(
        &mut self,
        name: &'static str,
        severity: Severity,
        technique: Option<&'static str>,
        reason: String,
    ) {
        if self.rules.on(name) {
            self.found.push(Detection {
                name,
                severity,
                technique,
                reason,
            });
        }
    }
}

/// The program's name: the executable's file name, else the command name.
fn program<'a>(s: &Subject<'a>) -> &'a str {
    s.exe
        .map(|e| e.trim_end_matches(" (deleted)"))
        .and_then(|e| e.rsplit('/').next())
        .unwrap_or(s.comm)
}

/// "nc (/usr/bin/nc.openbsd)": who, for the reasons.
fn who(s: &Subject) -> String {
    match s.exe {
        Some(exe) => format!("{} ({exe})", s.comm),
        None => s.comm.to_owned(),
    }
}

impl Rules {
    pub fn new(
        disabled: Vec<String>,
        ports: Option<Vec<u16>>,
        uring_allow: Vec<String>,
    ) -> Result<Self, String> {
        for name in &disabled {
            if !RULES.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = RULES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown detection `{name}` (known: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(Self {
            disabled,
            ports: ports.unwrap_or_else(|| BACKDOOR_PORTS.to_vec()),
            uring_allow,
        })
    }

    fn on(&self, name: &str) -> bool {
        !self.disabled.iter().any(|d| d == name)
    }

    /// Every enabled rule's finding on `s`.
    pub fn judge(&self, s: &Subject) -> Vec<Detection> {
        let mut f = Findings {
            rules: self,
            found: Vec::new(),
        };
        program::judge(s, &mut f);
        if let Some(exec_args) = s.exec_args {
            let mut before = Findings {
                rules: self,
                found: Vec::new(),
            };
            program::judge(
                &Subject {
                    args: Some(exec_args),
                    ..*s
                },
                &mut before,
            );
            for d in before.found {
                if !f.found.iter().any(|x| x.name == d.name) {
                    f.found.push(d);
                }
            }
        }
        socket::judge(s, &mut f);
        f.found
    }

    /// Whether a program started on sockets is judged (and so reported: `exec` records).
    pub fn judges_stdio(&self) -> bool {
        self.on(stdio::RULE)
    }

    /// The findings on a listener's health (`watch --stats`), its CLOSE_WAIT run if rising.
    pub fn judge_health(
        &self,
        s: &Subject,
        h: &crate::model::health::Health,
        close_wait: Option<crate::model::health::Rising>,
    ) -> Vec<Detection> {
        let mut f = Findings {
            rules: self,
            found: Vec::new(),
        };
        health::judge(s, h, close_wait, &mut f);
        f.found
    }

    /// The finding on a program started with sockets as standard streams; `s.doing` says which.
    pub fn judge_stdio(&self, s: &Subject) -> Vec<Detection> {
        let mut f = Findings {
            rules: self,
            found: Vec::new(),
        };
        stdio::judge(s, &mut f);
        f.found
    }
}

#[cfg(test)]
mod tests;
