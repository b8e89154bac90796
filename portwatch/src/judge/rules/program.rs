//! Rules on what runs: a shell or an inline interpreter serving connections, netcat, a program
//! from memory or deleted, a fake kernel thread.
use super::{
    Findings, Severity, Subject, program,
    table::{
        FILELESS, INLINE_INTERPRETER, KERNEL_THREAD_NAME, NETCAT_LISTENER, SHELL_LISTENER, WEBSHELL,
    },
    who,
};

pub(super) const SHELLS: [&str; 9] = [
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "busybox",
];

/// An interpreter: the flags that give it an inline program, the options that take a value
/// (skipped with it), and its technique. The first other argument (a script, `-m`'s module)
/// ends the interpreter's own options: a `-c` after it is the program's.
pub(super) struct Interpreter {
    pub family: &'static str,
    pub inline: &'static [&'static str],
    pub with_value: &'static [&'static str],
    pub technique: &'static str,
}

pub(super) const INTERPRETERS: [Interpreter; 6] = [
    Interpreter {
        family: "python",
        inline: &["-c"],
        with_value: &["-W", "-X"],
        technique: "T1059.006",
    },
    Interpreter {
        family: "perl",
        inline: &["-e", "-E"],
        with_value: &["-I", "-M"],
        technique: "T1059",
    },
    Interpreter {
        family: "ruby",
        inline: &["-e"],
        with_value: &["-I", "-r"],
        technique: "T1059",
    },
    Interpreter {
        family: "php",
        inline: &["-r"],
        with_value: &["-c", "-d"],
        technique: "T1059",
    },
    Interpreter {
        family: "node",
        inline: &["-e", "--eval", "-p", "--print"],
        with_value: &["-r", "--require"],
        technique: "T1059.007",
    },
    Interpreter {
        family: "lua",
        inline: &["-e"],
        with_value: &["-l"],
        technique: "T1059",
    },
];

pub(super) const NETCATS: [&str; 6] = [
    "nc",
    "ncat",
    "netcat",
    "nc.openbsd",
    "nc.traditional",
    "socat",
];

/// Web servers and their workers (`php-fpm8.2` is `php-fpm`): a shell among their
/// descendants serving the network is how a webshell looks.
pub(super) const WEB_SERVERS: [&str; 10] = [
    "nginx",
    "apache2",
    "httpd",
    "lighttpd",
    "caddy",
    "php-fpm",
    "php-cgi",
    "uwsgi",
    "openresty",
    "h2o",
];

pub(super) const KERNEL_THREADS: [&str; 6] = [
    "kworker",
    "ksoftirqd",
    "kthreadd",
    "migration/",
    "rcu_",
    "kswapd",
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

/// `python3.11` → `python`; `nodejs` → `node`.
fn family(name: &str) -> &str {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if base == "nodejs" { "node" } else { base }
}

pub(super) fn is_shell(s: &Subject, prog: &str) -> bool {
    SHELLS.contains(&prog) || SHELLS.contains(&s.comm)
}

/// An interpreter running an inline program: the flag that gave it, and the technique.
fn inline<'a>(s: &Subject<'a>, prog: &str) -> Option<(&'a str, &'static str)> {
    let fam = family(prog);
    let i = INTERPRETERS.iter().find(|i| i.family == fam)?;
    inline_flag(s.args.unwrap_or_default(), i.inline, i.with_value).map(|flag| (flag, i.technique))
}

/// The interpreter's technique, when `prog` is one.
pub(super) fn interpreter(prog: &str) -> Option<&'static str> {
    let fam = family(prog);
    INTERPRETERS
        .iter()
        .find(|i| i.family == fam)
        .map(|i| i.technique)
}

/// The nearest web server among the ancestors of a shell or interpreter: "nginx (pid 812)".
pub(super) fn webshell(s: &Subject, f: &mut Findings) {
    let prog = program(s);
    if !is_shell(s, prog) && inline(s, prog).is_none() {
        return;
    }
    let server = s.ancestors.iter().find(|a| {
        let name = a.exe.as_deref().map_or(&*a.comm, |e| {
            e.trim_end_matches(" (deleted)")
                .rsplit('/')
                .next()
                .unwrap_or(e)
        });
        WEB_SERVERS.iter().any(|w| {
            name == *w
                || name
                    .strip_prefix(w)
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
        })
    });
    if let Some(a) = server {
        f.add(
            &WEBSHELL,
            Severity::Critical,
            "T1505.003",
            format!(
                "{} {}, started under the web server {} (pid {})",
                who(s),
                s.doing,
                a.exe.as_deref().unwrap_or(&a.comm),
                a.pid
            ),
        );
    }
}

pub(super) fn judge(s: &Subject, f: &mut Findings) {
    let prog = program(s);
    let who = who(s);
    webshell(s, f);
    if is_shell(s, prog) {
        f.add(
            &SHELL_LISTENER,
            Severity::High,
            "T1059.004",
            format!("{who} {}: a shell does not serve connections", s.doing),
        );
    }
    if let Some((flag, technique)) = inline(s, prog) {
        f.add(
            &INLINE_INTERPRETER,
            Severity::High,
            technique,
            format!(
                "{who} {} from an inline program ({flag}), not a script or module",
                s.doing
            ),
        );
    }
    if !s.accept && NETCATS.contains(&prog) {
        let args = s.args.unwrap_or_default();
        let runs = args.iter().skip(1).find(|a| {
            matches!(a.as_str(), "-e" | "-c" | "--exec" | "--sh-exec")
                || a.starts_with("EXEC:")
                || a.starts_with("SYSTEM:")
        });
        match runs {
            Some(how) => f.add(
                &NETCAT_LISTENER,
                Severity::Critical,
                "T1059",
                format!("{who} {}, running a command for its peer ({how})", s.doing),
            ),
            None => f.add(
                &NETCAT_LISTENER,
                Severity::High,
                "T1571",
                format!("{who} {}", s.doing),
            ),
        }
    }
    if let Some(exe) = s.exe {
        if exe.starts_with("/memfd:") {
            f.add(
                &FILELESS,
                Severity::Critical,
                "T1620",
                format!(
                    "{who} {}: its executable is a memfd, in memory only",
                    s.doing
                ),
            );
        } else if s.exe_deleted || exe.ends_with(" (deleted)") {
            f.add(
                &FILELESS,
                Severity::Critical,
                "T1070.004",
                format!("{who} {}: its executable was deleted", s.doing),
            );
        }
    }
    if s.exe.is_some() && KERNEL_THREADS.iter().any(|k| s.comm.starts_with(k)) {
        f.add(
            &KERNEL_THREAD_NAME,
            Severity::High,
            "T1036.004",
            format!(
                "{who} {}: a user process named like a kernel thread",
                s.doing
            ),
        );
    }
}
