//! The kernel's own cost accounting per BPF program (`kernel.bpf_stats_enabled=1`): run count and
//! time, read from `/proc/PID/fdinfo` of the tracer's program fds. Unlike a rate ratio, this does
//! not drift with the machine.
use std::{collections::BTreeMap, process::Command};

use anyhow::{Context as _, Result};

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Keeps the kernel's BPF statistics on while alive; the previous setting comes back on drop.
pub struct Enabled(String);

impl Enabled {
    pub fn new() -> Result<Self> {
        let before = std::fs::read_to_string(SYSCTL).context(SYSCTL)?;
        std::fs::write(SYSCTL, "1").with_context(|| format!("enabling {SYSCTL}"))?;
        Ok(Self(before.trim().to_owned()))
    }
}

impl Drop for Enabled {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

/// One program's totals so far.
#[derive(Clone, Copy, Default)]
pub struct Prog {
    pub runs: u64,
    pub ns: u64,
}

/// Every BPF program `pid` holds, by program id.
pub fn sample(pid: u32) -> BTreeMap<u32, Prog> {
    let mut progs = BTreeMap::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return progs;
    };
    for fd in fds.flatten() {
        let is_prog = std::fs::read_link(fd.path())
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes() == b"anon_inode:bpf-prog");
        if !is_prog {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(info) else {
            continue;
        };
        let field = |name: &str| -> Option<u64> {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        if let (Some(id), Some(runs), Some(ns)) =
            (field("prog_id:"), field("run_cnt:"), field("run_time_ns:"))
        {
            progs.insert(id as u32, Prog { runs, ns });
        }
    }
    progs
}

/// What ran between two samples, by program name (programs of the same name added up).
pub fn delta(before: &BTreeMap<u32, Prog>, after: &BTreeMap<u32, Prog>) -> Vec<(String, Prog)> {
    let names = names();
    let mut by_name: BTreeMap<String, Prog> = BTreeMap::new();
    for (id, a) in after {
        let b = before.get(id).copied().unwrap_or_default();
        let name = names
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("prog {id}"));
        let e = by_name.entry(name).or_default();
        e.runs += a.runs.saturating_sub(b.runs);
        e.ns += a.ns.saturating_sub(b.ns);
    }
    let mut v: Vec<_> = by_name.into_iter().filter(|(_, p)| p.runs > 0).collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.1.ns));
    v
}

/// Program names by id, from bpftool (the fdinfo has none); ids alone without it.
fn names() -> BTreeMap<u32, String> {
    let Ok(out) = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
    else {
        return BTreeMap::new();
    };
    let Ok(serde_json::Value::Array(progs)) = serde_json::from_slice(&out.stdout) else {
        return BTreeMap::new();
    };
    progs
        .iter()
        .filter_map(|p| {
            Some((
                u32::try_from(p.get("id")?.as_u64()?).ok()?,
                p.get("name")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}
