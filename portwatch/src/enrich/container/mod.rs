//! Containers named by their runtime: the cgroup path says which runtime and which id
//! (`classify`), the runtime's own state says the name, the image and, under Kubernetes, the
//! pod. Read-only, and from state files first: docker's `config.v2.json` (`docker`), podman's
//! storage records (`podman`), the OCI bundle annotations the CRI plugins of containerd and
//! cri-o write (`cri`); an API socket (docker's, podman's) only where the files cannot be read,
//! with a short time limit. What no source says is a gap with the reason, never a guess.
//!
//! Answers are cached per container, so the event stream reads a runtime's state once per new
//! container; entries of containers not seen for a while are dropped.
mod classify;
pub mod cri;
pub mod docker;
pub mod http;
pub mod podman;

use std::{
    collections::HashMap,
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

pub use classify::{Found, Runtime, classify, unit};

use crate::model::process::{Container, Pod};

/// Where a container's name and image were read (the record's `container.source`).
pub mod source {
    pub const DOCKER_STATE: &str = "docker state";
    pub const DOCKER_API: &str = "docker api";
    pub const PODMAN_STATE: &str = "podman state";
    pub const PODMAN_API: &str = "podman api";
    /// The OCI bundle's annotations, written by containerd's or cri-o's CRI plugin.
    pub const CRI_ANNOTATIONS: &str = "cri annotations";
    /// A containerd task's bundle outside Kubernetes (`ctr`, nerdctl).
    pub const CONTAINERD_TASK: &str = "containerd task";
}

/// What a runtime's state says of a container.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub name: Option<String>,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub pod: Option<Pod>,
    pub source: &'static str,
    /// Fields the source has no value for, with the reason.
    pub gaps: Vec<(&'static str, String)>,
}

/// A container with what is known of it, and why the rest is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub container: Arc<Container>,
    pub gaps: Arc<[(&'static str, String)]>,
}

/// The host's files, read through init's root first (portwatch in a container with the host's
/// pid namespace sees the host's files there; on the host it is / anyway), or only under a
/// test's directory.
pub struct HostFs {
    prefixes: Vec<PathBuf>,
}

/// No runtime's state file is near this size; a bigger one is not read (podman's one list of
/// every container is the largest).
const MAX_STATE: u64 = 64 << 20;

impl HostFs {
    pub fn host() -> Self {
        Self {
            prefixes: vec!["/proc/1/root".into(), "/".into()],
        }
    }

    pub fn under(dir: &Path) -> Self {
        Self {
            prefixes: vec![dir.to_path_buf()],
        }
    }

    fn candidates<'a>(&'a self, path: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
        let relative = path.trim_start_matches('/');
        self.prefixes.iter().map(move |p| p.join(relative))
    }

    /// The file at `path` (absolute, on the host), or the error of the last place tried. Only
    /// a regular file: a rootless runtime's files are its user's, who could put a FIFO there
    /// (opened without waiting for a writer, then refused) to stall the stream.
    pub fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let mut last = io::Error::from(io::ErrorKind::NotFound);
        for p in self.candidates(path) {
            match crate::files::open_regular(&p) {
                Ok(f) => {
                    let mut bytes = Vec::new();
                    f.take(MAX_STATE + 1).read_to_end(&mut bytes)?;
                    if bytes.len() as u64 > MAX_STATE {
                        return Err(io::Error::other("over 64 MiB"));
                    }
                    return Ok(bytes);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Where `path` exists (a socket to connect to), if anywhere.
    pub fn find(&self, path: &str) -> Option<PathBuf> {
        self.candidates(path)
            .find(|p| fs::symlink_metadata(p).is_ok())
    }

    /// The names in the directory `path`, from the first place that lists it.
    pub fn list(&self, path: &str) -> Vec<String> {
        self.candidates(path)
            .find_map(|p| fs::read_dir(p).ok())
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The home directory of `uid`, from the host's /etc/passwd (rootless runtimes keep their
    /// state there).
    pub fn home(&self, uid: u32) -> Option<String> {
        let passwd = self.read("/etc/passwd").ok()?;
        String::from_utf8_lossy(&passwd).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && f[2].parse() == Ok(uid) && f[5].starts_with('/'))
                .then(|| f[5].to_owned())
        })
    }
}

/// How an error reading a state file reads in a gap.
pub fn describe(path: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => format!("{path} does not exist"),
        io::ErrorKind::PermissionDenied => {
            format!("{path} is unreadable (permission denied: portwatch needs CAP_DAC_READ_SEARCH)")
        }
        _ => format!("{path} is unreadable ({e})"),
    }
}

/// An API socket's answers must not hold up the event stream for long.
pub const API_TIMEOUT: Duration = Duration::from_millis(250);
/// An answer with gaps is asked again after this long (the runtime may have been starting).
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Containers not seen for this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// At most this many containers are remembered; beyond it the least recently seen goes.
const KEPT: usize = 4096;

struct Entry {
    resolved: Option<Resolved>,
    fetched: Instant,
    seen: Instant,
}

/// The cache of what runtimes said, per container.
pub struct Containers {
    fs: HostFs,
    entries: HashMap<Found, Entry>,
}

impl Containers {
    pub fn new(fs: HostFs) -> Self {
        Self {
            fs,
            entries: HashMap::new(),
        }
    }

    /// Containers remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The container `found` names, with what its runtime says of it; None when it is not a
    /// container after all (a `/namespace/id` path containerd has no task for).
    pub fn resolve(&mut self, found: &Found) -> Option<Resolved> {
        let now = Instant::now();
        if let Some(e) = self.entries.get_mut(found) {
            e.seen = now;
            let complete = e.resolved.as_ref().is_none_or(|r| r.gaps.is_empty());
            if complete || now.duration_since(e.fetched) < RETRY_AFTER {
                return e.resolved.clone();
            }
        }
        let resolved = ask(&self.fs, found);
        if self.entries.len() >= KEPT && !self.entries.contains_key(found) {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.seen)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            found.clone(),
            Entry {
                resolved: resolved.clone(),
                fetched: now,
                seen: now,
            },
        );
        resolved
    }

    /// Periodic upkeep: forgets containers not seen for a while.
    pub fn maintain(&mut self) {
        self.maintain_at(Instant::now());
    }

    fn maintain_at(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now.duration_since(e.seen) < FORGET_AFTER);
    }
}

/// Asks the runtime `found` points at; under Kubernetes' cgroupfs driver, each runtime in
/// turn, and the one that knows the container is its runtime.
pub fn ask(fs: &HostFs, found: &Found) -> Option<Resolved> {
    let id = found.id.as_str();
    let (runtime, info) = match &found.runtime {
        Runtime::Docker => ("docker", docker::ask(fs, id, found.user)),
        Runtime::Podman => ("podman", podman::ask(fs, id, found.user)),
        Runtime::CriO => ("cri-o", cri::crio(fs, id)),
        Runtime::Containerd => ("containerd", cri::containerd(fs, None, id)),
        // Not a task of containerd's: the path was only shaped like one.
        Runtime::ContainerdNamespace(ns) if !cri::is_task(fs, ns, id) => return None,
        Runtime::ContainerdNamespace(ns) => ("containerd", cri::containerd(fs, Some(ns), id)),
        Runtime::Kubernetes => {
            let containerd = cri::containerd(fs, Some(cri::K8S_NAMESPACE), id);
            let crio = || cri::crio(fs, id);
            let docker = || docker::from_state(fs, id, None);
            match containerd {
                Ok(info) => ("containerd", Ok(info)),
                Err(c) => match crio() {
                    Ok(info) => ("cri-o", Ok(info)),
                    Err(o) => match docker() {
                        Ok(info) => ("docker", Ok(info)),
                        Err(d) => (
                            "kubernetes",
                            Err(format!(
                                "no runtime's state knows it: containerd: {c}; cri-o: {o}; docker: {d}"
                            )),
                        ),
                    },
                },
            }
        }
    };
    Some(resolved(runtime, found, info))
}

/// The container record from a runtime's answer (or why there is none).
fn resolved(runtime: &'static str, found: &Found, info: Result<Info, String>) -> Resolved {
    let mut info = info.unwrap_or_else(|why| Info {
        gaps: vec![("container.name", why.clone()), ("container.image", why)],
        ..Info::default()
    });
    let default_gap = |field| (field, format!("{} has no {field} for it", info.source));
    let mut gaps = std::mem::take(&mut info.gaps);
    for (field, missing) in [
        ("container.name", info.name.is_none()),
        ("container.image", info.image.is_none()),
    ] {
        if missing && !gaps.iter().any(|(f, _)| *f == field) {
            gaps.push(default_gap(field));
        }
    }
    // The pod's uid the path shows, where the runtime did not say it.
    let pod = match (info.pod, &found.pod_uid) {
        (Some(mut p), Some(uid)) => {
            p.uid.get_or_insert_with(|| uid.clone());
            Some(p)
        }
        (None, Some(uid)) => Some(Pod {
            uid: Some(uid.clone()),
            ..Pod::default()
        }),
        (p, None) => p,
    };
    Resolved {
        container: Arc::new(Container {
            runtime,
            id: found.id.clone(),
            name: info.name,
            image: info.image,
            image_id: info.image_id,
            pod,
            source: (!info.source.is_empty()).then_some(info.source),
        }),
        gaps: gaps.into(),
    }
}

/// A non-empty string, as runtimes' optional fields are often empty rather than absent.
fn some(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests;
