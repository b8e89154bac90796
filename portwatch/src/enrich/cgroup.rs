//! cgroups: from the kernel's cgroup id to a path, and which path of /proc/PID/cgroup to show
//! (the container or unit a path names: `container::classify`, `container::unit`).
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::host::cgroup::v2_root;

/// The cgroup path to show for a process, from its /proc/PID/cgroup text: the v2 path, unless
/// it is the root and a v1 hierarchy (systemd's first) says more, as on hybrid hosts.
pub fn preferred_path(proc_cgroup: &str) -> Option<String> {
    let mut v2 = None;
    let mut systemd = None;
    let mut other = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.is_empty() {
            v2 = Some(path);
        } else if controllers == "name=systemd" {
            systemd = Some(path);
        } else if other.is_none() && path != "/" {
            other = Some(path);
        }
    }
    [v2, systemd, other]
        .into_iter()
        .flatten()
        .find(|p| *p != "/")
        .or(v2)
        .or(systemd)
        .map(str::to_owned)
}

/// Whether this host uses cgroup v1 hierarchies (v1-only or hybrid), judged from our own
/// /proc/self/cgroup: any line naming controllers is a v1 hierarchy.
pub fn v1_in_use() -> bool {
    fs::read_to_string("/proc/self/cgroup").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split(':').nth(1).is_some_and(|c| !c.is_empty()))
    })
}

/// cgroup v2 ids (directory inode numbers) to paths, by walking the v2 hierarchy.
pub struct CgroupPaths {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    last_scan: Option<Instant>,
}

/// A miss triggers a rescan at most this often: new containers appear, ids of gone ones stay
/// unknown.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

impl CgroupPaths {
    pub fn new() -> Self {
        Self {
            root: v2_root().map(Path::to_path_buf),
            paths: HashMap::new(),
            last_scan: None,
        }
    }

    pub fn path(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        if self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY) {
            self.scan();
        }
        self.paths.get(&id).cloned()
    }

    fn scan(&mut self) {
        self.last_scan = Some(Instant::now());
        let Some(root) = self.root.clone() else {
            return;
        };
        self.paths.clear();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = fs::metadata(&dir) else {
                continue;
            };
            // Cgroup names are bytes (`text::escape`), as /proc/PID/cgroup's are read.
            let rel = dir.strip_prefix(&root).map_or_else(
                |_| "/".into(),
                |r| format!("/{}", crate::model::text::escape_os(r.as_os_str())),
            );
            self.paths.insert(meta.ino(), rel);
            if let Ok(entries) = fs::read_dir(&dir) {
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
    }
}

impl Default for CgroupPaths {
    fn default() -> Self {
        Self::new()
    }
}

/// The cgroup v2 id (directory inode) of a live process, as `bpf_get_current_cgroup_id` gives it.
pub fn v2_id_of(pid: u32) -> Option<u64> {
    use std::{ffi::OsStr, os::unix::ffi::OsStrExt};
    // The path is bytes: cgroup names need not be UTF-8.
    let raw = fs::read(format!("/proc/{pid}/cgroup")).ok()?;
    let path = raw
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"0::"))?;
    let relative = path.strip_prefix(b"/").unwrap_or(path);
    let dir = v2_root()?.join(OsStr::from_bytes(relative));
    fs::metadata(dir).ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_informative_path_on_v1_v2_and_hybrid_hosts() {
        let v2 = "0::/system.slice/sshd.service\n";
        assert_eq!(
            preferred_path(v2).as_deref(),
            Some("/system.slice/sshd.service")
        );
        let hybrid = "9:name=systemd:/system.slice/docker-x.scope\n4:memory:/m\n0::/\n";
        assert_eq!(
            preferred_path(hybrid).as_deref(),
            Some("/system.slice/docker-x.scope")
        );
        let v1 = "4:memory:/process_api/77f0\n3:cpuset:/\n";
        assert_eq!(preferred_path(v1).as_deref(), Some("/process_api/77f0"));
        assert_eq!(preferred_path("0::/\n").as_deref(), Some("/"));
    }
}
