//! Checks made before touching the kernel, so that a machine that cannot run portwatch gets one
//! clear line about why, instead of an EPERM from deep inside a BPF syscall.
use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    host::caps::{self, CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN},
};

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
    let caps = caps::effective(&status)
        .ok_or_else(|| Error::Privileges("cannot read CapEff from /proc/self/status".into()))?;
    let has = |cap: u32| caps::has(caps, cap);
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
