//! Built-in detections: judgements on a new listener (a listen, a UDP bind, a snapshot listener)
//! or an accept, made from what the record already knows (the process's name, executable and
//! arguments, the port), each naming its rule, severity, ATT&CK technique and the evidence. All
//! are on by default; `--no-detection NAME` (or `[detections] disable` in the configuration
//! file) turns one off.
use serde::Serialize;

/// One rule's finding on one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub name: &'static str,
    pub severity: Severity,
    /// The MITRE ATT&CK technique.
    pub technique: &'static str,
    /// One line naming the evidence.
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Medium,
    High,
    Critical,
}

/// The rules, by name, with what each is about (for `--help` and the README).
pub const RULES: [(&str, &str); 6] = [
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
];

/// Ports backdoors and C2 commonly use: Metasploit's defaults (4444, 5555), Back Orifice
/// (31337, 54320/54321), NetBus (12345, 12346, 20034), SubSeven (27374), IRC botnets (6666,
/// 6667, 6697), and 1337.
pub const BACKDOOR_PORTS: [u16; 13] = [
    1337, 4444, 5555, 6666, 6667, 6697, 12345, 12346, 20034, 27374, 31337, 54320, 54321,
];

/// What a rule looks at.
pub struct Subject<'a> {
    /// "listening on tcp 0.0.0.0:4444" or "accepting on ...": for the reasons.
    pub doing: &'a str,
    pub accept: bool,
    pub comm: &'a str,
    pub exe: Option<&'a str>,
    pub args: Option<&'a [String]>,
    pub port: Option<u16>,
}

#[derive(Clone, Debug)]
pub struct Rules {
    disabled: Vec<String>,
    ports: Vec<u16>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            disabled: Vec::new(),
            ports: BACKDOOR_PORTS.to_vec(),
        }
    }
}

const SHELLS: [&str; 9] = [
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "busybox",
];

/// Interpreters: the flags that give them an inline program, the options that take a value
/// (skipped with it), and their technique. The first other argument (a script, `-m`'s module)
/// ends the interpreter's own options: a `-c` after it is the program's.
const INTERPRETERS: [(&str, &[&str], &[&str], &str); 6] = [
    ("python", &["-c"], &["-W", "-X"], "T1059.006"),
    ("perl", &["-e", "-E"], &["-I", "-M"], "T1059"),
    ("ruby", &["-e"], &["-I", "-r"], "T1059"),
    ("php", &["-r"], &["-c", "-d"], "T1059"),
    (
        "node",
        &["-e", "--eval", "-p", "--print"],
        &["-r", "--require"],
        "T1059.007",
    ),
    ("lua", &["-e"], &["-l"], "T1059"),
];

/// The inline-program flag among the interpreter's own options, if any.
fn inline_flag<'a>(args: &'a [String], flags: &[&str], with_value: &[&str]) -> Option<&'a str> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if flags.contains(&a.as_str()) {
            return Some(a);
        }
        if with_value.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') || a == "-" || a == "--" || a == "-m" {
            return None;
        }
    }
    None
}

const NETCATS: [&str; 6] = [
    "nc",
    "ncat",
    "netcat",
    "nc.openbsd",
    "nc.traditional",
    "socat",
];

const KERNEL_THREADS: [&str; 6] = [
    "kworker",
    "ksoftirqd",
    "kthreadd",
    "migration/",
    "rcu_",
    "kswapd",
];

/// The program's name: the executable's file name, else the command name.
fn program<'a>(s: &Subject<'a>) -> &'a str {
    s.exe
        .map(|e| e.trim_end_matches(" (deleted)"))
        .and_then(|e| e.rsplit('/').next())
        .unwrap_or(s.comm)
}

/// `python3.11` → `python`; `nodejs` → `node`.
fn family(name: &str) -> &str {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if base == "nodejs" { "node" } else { base }
}

impl Rules {
    pub fn new(disabled: Vec<String>, ports: Option<Vec<u16>>) -> Result<Self, String> {
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
        })
    }

    fn on(&self, name: &str) -> bool {
        !self.disabled.iter().any(|d| d == name)
    }

    /// Every enabled rule's finding on `s`.
    pub fn judge(&self, s: &Subject) -> Vec<Detection> {
        let mut found = Vec::new();
        let mut add = |name, severity, technique, reason: String| {
            if self.on(name) {
                found.push(Detection {
                    name,
                    severity,
                    technique,
                    reason,
                });
            }
        };
        let prog = program(s);
        let who = match s.exe {
            Some(exe) => format!("{} ({exe})", s.comm),
            None => s.comm.to_owned(),
        };
        if SHELLS.contains(&prog) || SHELLS.contains(&s.comm) {
            add(
                "shell-listener",
                Severity::High,
                "T1059.004",
                format!("{who} {}: a shell does not serve connections", s.doing),
            );
        }
        let fam = family(prog);
        if let Some((_, flags, with_value, technique)) =
            INTERPRETERS.iter().find(|(f, _, _, _)| *f == fam)
        {
            let args = s.args.unwrap_or_default();
            if let Some(flag) = inline_flag(args, flags, with_value) {
                add(
                    "inline-interpreter-listener",
                    Severity::High,
                    technique,
                    format!(
                        "{who} {} from an inline program ({flag}), not a script or module",
                        s.doing
                    ),
                );
            }
        }
        if !s.accept && NETCATS.contains(&prog) {
            let args = s.args.unwrap_or_default();
            let runs = args.iter().skip(1).find(|a| {
                matches!(a.as_str(), "-e" | "-c" | "--exec" | "--sh-exec")
                    || a.starts_with("EXEC:")
                    || a.starts_with("SYSTEM:")
            });
            match runs {
                Some(how) => add(
                    "netcat-listener",
                    Severity::Critical,
                    "T1059",
                    format!("{who} {}, running a command for its peer ({how})", s.doing),
                ),
                None => add(
                    "netcat-listener",
                    Severity::High,
                    "T1571",
                    format!("{who} {}", s.doing),
                ),
            }
        }
        if let Some(exe) = s.exe {
            if exe.starts_with("/memfd:") {
                add(
                    "fileless-listener",
                    Severity::Critical,
                    "T1620",
                    format!(
                        "{who} {}: its executable is a memfd, in memory only",
                        s.doing
                    ),
                );
            } else if exe.ends_with(" (deleted)") {
                add(
                    "fileless-listener",
                    Severity::Critical,
                    "T1070.004",
                    format!("{who} {}: its executable was deleted", s.doing),
                );
            }
        }
        if s.exe.is_some() && KERNEL_THREADS.iter().any(|k| s.comm.starts_with(k)) {
            add(
                "kernel-thread-name",
                Severity::High,
                "T1036.004",
                format!(
                    "{who} {}: a user process named like a kernel thread",
                    s.doing
                ),
            );
        }
        if !s.accept {
            if let Some(port) = s.port.filter(|p| self.ports.contains(p)) {
                add(
                    "backdoor-port",
                    Severity::Medium,
                    "T1571",
                    format!(
                        "{who} {}: port {port} is commonly used by backdoors and C2",
                        s.doing
                    ),
                );
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(
        comm: &'a str,
        exe: Option<&'a str>,
        args: &'a [String],
        port: u16,
    ) -> Subject<'a> {
        Subject {
            doing: "listening on tcp 0.0.0.0:8080",
            accept: false,
            comm,
            exe,
            args: Some(args),
            port: Some(port),
        }
    }

    fn names(found: &[Detection]) -> Vec<&str> {
        found.iter().map(|d| d.name).collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_rule_fires_on_its_case_and_not_on_the_look_alike() {
        let r = Rules::default();
        let inline = args(&["python3", "-c", "import socket"]);
        let module = args(&["python3", "-m", "http.server"]);
        let script = args(&["python3", "/srv/app.py", "-c", "conf"]);
        assert_eq!(
            names(&r.judge(&subject(
                "python3",
                Some("/usr/bin/python3.11"),
                &inline,
                8080
            ))),
            ["inline-interpreter-listener"]
        );
        assert!(
            r.judge(&subject(
                "python3",
                Some("/usr/bin/python3.11"),
                &module,
                8080
            ))
            .is_empty()
        );
        assert!(
            r.judge(&subject(
                "python3",
                Some("/usr/bin/python3.11"),
                &script,
                8080
            ))
            .is_empty(),
            "-c after a script is the script's"
        );
        assert_eq!(
            names(&r.judge(&subject("zsh", Some("/usr/bin/zsh"), &[], 8080))),
            ["shell-listener"]
        );
        let nc = r.judge(&subject(
            "nc",
            Some("/usr/bin/nc.openbsd"),
            &args(&["nc", "-l", "8080"]),
            8080,
        ));
        assert_eq!(
            (nc[0].name, nc[0].severity),
            ("netcat-listener", Severity::High)
        );
        let socat = r.judge(&subject(
            "socat",
            Some("/usr/bin/socat"),
            &args(&["socat", "TCP-LISTEN:8080", "EXEC:/bin/sh"]),
            8080,
        ));
        assert_eq!(socat[0].severity, Severity::Critical, "{socat:?}");
        assert!(socat[0].reason.contains("EXEC:/bin/sh"));
        assert_eq!(
            names(&r.judge(&subject("x", Some("/memfd:x (deleted)"), &[], 8080))),
            ["fileless-listener"]
        );
        assert_eq!(
            names(&r.judge(&subject("x", Some("/tmp/x (deleted)"), &[], 8080))),
            ["fileless-listener"]
        );
        assert_eq!(
            names(&r.judge(&subject("kworker/0:1", Some("/tmp/x"), &[], 8080))),
            ["kernel-thread-name"]
        );
        assert!(
            r.judge(&subject("kworker/0:1", None, &[], 8080)).is_empty(),
            "a real kernel thread has no executable"
        );
        assert_eq!(
            names(&r.judge(&subject("nginx", Some("/usr/sbin/nginx"), &[], 31337))),
            ["backdoor-port"]
        );
        assert!(
            r.judge(&subject("nginx", Some("/usr/sbin/nginx"), &[], 443))
                .is_empty()
        );
    }

    #[test]
    fn rules_can_be_turned_off_and_unknown_names_are_refused() {
        let r = Rules::new(vec!["backdoor-port".into()], None).unwrap();
        assert!(
            r.judge(&subject("nginx", Some("/usr/sbin/nginx"), &[], 4444))
                .is_empty()
        );
        let e = Rules::new(vec!["nope".into()], None).unwrap_err();
        assert!(
            e.contains("unknown detection `nope`") && e.contains("shell-listener"),
            "{e}"
        );
        let custom = Rules::new(vec![], Some(vec![8443])).unwrap();
        assert_eq!(
            names(&custom.judge(&subject("x", Some("/usr/bin/x"), &[], 8443))),
            ["backdoor-port"]
        );
    }
}
