//! Who did it, beyond the kernel's task fields: the process context `enrich` builds (program,
//! arguments, user, parent, cgroup, container), shared by every record of that process state.
use std::{
    borrow::Cow,
    collections::BTreeMap,
    ops::Deref,
    sync::{Arc, OnceLock},
};

use serde::Serialize;

use super::task::Task;
use crate::clock::Timestamp;

/// Who did it, beyond pid/tid/uid/gid/comm: see `enrich`.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// When the process started (with `pid`, its lasting identity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// Audit login uid: the user who logged in, whatever su/sudo did since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loginuid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// The executable had no links left at the event: deleted since it started, or never a
    /// file (a memfd). /proc says "(deleted)".
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exe_deleted: bool,
    /// The arguments as they are at the event (a process may rewrite them: `$0`,
    /// setproctitle); `exec_args` has those it was started with when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Arc<[String]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_args: Option<Arc<[String]>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub args_truncated: bool,
    /// 0 (omitted) only when there is no process to take it from.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub cgroup_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Arc<Container>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// `--ancestry`: the parent, its parent and so on, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ancestry: Option<Arc<[Ancestor]>>,
    /// The same chain, always kept for the detections (written only as `ancestry`).
    #[serde(skip)]
    pub lineage: Arc<[Ancestor]>,
    /// Fields that could not be known, each with the reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gaps: BTreeMap<&'static str, String>,
}

impl ProcessContext {
    pub fn gap(&mut self, field: &'static str, why: impl Into<String>) {
        self.gaps.insert(field, why.into());
    }
}

/// A process context, built once for each state of a process and shared by all its records
/// (`enrich` caches it), with its encodings cached too: a busy process costs no formatting of
/// its context per event, in any format.
#[derive(Debug, Default)]
pub struct Process {
    context: ProcessContext,
    /// The context as output formats encode it, each keyed by its format's name and made on
    /// first use (`encoded`). The formats are `output`'s business: this knows none of them.
    encoded: [OnceLock<(&'static str, Encoded)>; ENCODINGS],
    /// What its executable is by content, examined the first time a rule needs it.
    identity: OnceLock<Identity>,
}

/// What a program's executable is, beyond its name (`enrich::identify`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The host tool whose content it has (that tool's real path), when it is one of them.
    pub known_as: Option<Arc<str>>,
    /// Where its executable lives.
    pub exe_at: Option<Location>,
    /// An interpreter's script, where it lives.
    pub script_at: Option<Location>,
    /// The other names its executable goes by on the host (links to it in the tool
    /// directories: `redis-server` for `redis-check-rdb`).
    pub aliases: Arc<[Arc<str>]>,
    /// The program a dynamic loader run as the executable loads (`ld.so /usr/bin/python3`):
    /// then `known_as` and `exe_at` are that program's.
    pub loaded: Option<Loaded>,
}

/// The program named to a dynamic loader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Its path (resolved in the process's root when it could be).
    pub program: Arc<str>,
    /// Where it is named in the arguments as started: they are its own from there.
    pub at: usize,
    /// What runs is no file on disk: a memfd, or a file deleted (or replaced) since it was
    /// loaded.
    pub deleted: bool,
}

/// A file's absolute path, and whether anyone may write in its directory (as its process sees
/// the file system: a container's root is its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub path: Arc<str>,
    pub world_writable: bool,
}

/// Encodings cached per process; a format beyond them encodes the context for each record.
const ENCODINGS: usize = 4;

/// Preformatted pieces of a context, as one format writes them (the format knows which is
/// which).
pub type Encoded = Box<[Box<str>]>;

impl Process {
    pub fn new(context: ProcessContext) -> Arc<Self> {
        Arc::new(Self {
            context,
            encoded: Default::default(),
            identity: OnceLock::new(),
        })
    }

    /// What its executable is, `examine`d once per process state.
    pub fn identity(&self, examine: impl FnOnce() -> Identity) -> &Identity {
        self.identity.get_or_init(examine)
    }

    /// The context encoded by `encode` for the format named `format`, which runs once per
    /// process state and format (while there is room for it).
    pub fn encoded(
        &self,
        format: &'static str,
        encode: impl FnOnce(&ProcessContext) -> Encoded,
    ) -> Cow<'_, [Box<str>]> {
        let mut encode = Some(encode);
        for slot in &self.encoded {
            let (key, pieces) = slot.get_or_init(|| {
                let encode = encode.take().expect("encoded once");
                (format, encode(&self.context))
            });
            if *key == format {
                return Cow::Borrowed(pieces);
            }
        }
        match encode {
            Some(encode) => Cow::Owned(encode(&self.context).into_vec()),
            None => unreachable!("a slot took the encoding"),
        }
    }
}

/// Equal when the contexts are (whether or not either has been encoded yet).
impl PartialEq for Process {
    fn eq(&self, other: &Self) -> bool {
        self.context == other.context
    }
}

impl Eq for Process {}

impl Deref for Process {
    type Target = ProcessContext;

    fn deref(&self) -> &ProcessContext {
        &self.context
    }
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Parent {
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// Why comm and exe are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<&'static str>,
}

/// One ancestor: who it was and what it ran when its child was born, exact after it exited.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ancestor {
    pub pid: u32,
    pub start_time: Timestamp,
    pub comm: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Arc<[String]>>,
}

/// A container, as its cgroup path and its runtime's own state name it (`enrich::container`).
/// Shared by the contexts of all its processes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Container {
    /// `docker`, `containerd`, `cri-o`, `podman`, or `kubernetes` when the cgroup path names a
    /// pod but not the runtime (cgroupfs driver) and no runtime's state knows the container.
    pub runtime: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The image as the container was created from it (`nginx:1.27`, `localhost/app:latest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image's id, as the runtime reports it (`sha256:...` for docker, bare hex for
    /// podman, a digest for cri-o).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// Where name and image were read (`enrich::container::source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
}

/// The Kubernetes pod of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pod {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// A listener's first owner, as far as it is known: its task (from /proc) and context.
#[derive(Clone, Debug)]
pub struct ListenerOwner {
    pub task: Option<Task>,
    pub process: Arc<Process>,
}

const fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Each format's encoding is made once and kept under its name; a format beyond the slots
    /// still gets its own encoding, made each time.
    #[test]
    fn encodings_are_kept_per_format_and_any_number_of_formats_works() {
        let p = Process::new(ProcessContext::default());
        let made = Cell::new(0);
        let names = ["native", "ecs", "ocsf", "fourth", "fifth"];
        for _ in 0..3 {
            for name in names {
                let got = p.encoded(name, |_| {
                    made.set(made.get() + 1);
                    Box::new([name.into()])
                });
                assert_eq!(&*got[0], name);
            }
        }
        // Four kept (made once each), the fifth made on each of the three rounds.
        assert_eq!(made.get(), ENCODINGS + 3 * (names.len() - ENCODINGS));
    }
}
