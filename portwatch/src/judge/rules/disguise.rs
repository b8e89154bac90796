//! Names that claim to be what the program is not. Its command name and its argv[0] (as it is
//! now and as it was started: `exec -a`, `$0`, setproctitle) are compared with what the
//! program is (by content first, `program`): a kernel thread's name, in any form `ps` shows
//! (`[kworker/0:1]`, `kworker/0:1`), on a process that has an executable; a well-known daemon's
//! name or process title (`sshd: root@pts/0`, `nginx: worker process`) on another program; a
//! program named after a daemon (`~/.local/bin/sshd`) that is not the host's daemon by content
//! and does not live where installed programs live.
use super::{
    Findings, Severity, Subject, file_name, program,
    table::{KERNEL_THREAD_NAME, MASQUERADE},
    who,
};

pub(super) const KERNEL_THREADS: [&str; 8] = [
    "kworker",
    "ksoftirqd",
    "kthreadd",
    "migration/",
    "rcu_",
    "kswapd",
    "kauditd",
    "watchdog/",
];

/// Daemons whose names and process titles a disguise borrows. A program is the daemon when
/// its name is the daemon's, or the daemon's followed by a version or a part (`php-fpm8.2`,
/// `sshd-session`).
pub(super) const DAEMONS: [&str; 22] = [
    "sshd",
    "systemd",
    "cron",
    "crond",
    "atd",
    "nginx",
    "apache2",
    "httpd",
    "lighttpd",
    "php-fpm",
    "rsyslogd",
    "syslogd",
    "dbus-daemon",
    "containerd",
    "dockerd",
    "postgres",
    "mysqld",
    "mariadbd",
    "redis-server",
    "chronyd",
    "ntpd",
    "polkitd",
];

/// Where installed programs live, as the process sees its file system (a container's
/// `/usr/sbin/sshd` is its image's).
pub(super) const INSTALLED: [&str; 8] = [
    "/usr/",
    "/bin/",
    "/sbin/",
    "/lib/",
    "/lib64/",
    "/opt/",
    "/snap/",
    "/nix/store/",
];

/// The daemon `name` is, or is a version or part of (`php-fpm8.2`, `sshd-session`).
pub(super) fn daemon(name: &str) -> Option<&'static str> {
    DAEMONS
        .iter()
        .copied()
        .find(|d| name == *d || name.strip_prefix(d).is_some_and(is_version_or_part))
}

/// The daemon `name` is, or a version of (`php-fpm8.2`), but not a part of: a file named
/// `nginx-ingress-controller` is another program, not nginx under a disguise.
fn daemon_itself(name: &str) -> Option<&'static str> {
    DAEMONS.iter().copied().find(|d| {
        name == *d
            || name
                .strip_prefix(d)
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
    })
}

/// The program a name claims: `sshd: root@pts/0` → `sshd`, `/usr/sbin/nginx` → `nginx`,
/// `-bash` (a login shell) → `bash`.
fn claimed(name: &str) -> &str {
    let name = name.trim().trim_start_matches('-');
    let word = name.split([':', ' ']).next().unwrap_or(name);
    file_name(word)
}

fn is_version_or_part(rest: &str) -> bool {
    rest.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
}

/// A kernel thread's name: in the brackets ps shows them in, or one of theirs.
fn kernel_thread(name: &str) -> bool {
    let bare = name.trim();
    if bare.starts_with('[') && bare.ends_with(']') && bare.len() > 2 {
        return true;
    }
    KERNEL_THREADS.iter().any(|k| bare.starts_with(k))
}

pub(super) fn judge(s: &Subject, f: &mut Findings) {
    let argv0 = s.args.and_then(|a| a.first()).map(String::as_str);
    let names = [("command name", Some(s.comm)), ("argv[0]", argv0)];
    if s.exe.is_some() {
        if let Some((what, name)) = names
            .iter()
            .find_map(|(what, n)| n.filter(|n| kernel_thread(n)).map(|n| (what, n)))
        {
            f.add(
                &KERNEL_THREAD_NAME,
                Severity::High,
                "T1036.004",
                format!(
                    "{} {}: a user process whose {what} `{name}` is a kernel thread's",
                    who(s),
                    s.doing
                ),
            );
        }
    }
    let prog = program(s);
    for (what, name) in names {
        let Some(name) = name else { continue };
        // `sshd-session: root [priv]` and `systemd-journald` claim sshd and systemd.
        let Some(claim) = daemon(claimed(name)) else {
            continue;
        };
        let is_it =
            daemon(prog) == Some(claim) || s.aliases.iter().any(|a| daemon(a) == Some(claim));
        if !is_it {
            f.add(
                &MASQUERADE,
                Severity::High,
                "T1036.005",
                format!(
                    "{} {}: its {what} `{name}` claims to be {claim}, but the program is {prog}",
                    who(s),
                    s.doing
                ),
            );
            return;
        }
    }
    // Named after a daemon by its file name alone: not a copy of a host program, and not
    // where packages install programs.
    let at = s.exe_at.map(|a| &*a.path);
    if let (Some(daemon), None, Some(at)) = (daemon_itself(prog), s.known_as, at) {
        if !INSTALLED.iter().any(|p| at.starts_with(p)) {
            f.add(
                &MASQUERADE,
                Severity::High,
                "T1036.005",
                format!(
                    "{} {}: named after {daemon}, but it is no program of the host's and lives in {}, \
                     where packages do not install programs",
                    who(s),
                    s.doing,
                    at.rsplit_once('/').map_or("/", |(d, _)| d)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_as_ps_shows_them() {
        assert_eq!(claimed("sshd: root@pts/0"), "sshd");
        assert_eq!(claimed("/usr/sbin/nginx"), "nginx");
        assert_eq!(claimed("nginx: worker process"), "nginx");
        assert_eq!(claimed("-bash"), "bash");
        assert_eq!(claimed(" sshd: root@pts/0"), "sshd", "leading space");
        assert!(kernel_thread("[kworker/1:2]"));
        assert!(kernel_thread("kworker/1:2"));
        assert!(kernel_thread("[jbd2/sda1-8]"));
        assert!(!kernel_thread("[]"));
        assert!(!kernel_thread("python3"));
    }
}
