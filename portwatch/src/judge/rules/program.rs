//! Rules on what runs: a shell or an inline interpreter serving connections, netcat, a program
//! from memory or deleted, a fake kernel thread.
use super::{Findings, Severity, Subject, program, who};

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

const NETCATS: [&str; 6] = [
    "nc",
    "ncat",
    "netcat",
    "nc.openbsd",
    "nc.traditional",
    "socat",
];

/// Web servers and their workers (`php-fpm8.2` is `php-fpm`): a shell among their
/// descendants serving the network is how a webshell looks.
const WEB_SERVERS: [&str; 10] = [
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

const KERNEL_THREADS: [&str; 6] = [
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
    let (_, flags, with_value, technique) = INTERPRETERS.iter().find(|(f, ..)| *f == fam)?;
    inline_flag(s.args.unwrap_or_default(), flags, with_value).map(|flag| (flag, *technique))
}

/// The interpreter's technique, when `prog` is one.
pub(super) fn interpreter(prog: &str) -> Option<&'static str> {
    let fam = family(prog);
    INTERPRETERS
        .iter()
        .find(|(f, ..)| *f == fam)
        .map(|(.., technique)| *technique)
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
            "webshell",
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
            "shell-listener",
            Severity::High,
            "T1059.004",
            format!("{who} {}: a shell does not serve connections", s.doing),
        );
    }
    if let Some((flag, technique)) = inline(s, prog) {
        f.add(
            "inline-interpreter-listener",
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
                "netcat-listener",
                Severity::Critical,
                "T1059",
                format!("{who} {}, running a command for its peer ({how})", s.doing),
            ),
            None => f.add(
                "netcat-listener",
                Severity::High,
                "T1571",
                format!("{who} {}", s.doing),
            ),
        }
    }
    if let Some(exe) = s.exe {
        if exe.starts_with("/memfd:") {
            f.add(
                "fileless-listener",
                Severity::Critical,
                "T1620",
                format!(
                    "{who} {}: its executable is a memfd, in memory only",
                    s.doing
                ),
            );
        } else if s.exe_deleted || exe.ends_with(" (deleted)") {
            f.add(
                "fileless-listener",
                Severity::Critical,
                "T1070.004",
                format!("{who} {}: its executable was deleted", s.doing),
            );
        }
    }
    if s.exe.is_some() && KERNEL_THREADS.iter().any(|k| s.comm.starts_with(k)) {
        f.add(
            "kernel-thread-name",
            Severity::High,
            "T1036.004",
            format!(
                "{who} {}: a user process named like a kernel thread",
                s.doing
            ),
        );
    }
}
