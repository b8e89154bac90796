//! Where the cgroup v2 hierarchy is mounted.
use std::{
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `.../unified` on hybrid
/// hosts). Read from /proc/self/mountinfo once: it is asked for each listener owner.
pub fn v2_root() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        mountinfo.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
    })
    .as_deref()
}
