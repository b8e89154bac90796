//! Built-in detections (called through `judge`): judgements on a new listener (a listen, a UDP bind, a snapshot listener)
//! or an accept, made from what the record already knows, each naming its rule, severity, ATT&CK technique and the
//! evidence. All are on by default; `--no-detection NAME` (or `[detections] disable` in the
//! configuration file) turns one off.
//!
//! `program` judges what runs (a shell, an inline interpreter, netcat, a memfd, a fake kernel
//! thread); `socket` judges where and how it listens (the port, who else serves it, io_uring);
//! `stdio` judges a program started with sockets as its standard streams (an `exec` record).
pub use crate::model::verdict::{Detection, Severity};
use crate::model::{
    listener::Neighbour,
    process::{Ancestor, Loaded, Location},
};

mod cmdline;
mod disguise;
mod health;
mod interpreters;
mod place;
mod program;
mod socket;
mod stdio;
pub mod table;
mod tools;

pub use health::CLOSE_WAIT_RISES;
pub use program::{is_tool, script};
pub use socket::BACKDOOR_PORTS;
pub use table::{RULES, Rule};

/// What a rule looks at.
#[derive(Default, Clone, Copy)]
pub struct Subject<'a> {
    /// "listening on tcp 0.0.0.0:4444" or "accepting on ...": for the reasons.
    pub doing: &'a str,
    pub accept: bool,
    pub pid: u32,
    pub comm: &'a str,
    pub exe: Option<&'a str>,
    /// The host tool whose content the executable has (its real path), whatever its name.
    pub known_as: Option<&'a str>,
    /// Where the executable, and an interpreter's script, live.
    pub exe_at: Option<&'a Location>,
    pub script_at: Option<&'a Location>,
    /// The program a dynamic loader run as the executable loads: the program judged.
    pub loaded: Option<&'a Loaded>,
    /// Other names the executable goes by on the host (links to it).
    pub aliases: &'a [std::sync::Arc<str>],
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
        rule: &'static Rule,
        severity: Severity,
        technique: &'static str,
        reason: String,
    ) {
        self.add_finding(rule, severity, Some(technique), reason);
    }

    /// A finding of `rule`, in one of the forms its table entry declares.
    fn add_finding(
        &mut self,
        rule: &'static Rule,
        severity: Severity,
        technique: Option<&'static str>,
        reason: String,
    ) {
        debug_assert!(
            rule.makes(severity, technique),
            "{}: {severity:?} {technique:?} is not in its table entry",
            rule.name
        );
        if self.rules.on(rule.name) {
            self.found.push(Detection {
                name: rule.name,
                severity,
                technique,
                reason,
            });
        }
    }
}

/// A path's file name (a deleted file's without its mark).
fn file_name(path: &str) -> &str {
    let path = path.trim_end_matches(" (deleted)");
    path.rsplit('/').next().unwrap_or(path)
}

/// What the program is by name: what its executable is by content (a copy of a host tool under
/// any name is that tool), else the file a loader loads, else the executable's file name, else
/// the command name.
fn by_name<'a>(s: &Subject<'a>) -> &'a str {
    s.known_as
        .or(s.loaded.map(|l| &*l.program))
        .or(s.exe)
        .map_or(s.comm, file_name)
}

/// The program's name: `by_name`, or the applet busybox runs.
fn program<'a>(s: &Subject<'a>) -> &'a str {
    let name = by_name(s);
    if name == "busybox" {
        applet(s).map_or(name, |(applet, _)| applet)
    } else {
        name
    }
}

/// The arguments as started (a rewritten argv is a name, not what it runs), from the program's
/// own name on (past a loader's own).
fn started_args<'a>(s: &Subject<'a>) -> Option<&'a [String]> {
    let args = s.exec_args.or(s.args)?;
    Some(
        s.loaded
            .map_or(args, |l| args.get(l.at..).unwrap_or_default()),
    )
}

/// The applet busybox runs, and its arguments: busybox picks it by the name it was started
/// under (argv[0], as started), or by the next argument when that name is busybox's own.
fn applet<'a>(s: &Subject<'a>) -> Option<(&'a str, &'a [String])> {
    busybox_applet(started_args(s)?)
}

/// The applet a busybox started with `args` runs, and its arguments.
pub(super) fn busybox_applet(args: &[String]) -> Option<(&str, &[String])> {
    let first = file_name(args.first()?).trim_start_matches('-');
    if first == "busybox" {
        let next = args.get(1)?;
        Some((file_name(next), &args[1..]))
    } else {
        Some((first, args))
    }
}

/// What the program was told to do: its arguments as started, its own name first (busybox's
/// applet's when it runs one).
fn program_args<'a>(s: &Subject<'a>) -> Option<&'a [String]> {
    if by_name(s) == "busybox" {
        return applet(s).map(|(_, args)| args);
    }
    started_args(s)
}

/// "nc (/usr/bin/nc.openbsd)", "httpd (/root/.cache/httpd, a copy of /usr/bin/nc.openbsd)",
/// "ld-linux-x86-64 (/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, loading /tmp/x, a copy
/// of /usr/bin/python3.11)": who, for the reasons, with how the program was known when not by
/// its own path.
fn who(s: &Subject) -> String {
    let Some(exe) = s.exe else {
        return s.comm.to_owned();
    };
    let mut text = format!("{} ({exe}", s.comm);
    let mut program = exe.trim_end_matches(" (deleted)");
    if let Some(l) = s.loaded {
        text.push_str(", loading ");
        text.push_str(&l.program);
        program = &l.program;
    }
    if let Some(known) = s.known_as.filter(|k| *k != program) {
        text.push_str(", a copy of ");
        text.push_str(known);
    }
    text.push(')');
    text
}

impl Rules {
    pub fn new(
        disabled: Vec<String>,
        ports: Option<Vec<u16>>,
        uring_allow: Vec<String>,
    ) -> Result<Self, String> {
        for name in &disabled {
            if !RULES.iter().any(|r| r.name == name) {
                let known: Vec<&str> = RULES.iter().map(|r| r.name).collect();
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
        place::judge(s, &mut f);
        tools::judge(s, &mut f);
        socket::judge(s, &mut f);
        f.found
    }

    /// Whether the privileged-port rule, which reads capabilities, is on.
    pub fn judges_privilege(&self) -> bool {
        self.on(table::PRIVILEGED_PORT.name)
    }

    /// Whether a program started on sockets is judged (and so reported: `exec` records).
    pub fn judges_stdio(&self) -> bool {
        self.on(table::SOCKET_STDIO.name)
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
