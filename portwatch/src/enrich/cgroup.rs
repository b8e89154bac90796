//! cgroups: from the kernel's cgroup id to a path, and from a path to the container or systemd
//! unit a process runs in. The path shapes follow what docker, containerd/Kubernetes, cri-o,
//! podman and systemd create, with the systemd and cgroupfs drivers, on cgroup v2 and v1.
use crate::model::process::Container;
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

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

/// Where a process runs, as far as its cgroup path tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    Container(Container),
    /// A systemd unit (service, scope of a login session, ...).
    Unit(String),
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<prefix><id>.scope` → id.
fn scoped<'a>(component: &'a str, prefix: &str) -> Option<&'a str> {
    let id = component.strip_prefix(prefix)?.strip_suffix(".scope")?;
    is_container_id(id).then_some(id)
}

fn pod_uid(path: &str) -> Option<String> {
    path.split('/').find_map(|c| {
        // systemd driver: kubepods-besteffort-pod<uid with _>.slice; cgroupfs: pod<uid>
        let c = c.strip_suffix(".slice").unwrap_or(c);
        let uid = c
            .rsplit_once("-pod")
            .map(|(_, u)| u)
            .or_else(|| c.strip_prefix("pod"))?;
        (uid.len() == 36 || uid.len() == 32).then(|| uid.replace('_', "-"))
    })
}

/// The container or systemd unit of a cgroup path, if it names one.
pub fn classify(path: &str) -> Option<Workload> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let in_kubepods = components.iter().any(|c| c.starts_with("kubepods"));
    // Innermost first: a container's processes can sit in sub-cgroups of its scope.
    for (i, c) in components.iter().enumerate().rev() {
        let found = if let Some(id) = scoped(c, "docker-") {
            Some(("docker", id))
        } else if let Some(id) = scoped(c, "cri-containerd-") {
            Some(("containerd", id))
        } else if let Some(id) = scoped(c, "crio-").or_else(|| scoped(c, "crio-conmon-")) {
            Some(("cri-o", id))
        } else if let Some(id) = scoped(c, "libpod-").or_else(|| scoped(c, "libpod-conmon-")) {
            Some(("podman", id))
        } else if is_container_id(c) && i > 0 {
            // cgroupfs driver: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>, /machine.slice/...
            match components[i - 1] {
                "docker" => Some(("docker", *c)),
                p if in_kubepods && p.starts_with("pod") => Some(("kubernetes", *c)),
                _ if in_kubepods => Some(("kubernetes", *c)),
                _ => None,
            }
        } else {
            None
        };
        if let Some((runtime, id)) = found {
            return Some(Workload::Container(Container {
                runtime,
                id: id.to_owned(),
                pod_uid: if in_kubepods { pod_uid(path) } else { None },
            }));
        }
    }
    components
        .iter()
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(|c| Workload::Unit((*c).to_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4c1b0e8f6a4b2d9c7e5a1b2c3d4e5f60718293a4b5c6d7e8f90123456789ab";

    fn container(runtime: &'static str, pod: Option<&str>) -> Option<Workload> {
        Some(Workload::Container(Container {
            runtime,
            id: ID.into(),
            pod_uid: pod.map(str::to_owned),
        }))
    }

    #[test]
    fn docker() {
        // systemd driver (cgroup v2 and v1 name=systemd), cgroupfs driver
        assert_eq!(
            classify(&format!("/system.slice/docker-{ID}.scope")),
            container("docker", None)
        );
        assert_eq!(
            classify(&format!("/docker/{ID}")),
            container("docker", None)
        );
        assert_eq!(
            classify(&format!("/docker/{ID}/init")),
            container("docker", None)
        );
    }

    #[test]
    fn kubernetes_pods_in_every_qos_class() {
        let uid = "1e2f3a4b-5c6d-7e8f-9a0b-1c2d3e4f5a6b";
        let u = uid.replace('-', "_");
        for (qos, slice) in [
            (
                "besteffort",
                format!("kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice"),
            ),
            (
                "burstable",
                format!("kubepods-burstable.slice/kubepods-burstable-pod{u}.slice"),
            ),
            ("guaranteed", format!("kubepods-pod{u}.slice")),
        ] {
            let containerd = format!("/kubepods.slice/{slice}/cri-containerd-{ID}.scope");
            assert_eq!(
                classify(&containerd),
                container("containerd", Some(uid)),
                "{qos}"
            );
            let crio = format!("/kubepods.slice/{slice}/crio-{ID}.scope");
            assert_eq!(classify(&crio), container("cri-o", Some(uid)), "{qos}");
        }
        // cgroupfs driver (v1 and v2): the runtime is not in the path
        let cgroupfs = format!("/kubepods/burstable/pod{uid}/{ID}");
        assert_eq!(classify(&cgroupfs), container("kubernetes", Some(uid)));
        let guaranteed = format!("/kubepods/pod{uid}/{ID}");
        assert_eq!(classify(&guaranteed), container("kubernetes", Some(uid)));
    }

    #[test]
    fn cri_o_and_podman_rootful_and_rootless() {
        assert_eq!(
            classify(&format!("/machine.slice/libpod-{ID}.scope")),
            container("podman", None)
        );
        assert_eq!(
            classify(&format!("/machine.slice/libpod-{ID}.scope/container")),
            container("podman", None)
        );
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        assert_eq!(classify(&rootless), container("podman", None));
        assert_eq!(
            classify(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            container("podman", None)
        );
        assert_eq!(
            classify(&format!("/system.slice/crio-conmon-{ID}.scope")),
            container("cri-o", None)
        );
    }

    #[test]
    fn systemd_services_and_sessions() {
        assert_eq!(
            classify("/system.slice/nginx.service"),
            Some(Workload::Unit("nginx.service".into()))
        );
        assert_eq!(
            classify("/user.slice/user-1000.slice/session-3.scope"),
            Some(Workload::Unit("session-3.scope".into()))
        );
        assert_eq!(
            classify("/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.service"),
            Some(Workload::Unit("app-foo.service".into()))
        );
        assert_eq!(classify("/"), None);
        assert_eq!(
            classify("/process_api/77f0cf920886d61bdc1a92d7e9726954"),
            None
        );
        // Not a container id: wrong length.
        assert_eq!(classify("/docker/abc"), None);
    }

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
