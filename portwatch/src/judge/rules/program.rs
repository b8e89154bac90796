//! Rules on what runs: a shell or an inline interpreter serving connections, netcat, a program
//! from memory or deleted, a fake kernel thread.
use super::{
    Findings, Severity, Subject,
    cmdline::Runs,
    interpreters::{INTERPRETERS, family},
    program, program_args,
    table::{
        FILELESS, INLINE_INTERPRETER, NETCAT_LISTENER, RELAY_LISTENER, SHELL_LISTENER, WEBSHELL,
    },
    who,
};

/// Shells, busybox's among them (`ash`, `hush`: busybox is judged by its applet).
pub(super) const SHELLS: [&str; 9] = [
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "hush",
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

/// Whether a file named `name` is one of the tools or daemons the rules know by name (what
/// the host's catalog fingerprints, `enrich::identify`).
pub fn is_tool(name: &str) -> bool {
    SHELLS.contains(&name)
        || NETCATS.contains(&name)
        || TOOLS.contains(&name)
        || super::disguise::daemon(name).is_some()
        || INTERPRETERS.iter().any(|i| i.family == family(name))
}

/// Other programs a rule knows: busybox (judged by its applet), openssl.
pub(super) const TOOLS: [&str; 3] = ["busybox", "openssl", "in.telnetd"];

pub(super) fn is_shell(s: &Subject, prog: &str) -> bool {
    SHELLS.contains(&prog) || SHELLS.contains(&s.comm)
}

/// An interpreter running a program given on its command line or on standard input: how
/// (for the reason), and the technique.
fn inline(s: &Subject, prog: &str) -> Option<(String, &'static str)> {
    let fam = family(prog);
    let i = INTERPRETERS.iter().find(|i| i.family == fam)?;
    let how = match i.syntax.runs(program_args(s)?) {
        // awk's program is its first operand: shown shortened, it may be long.
        Runs::Inline(arg) if i.syntax.program_operand && !arg.starts_with('-') => {
            let short: String = arg.chars().take(40).collect();
            format!("an inline program, `{short}`")
        }
        Runs::Inline(flag) => format!("an inline program ({flag})"),
        Runs::Stdin(how) => format!("a program on standard input ({how})"),
        Runs::Script(_) | Runs::Module(_) => return None,
    };
    Some((how, i.technique))
}

/// The interpreter's technique, when `prog` is one.
pub(super) fn interpreter(prog: &str) -> Option<&'static str> {
    let fam = family(prog);
    INTERPRETERS
        .iter()
        .find(|i| i.family == fam)
        .map(|i| i.technique)
}

/// The script an interpreter named `program` runs, when it is one and runs one.
pub fn script<'a>(program: &str, args: &'a [String]) -> Option<&'a str> {
    let fam = family(program);
    let i = INTERPRETERS.iter().find(|i| i.family == fam)?;
    match i.syntax.runs(args) {
        Runs::Script(path) => Some(path),
        _ => None,
    }
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
    if let Some((how, technique)) = inline(s, prog) {
        f.add(
            &INLINE_INTERPRETER,
            Severity::High,
            technique,
            format!("{who} {} from {how}, not a script or module", s.doing),
        );
    }
    if !s.accept && NETCATS.contains(&prog) {
        netcat(s, prog, &who, f);
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
    if let Some(l) = s.loaded.filter(|l| l.deleted) {
        let (technique, what) = if l.program.starts_with("/memfd:") {
            ("T1620", "a memfd, in memory only")
        } else {
            ("T1070.004", "deleted since it was loaded")
        };
        f.add(
            &FILELESS,
            Severity::Critical,
            technique,
            format!(
                "{who} {}: the program its loader runs, {}, is {what}",
                s.doing, l.program
            ),
        );
    }
    super::disguise::judge(s, f);
}

/// Socat's addresses that are network ends (a relay joins two of them).
const NETWORK_ADDRESSES: [&str; 9] = [
    "TCP", "TCP4", "TCP6", "UDP", "UDP4", "UDP6", "SCTP", "OPENSSL", "SSL",
];

/// A socat address's type: `TCP-LISTEN:80,fork` → `TCP`, `tcp4:host:80` → `TCP4`.
fn address_type(address: &str) -> String {
    let head = address.split([':', ',']).next().unwrap_or(address);
    let ty = head.split('-').next().unwrap_or(head);
    ty.to_ascii_uppercase()
}

/// netcat or socat listening: critical when it runs a command for its peer, a relay (two
/// network ends, nothing run) is a proxy, anything else high.
fn netcat(s: &Subject, prog: &str, who: &str, f: &mut Findings) {
    let args = program_args(s).unwrap_or_default();
    let runs = args.iter().skip(1).find(|a| {
        matches!(
            a.as_str(),
            "-e" | "-c" | "--exec" | "--sh-exec" | "--lua-exec"
        ) || a.to_ascii_uppercase().starts_with("EXEC:")
            || a.to_ascii_uppercase().starts_with("SYSTEM:")
    });
    if let Some(how) = runs {
        f.add(
            &NETCAT_LISTENER,
            Severity::Critical,
            "T1059",
            format!("{who} {}, running a command for its peer ({how})", s.doing),
        );
        return;
    }
    let addresses: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let relay = prog == "socat"
        && addresses.len() == 2
        && addresses
            .iter()
            .all(|a| NETWORK_ADDRESSES.contains(&address_type(a).as_str()));
    if relay {
        f.add(
            &RELAY_LISTENER,
            Severity::Medium,
            "T1090",
            format!(
                "{who} {}, relaying to {}: a proxy, no program run",
                s.doing, addresses[1]
            ),
        );
    } else {
        f.add(
            &NETCAT_LISTENER,
            Severity::High,
            "T1571",
            format!("{who} {}", s.doing),
        );
    }
}
