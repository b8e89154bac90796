//! Rules on where and how a program listens: a backdoor's port, a privileged port without
//! root, a port joined behind its owner's back, a listener made through io_uring.
use super::{
    Findings, Severity, Subject, program,
    table::{BACKDOOR_PORT, IO_URING_LISTENER, PRIVILEGED_PORT, REUSEPORT_HIJACK},
    who,
};
use crate::{host::caps, model::net::needs_privilege};

/// Ports backdoors and C2 commonly use: Metasploit's defaults (4444, 5555), Back Orifice
/// (31337, 54320/54321), NetBus (12345, 12346, 20034), SubSeven (27374), IRC botnets (6666,
/// 6667, 6697), and 1337.
pub const BACKDOOR_PORTS: [u16; 13] = [
    1337, 4444, 5555, 6666, 6667, 6697, 12345, 12346, 20034, 27374, 31337, 54320, 54321,
];

pub(super) fn judge(s: &Subject, f: &mut Findings) {
    let who = who(s);
    if !s.accept {
        if let Some(port) = s.port.filter(|p| f.rules.ports.contains(p)) {
            f.add(
                &BACKDOOR_PORT,
                Severity::Medium,
                "T1571",
                format!(
                    "{who} {}: port {port} is commonly used by backdoors and C2",
                    s.doing
                ),
            );
        }
        privileged_port(s, f, &who);
        reuseport_hijack(s, f, &who);
    }
    if s.io_uring && !uring_allowed(s, &f.rules.uring_allow) {
        f.add(
            &IO_URING_LISTENER,
            Severity::Medium,
            "T1562.006",
            format!(
                "{who} {} through io_uring, which syscall-based monitors do not see, and is not on the io_uring allowlist",
                s.doing
            ),
        );
    }
}

fn privileged_port(s: &Subject, f: &mut Findings, who: &str) {
    let (Some(port), Some(uid)) = (s.port, s.uid) else {
        return;
    };
    if !needs_privilege(port, uid) {
        return;
    }
    let how = match s.caps {
        Some(caps) if caps::has(caps, caps::CAP_NET_BIND_SERVICE) => "through CAP_NET_BIND_SERVICE",
        Some(_) => {
            "through its network namespace's net.ipv4.ip_unprivileged_port_start (it lacks CAP_NET_BIND_SERVICE)"
        }
        None => "how is unknown: the process was gone before its capabilities could be read",
    };
    f.add(
        &PRIVILEGED_PORT,
        Severity::Medium,
        "T1548",
        format!(
            "{who}, uid {uid}, {}: a privileged port without root, {how}",
            s.doing
        ),
    );
}

/// A second TCP listener on an address and port another one serves: only SO_REUSEPORT allows
/// it, and the kernel then shares the connections between them. Suspect when it is another
/// executable or user than those already there (one server's workers are the same program).
fn reuseport_hijack(s: &Subject, f: &mut Findings, who: &str) {
    let Some(joined) = s.joined else { return };
    let others: Vec<String> = joined
        .iter()
        .filter(|n| {
            let other_exe = matches!((&n.exe, s.exe), (Some(a), Some(b)) if &**a != b);
            let other_user = s.uid.is_some_and(|uid| uid != n.uid);
            other_exe || other_user
        })
        .map(|n| {
            let exe = n.exe.as_deref().unwrap_or("?");
            format!("pid {} ({exe}, uid {})", n.pid, n.uid)
        })
        .collect();
    if others.is_empty() {
        return;
    }
    f.add(
        &REUSEPORT_HIJACK,
        Severity::High,
        "T1557",
        format!(
            "{who} {}, which {} already serves: with SO_REUSEPORT it takes a share of their connections",
            s.doing,
            others.join(", ")
        ),
    );
}

/// An allowlist entry with a `/` names an executable; one without, a program's file name.
fn uring_allowed(s: &Subject, allow: &[String]) -> bool {
    let prog = program(s);
    allow.iter().any(|a| {
        if a.contains('/') {
            s.exe == Some(a.as_str())
        } else {
            a == prog
        }
    })
}
