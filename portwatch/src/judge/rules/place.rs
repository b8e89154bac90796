//! Where a listener's program lives: its executable, or an interpreter's script, in a
//! directory anyone may write to (as the process sees it: a container's /tmp is its own), in
//! shared memory, in a user's runtime directory, or in a hidden directory or file. Dropped tools run
//! from there; packaged services do not. Raised a level when the user is root or a system
//! account, which services run as and people do not log in as.
use super::{Findings, Severity, Subject, table::SUSPICIOUS_LOCATION, who};
use crate::model::process::Location;

/// Hidden directories of language toolchains, version managers and remote editors, whose
/// programs developers run as they are: not reported when the path's first hidden directory is
/// one of them (an attacker may hide there too; the README says so).
pub(super) const TOOLCHAIN_DIRS: [&str; 21] = [
    ".local/bin/",
    ".local/share/pipx/",
    ".local/share/virtualenvs/",
    ".local/share/gem/",
    ".venv/",
    ".virtualenvs/",
    ".cache/pypoetry/virtualenvs/",
    ".local/pipx/",
    ".cargo/bin/",
    ".rustup/",
    ".nvm/",
    ".npm/_npx/",
    ".pyenv/",
    ".rbenv/",
    ".asdf/",
    ".sdkman/",
    ".volta/",
    ".bun/",
    ".deno/",
    ".vscode-server/",
    ".cursor-server/",
];

/// Places where anyone may write, whatever their mode looks like from here.
const SHARED: [(&str, &str); 5] = [
    ("/tmp/", "a temporary directory"),
    ("/var/tmp/", "a temporary directory"),
    ("/dev/shm/", "shared memory"),
    ("/run/shm/", "shared memory"),
    ("/run/user/", "a user's runtime directory"),
];

/// Why `at` is no place for a server's program, and how bad: high for a place anyone may
/// write to, medium for a hidden directory.
fn unusual(at: &Location) -> Option<(String, Severity, &'static str)> {
    let path = &*at.path;
    if let Some((_, what)) = SHARED.iter().find(|(p, _)| path.starts_with(p)) {
        return Some(((*what).to_owned(), Severity::High, "T1105"));
    }
    if at.world_writable {
        return Some((
            "a directory anyone may write to".to_owned(),
            Severity::High,
            "T1105",
        ));
    }
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    // The first hidden directory, and the path from it on.
    let hidden = dir.match_indices("/.").find_map(|(at, _)| {
        let from = &path[at + 1..];
        let name = from.split('/').next().unwrap_or(from);
        (name != "." && name != "..").then_some((name, from))
    });
    if let Some((name, from)) = hidden {
        if TOOLCHAIN_DIRS.iter().any(|t| from.starts_with(t)) {
            return None;
        }
        return Some((
            format!("a hidden directory ({name})"),
            Severity::Medium,
            "T1564.001",
        ));
    }
    file.starts_with('.').then(|| {
        (
            format!("a hidden file ({file})"),
            Severity::Medium,
            "T1564.001",
        )
    })
}

/// Root, or an account below the first regular user's uid, or nobody.
fn system_account(uid: Option<u32>) -> bool {
    uid.is_some_and(|u| u < 1000 || u == 65534)
}

pub(super) fn judge(s: &Subject, f: &mut Findings) {
    if s.accept {
        return;
    }
    for (what, at) in [("its executable", s.exe_at), ("its script", s.script_at)] {
        let Some((at, (place, severity, technique))) = at.and_then(|a| Some((a, unusual(a)?)))
        else {
            continue;
        };
        let (severity, account) = match (system_account(s.uid), severity) {
            (true, Severity::High) => (Severity::Critical, ", run by a system account"),
            (true, Severity::Medium) => (Severity::High, ", run by a system account"),
            (_, severity) => (severity, ""),
        };
        f.add(
            &SUSPICIOUS_LOCATION,
            severity,
            technique,
            format!(
                "{} {}: {what} {} is in {place}{account}",
                who(s),
                s.doing,
                at.path
            ),
        );
        return;
    }
}
