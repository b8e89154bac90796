//! The rule on a new program image whose stdin, stdout or stderr is an IP socket: what a bind
//! shell (`nc -l -e /bin/sh`, `socat ...,nofork`) or a reverse shell (`bash -i >& /dev/tcp/...`,
//! python's `os.dup2` onto 0-2) starts with. Read by the exec hook, so no extra syscall is traced.
use super::{
    Findings, Severity, Subject, program,
    program::{interpreter, is_shell},
    table::SOCKET_STDIO,
    who,
};

pub(super) fn judge(s: &Subject, f: &mut Findings) {
    let prog = program(s);
    let who = who(s);
    let (severity, technique, what) = if is_shell(s, prog) {
        (
            Severity::Critical,
            "T1059.004",
            "a shell whose terminal is the network: a bind or reverse shell",
        )
    } else if let Some(technique) = interpreter(prog) {
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
