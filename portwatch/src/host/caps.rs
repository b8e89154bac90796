//! Capabilities: their bits, the parser of /proc/PID/status `CapEff`, and which optional ones
//! this process runs without (and what that hides).
use std::fs;

pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// The `CapEff:` bitmask of a /proc/PID/status text.
pub fn effective(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// A process's effective capabilities, None once it is gone.
pub fn of(pid: u32) -> Option<u64> {
    effective(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// This process's effective capabilities.
pub fn own() -> Option<u64> {
    effective(&fs::read_to_string("/proc/self/status").ok()?)
}

/// Whether `caps` has capability `cap`.
pub const fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
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
            without: "the owners of other users' sockets cannot be named: their /proc/PID/fd cannot be read; and the detections know other users' programs by name only (a renamed copy of netcat is not netcat): their /proc/PID/exe cannot be read",
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
        let caps = own().unwrap_or(0);
        OPTIONAL
            .iter()
            .filter(|(cap, _)| !has(caps, *cap))
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
        assert_eq!(effective(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective("Name: x\n"), None);
    }

    #[test]
    fn reads_a_process_capabilities() {
        let ours = of(std::process::id()).expect("our own status");
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(ours != 0, root, "{ours:x}");
        assert_eq!(of(0), None, "no process 0 in /proc");
    }
}
