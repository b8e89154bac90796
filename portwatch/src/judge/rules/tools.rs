//! Tools that serve a shell or a channel to one that none of the other rules names (GTFOBins'
//! bind shells beyond netcat and the interpreters): `openssl s_server`, whose `-quiet` console
//! an attacker pipes a shell through, and telnetd (busybox's applet too), which logs a peer into
//! a shell in cleartext; critical when told which shell to run (`-l /bin/sh`).
use super::{Findings, Severity, Subject, program, program_args, table::REMOTE_SHELL_TOOL, who};

pub(super) fn judge(s: &Subject, f: &mut Findings) {
    if s.accept {
        return;
    }
    let prog = program(s);
    let args = program_args(s).unwrap_or_default();
    let who = who(s);
    if prog == "openssl" && args.iter().any(|a| a == "s_server") {
        f.add(
            &REMOTE_SHELL_TOOL,
            Severity::High,
            "T1573.002",
            format!(
                "{who} {}: openssl's test server, whose console a shell can be piped through",
                s.doing
            ),
        );
    } else if prog == "telnetd" || prog == "in.telnetd" || prog == "utelnetd" {
        let login = args
            .windows(2)
            .find(|w| w[0] == "-l")
            .map(|w| w[1].as_str());
        let shell = login.filter(|l| super::program::SHELLS.contains(&super::file_name(l)));
        match shell {
            Some(sh) => f.add(
                &REMOTE_SHELL_TOOL,
                Severity::Critical,
                "T1059.004",
                format!(
                    "{who} {}: a telnet server logging its peers straight into {sh}",
                    s.doing
                ),
            ),
            None => f.add(
                &REMOTE_SHELL_TOOL,
                Severity::High,
                "T1021",
                format!(
                    "{who} {}: a telnet server, remote logins in cleartext",
                    s.doing
                ),
            ),
        }
    }
}
