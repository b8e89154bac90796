//! Checks made before touching the kernel, so that a machine that cannot run portwatch gets one
//! clear line about why, instead of an EPERM from deep inside a BPF syscall.
use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Where tracefs is mounted, in the order the kernel documentation prefers.
const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

pub const DEFAULT_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What the rest of start-up needs to know about this machine.
pub struct Machine {
    pub tracefs: PathBuf,
    pub btf: PathBuf,
}

pub fn check(btf: Option<&Path>) -> Result<Machine> {
    check_capabilities()?;
    let btf = check_btf(btf)?;
    let tracefs = find_tracefs()?;
    Ok(Machine { tracefs, btf })
}

fn check_capabilities() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::io("reading /proc/self/status", e))?;
    let caps = effective_caps(&status)
        .ok_or_else(|| Error::Privileges("cannot read CapEff from /proc/self/status".into()))?;
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Err(Error::Privileges(format!(
        "loading eBPF tracing programs needs {} (running as uid {})",
        missing.join(" and "),
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
    )))
}

/// The `CapEff:` bitmask of a /proc/PID/status text.
pub fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The largest `--btf` file read: a kernel's BTF is some 5 to 15 MiB; a wrong path (a log, an
/// image) must not be read into memory whole.
const MAX_BTF_BYTES: u64 = 256 << 20;

fn check_btf(path: Option<&Path>) -> Result<PathBuf> {
    let path = path.unwrap_or(Path::new(DEFAULT_BTF)).to_path_buf();
    match fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() > MAX_BTF_BYTES => Err(Error::NoBtf {
            path,
            reason: format!(
                "{} bytes, more than any kernel's BTF (at most {MAX_BTF_BYTES} read)",
                m.len()
            ),
        }),
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(Error::NoBtf {
            path,
            reason: "not a file".into(),
        }),
        Err(e) => Err(Error::NoBtf {
            path,
            reason: e.to_string(),
        }),
    }
}

/// The first candidate whose `events` directory can be read. One that exists but cannot be
/// read (tracefs is mode 0700, root's) is a missing privilege, not a missing mount.
fn find_tracefs() -> Result<PathBuf> {
    let mut unreadable = None;
    for dir in TRACEFS_CANDIDATES.iter().map(PathBuf::from) {
        match fs::read_dir(dir.join("events")) {
            Ok(_) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                unreadable.get_or_insert(dir);
            }
            Err(_) => {}
        }
    }
    Err(match unreadable {
        Some(dir) => Error::TracefsUnreadable(dir),
        None => Error::NoTracefs,
    })
}

/// A capability portwatch runs without, and what is lost without it.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Missing {
    pub capability: &'static str,
    pub without: &'static str,
}

/// The capabilities portwatch can do without, what each serves.
const OPTIONAL: [(u32, Missing); 2] = [
    (
        CAP_SYS_PTRACE,
        Missing {
            capability: "CAP_SYS_PTRACE",
            without: "the owners of other users' sockets cannot be named: their /proc/PID/fd cannot be read",
        },
    ),
    (
        CAP_SYS_ADMIN,
        Missing {
            capability: "CAP_SYS_ADMIN",
            without: "listeners in other network namespaces are not listed: entering a namespace (setns) needs it",
        },
    ),
];

/// The optional capabilities this process lacks (read once: they do not change while it runs).
pub fn missing() -> &'static [Missing] {
    static MISSING: std::sync::OnceLock<Vec<Missing>> = std::sync::OnceLock::new();
    MISSING.get_or_init(|| {
        let caps = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| effective_caps(&s))
            .unwrap_or(0);
        OPTIONAL
            .iter()
            .filter(|(cap, _)| caps & (1u64 << cap) == 0)
            .map(|&(_, m)| m)
            .collect()
    })
}

/// Whether this process lacks `capability` (by name, as in `Missing`).
pub fn lacks(capability: &str) -> bool {
    missing().iter().any(|m| m.capability == capability)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_effective_caps() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_caps("Name: x\n"), None);
    }
}
