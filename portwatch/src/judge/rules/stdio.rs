//! The rule on a new program image whose stdin, stdout or stderr is an IP socket: what a bind
//! shell (`nc -l -e /bin/sh`, `socat ...,nofork`) or a reverse shell (`bash -i >& /dev/tcp/...`,
//! python's `os.dup2` onto 0-2) starts with. Read by the exec hook, so no extra syscall is traced.
use super::{
    Findings, Severity, Subject, busybox_applet, file_name, program,
    program::{interpreter, is_shell},
    table::SOCKET_STDIO,
    who,
};

/// Launchers that start a program per connection on the accepted socket (inetd, systemd's
/// `Accept=yes` and its `systemd-socket-activate --accept`, busybox's `tcpsvd`).
pub(super) const LAUNCHERS: [&str; 5] = [
    "inetd",
    "xinetd",
    "systemd",
    "systemd-socket-activate",
    "tcpsvd",
];

/// What started `prog` on its socket, when that is the program's own server re-executing
/// itself or a helper of its own per connection (sshd, `sshd-session`), or an inetd-style
/// launcher: "sshd (pid 812)".
fn served_by(s: &Subject, prog: &str) -> Option<String> {
    let parent = s.ancestors.first()?;
    let mut name = parent.exe.as_deref().map_or(&*parent.comm, file_name);
    if name == "busybox" {
        let args = parent.args.as_deref().unwrap_or_default();
        name = busybox_applet(args).map_or(name, |(applet, _)| applet);
    }
    let own = prog == name || prog.strip_prefix(name).is_some_and(|r| r.starts_with('-'));
    let launcher = LAUNCHERS.contains(&name) || name.ends_with("-inetd");
    (own || launcher).then(|| format!("{name} (pid {})", parent.pid))
}

pub(super) fn judge(s: &Subject, f: &mut Findings) {
    let prog = program(s);
    let who = who(s);
    let shell = is_shell(s, prog);
    let interpreter = interpreter(prog);
    // A server's own per-connection process, or an inetd-style service: what it is for.
    if !shell && interpreter.is_none() && served_by(s, prog).is_some() {
        return;
    }
    let (severity, technique, what) = if shell {
        (
            Severity::Critical,
            "T1059.004",
            "a shell whose terminal is the network: a bind or reverse shell",
        )
    } else if let Some(technique) = interpreter {
        (
            Severity::High,
            technique,
            "an interpreter reading its program from the network",
        )
    } else {
        (
            Severity::Medium,
            "T1059",
            "a program serving a connection on its standard streams (inetd-style, or a shell in disguise)",
        )
    };
    f.add(
        &SOCKET_STDIO,
        severity,
        technique,
        format!("{who} {}: {what}", s.doing),
    );
    program::webshell(s, f);
}
