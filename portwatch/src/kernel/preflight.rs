//! Checks made before touching the kernel, so that a machine that cannot run portwatch gets one
//! clear line about why, instead of an EPERM from deep inside a BPF syscall.
use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

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
    let tracefs = find_tracefs().ok_or(Error::NoTracefs)?;
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

fn check_btf(path: Option<&Path>) -> Result<PathBuf> {
    let path = path.unwrap_or(Path::new(DEFAULT_BTF)).to_path_buf();
    match fs::metadata(&path) {
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

fn find_tracefs() -> Option<PathBuf> {
    TRACEFS_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
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
