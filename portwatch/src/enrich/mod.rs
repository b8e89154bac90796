//! Who did it: turns the kernel's task context into the process, parent, user and workload
//! fields of a record, saying for each field it cannot fill why not.
pub mod cgroup;
pub mod container;
mod fingerprint;
pub mod identify;
mod loader;
mod mounts;
pub mod procfs;
pub mod proctable;
mod resolve;
mod running;
pub mod users;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use self::{
    cgroup::CgroupPaths,
    container::{Containers, HostFs},
    proctable::{Image, ProcessTable},
    users::Users,
};
use crate::{
    clock::Clock,
    model::{
        listener::Listener,
        process::{Ancestor, Identity, ListenerOwner, Parent, Process, ProcessContext},
        task::{ExecRecord, Task},
    },
};

/// `loginuid` of a task that never logged in (AUDIT_UID_UNSET).
const LOGINUID_UNSET: u32 = u32::MAX;

/// Contexts kept (one per process); beyond this the cache starts over.
const CONTEXTS_KEPT: usize = 16_384;

pub struct Enricher {
    processes: ProcessTable,
    users: Users,
    cgroups: CgroupPaths,
    /// What container runtimes said of each container, asked once per container.
    containers: Containers,
    /// The last context built for each pid, reused while nothing it was built from changed.
    contexts: FxHashMap<u32, Cached>,
    /// `--ancestry`: contexts carry the chain of ancestors.
    ancestry: bool,
    /// What executables are by content (`identity`).
    identifier: identify::Identifier,
}

/// A built context and everything it was built from.
struct Cached {
    task: TaskState,
    /// The process's and its parent's images, compared by identity: the process table makes a
    /// new one at each exec, so a changed program is never mistaken for the old one.
    image: Option<Arc<Image>>,
    parent_image: Option<Arc<Image>>,
    process: Arc<Process>,
}

/// The fields of a kernel task record that a context depends on.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TaskState {
    start_ns: u64,
    ppid: u32,
    parent_start_ns: u64,
    uid: u32,
    gid: u32,
    loginuid: Option<u32>,
    cgroup_id: u64,
    netns: Option<u32>,
    /// What it ran at the event: a deleted executable or rewritten arguments rebuild it.
    running: crate::model::task::Running,
}

/// A process table lookup: the image, or why it is unknown.
type ImageLookup = Result<Arc<Image>, &'static str>;

fn same_image(a: Option<&Arc<Image>>, b: Option<&Arc<Image>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Enricher {
    /// `exec_traced_since`: boot-clock ns since when every execve is traced (None: not traced).
    pub fn new(exec_traced_since: Option<u64>) -> Self {
        Self {
            processes: ProcessTable::new(exec_traced_since),
            users: Users::new(),
            cgroups: CgroupPaths::new(),
            containers: Containers::new(HostFs::host()),
            contexts: FxHashMap::default(),
            ancestry: false,
            identifier: identify::Identifier::default(),
        }
    }

    /// Executables are examined from now on: compared with the host's tools in `catalog`,
    /// an interpreter's script found by `script_of` (without: nothing is examined).
    pub fn examine_with(&mut self, catalog: identify::Catalog, script_of: identify::ScriptOf) {
        self.identifier = identify::Identifier::new(catalog, script_of);
    }

    /// What process `pid`, running `process` (whose executable had inode `exe_ino` at the
    /// event, when the kernel read it), has as its executable and script: examined once per
    /// process state, for the rules.
    pub fn identity<'p>(
        &mut self,
        pid: u32,
        process: &'p Process,
        exe_ino: Option<u64>,
    ) -> &'p Identity {
        process.identity(|| self.identifier.examine(pid, process, exe_ino))
    }

    /// Whether records carry their process's ancestry (`--ancestry`).
    pub fn set_ancestry(&mut self, on: bool) {
        self.ancestry = on;
        self.contexts.clear();
    }

    /// Adds the processes running now (/proc) that the process table does not know yet.
    pub fn seed_from_proc(&mut self) {
        self.processes.seed_from_proc();
    }

    /// Exec records were lost at `now_ns`: fork inheritance is no longer trusted before it.
    pub fn exec_records_lost(&mut self, now_ns: u64) {
        self.processes.exec_records_lost(now_ns);
    }

    /// Processes in the process table.
    pub fn known_processes(&self) -> usize {
        self.processes.len()
    }

    /// Periodic upkeep: forgets exited processes and containers not seen for a while.
    pub fn maintain(&mut self) {
        self.processes.maintain();
        self.containers.maintain();
    }

    pub fn on_exec(&mut self, e: &ExecRecord) {
        self.processes.on_exec(e);
    }

    pub fn on_exit(&mut self, t: &Task) {
        self.processes.on_exit(t);
        self.contexts.remove(&t.pid);
    }

    /// The first owner of a listener found by the inventory, with its context (or the gap that
    /// says why there is none).
    pub fn listener_owner(&mut self, l: &Listener, clock: &Clock) -> ListenerOwner {
        // A listener's namespace is its socket's (the owner may have moved on to another).
        let netns = (l.socket.netns != 0).then_some(l.socket.netns);
        let task = l
            .owners
            .first()
            .and_then(|&pid| procfs::task(pid, clock.boot_now()))
            .map(|t| Task {
                netns: netns.or(t.netns),
                ..t
            });
        let process = match &task {
            Some(task) => self.context(task, clock),
            None => {
                let mut c = ProcessContext {
                    netns,
                    ..ProcessContext::default()
                };
                c.gap(
                    "pid",
                    if crate::host::caps::lacks("CAP_SYS_PTRACE") {
                        "no readable /proc/PID/fd holds this socket: portwatch lacks CAP_SYS_PTRACE, so other users' descriptors cannot be read (or it is kernel-owned, or its owner just exited)"
                    } else {
                        "no readable /proc/PID/fd holds this socket (kernel-owned, its owner just exited, or the owner's descriptors are hidden from portwatch)"
                    },
                );
                Process::new(c)
            }
        };
        ListenerOwner { task, process }
    }

    /// The context of a process the kernel names only by pid and start (a flooding one): read
    /// from /proc while it lives, else what the process table kept, else a gap.
    pub fn flooder(&mut self, pid: u32, start_ns: u64, clock: &Clock) -> Arc<Process> {
        let now = clock.boot_now();
        let tick = procfs::ns_per_tick();
        // /proc gives the start in clock ticks: the same process is within one tick.
        if let Some(task) = procfs::task(pid, now)
            .filter(|t| t.start_ns.is_some_and(|s| s.abs_diff(start_ns) <= tick))
        {
            let task = Task {
                start_ns: Some(start_ns),
                ..task
            };
            return self.context(&task, clock);
        }
        let mut c = ProcessContext {
            start_time: Some(clock.timestamp(start_ns)),
            ..ProcessContext::default()
        };
        match self.processes.image(pid, start_ns, None, now) {
            Ok(image) => {
                c.exe.clone_from(&image.exe);
                c.args.clone_from(&image.args);
            }
            Err(why) => c.gap("exe", why),
        }
        c.gap("ppid", "the process exited before its flood was reported");
        Process::new(c)
    }

    /// The context of the task in `t`: from the cache when the process, its parent and their
    /// programs are as they were last time, else built (and cached).
    pub fn context(&mut self, t: &Task, clock: &Clock) -> Arc<Process> {
        let (Some(start_ns), Some(ppid), Some(parent_start_ns)) =
            (t.start_ns, t.ppid, t.parent_start_ns)
        else {
            return Process::new(self.build(t, None, clock));
        };
        let image = self
            .processes
            .image(t.pid, start_ns, Some((ppid, parent_start_ns)), t.boot_ns);
        let parent_image =
            (ppid != 0).then(|| self.processes.image(ppid, parent_start_ns, None, t.boot_ns));
        let known_parent = parent_image.as_ref().and_then(|p| p.as_ref().ok());
        let task = TaskState {
            start_ns,
            ppid,
            parent_start_ns,
            uid: t.uid,
            gid: t.gid,
            loginuid: t.loginuid,
            cgroup_id: t.cgroup_id,
            netns: t.netns,
            running: t.running,
        };
        if let Some(c) = self.contexts.get(&t.pid) {
            // A record that read nothing of what runs (a close) takes the context as it was.
            let unread = t.running == crate::model::task::Running::default();
            let same_task = c.task == task
                || unread
                    && TaskState {
                        running: c.task.running,
                        ..task
                    } == c.task;
            if same_task
                && same_image(c.image.as_ref(), image.as_ref().ok())
                && same_image(c.parent_image.as_ref(), known_parent)
            {
                return Arc::clone(&c.process);
            }
        }
        let process = Process::new(self.build(t, Some((&image, parent_image.as_ref())), clock));
        let parent_image = known_parent.cloned();
        if self.contexts.len() >= CONTEXTS_KEPT {
            self.contexts.clear();
        }
        self.contexts.insert(
            t.pid,
            Cached {
                task,
                image: image.ok(),
                parent_image,
                process: Arc::clone(&process),
            },
        );
        process
    }

    /// Builds a context. `images`: the process's image (or why it is unknown) and its parent's,
    /// when the kernel could read the task.
    fn build(
        &mut self,
        t: &Task,
        images: Option<(&ImageLookup, Option<&ImageLookup>)>,
        clock: &Clock,
    ) -> ProcessContext {
        let mut c = ProcessContext {
            cgroup_id: t.cgroup_id,
            netns: t.netns,
            ..ProcessContext::default()
        };
        match t.loginuid {
            Some(LOGINUID_UNSET) => {} // no login session: nothing to show
            Some(uid) => c.loginuid = Some(uid),
            None if t.start_ns.is_some() => c.gap("loginuid", "the kernel has no audit support"),
            None => {}
        }
        match self.users.user(t.uid) {
            Some(name) => c.user = Some(name.to_owned()),
            None => c.gap("user", format!("uid {} is not in /etc/passwd", t.uid)),
        }
        match self.users.group(t.gid) {
            Some(name) => c.group = Some(name.to_owned()),
            None => c.gap("group", format!("gid {} is not in /etc/group", t.gid)),
        }

        let mut image = None;
        match (images, t.start_ns, t.ppid, t.parent_start_ns) {
            (Some((own, parent)), Some(start), Some(ppid), Some(pstart)) => {
                c.start_time = Some(clock.timestamp(start));
                c.ppid = Some(ppid);
                match own {
                    Ok(i) => image = Some(i),
                    Err(why) => {
                        c.gap("exe", *why);
                        c.gap("args", *why);
                    }
                }
                if let Some(parent) = parent {
                    c.parent = Some(parent_record(ppid, pstart, parent, clock));
                }
            }
            _ => {
                let why = "the kernel could not read the task";
                for field in ["ppid", "start_time", "exe", "args", "parent"] {
                    c.gap(field, why);
                }
            }
        }
        if let Some(image) = image {
            running::apply(&mut c, t, image);
        }
        self.workload(&mut c, image.map(|i| &**i));
        if let Some(start) = t.start_ns {
            c.lineage = self
                .processes
                .ancestry(t.pid, start)
                .into_iter()
                .map(|a| Ancestor {
                    pid: a.pid,
                    start_time: clock.timestamp(a.start_ns),
                    comm: Arc::clone(&a.image.comm),
                    exe: a.image.exe.clone(),
                    args: a.image.args.clone(),
                })
                .collect();
            if self.ancestry {
                c.ancestry = Some(Arc::clone(&c.lineage));
            }
        }
        c
    }

    /// cgroup path and the container or unit it names. The kernel's cgroup v2 id is exact at the
    /// event; on v1 and hybrid hosts (v2 root for everything) /proc/PID/cgroup says more.
    fn workload(&mut self, c: &mut ProcessContext, image: Option<&Image>) {
        let v2 = self.cgroups.path(c.cgroup_id);
        let path = match (v2, image.and_then(|i| i.cgroup.clone())) {
            (Some(p), _) if p != "/" => Some(p),
            (_, Some(p)) => Some(p),
            (v2, None) => v2,
        };
        match &path {
            // The runtime names the container the path points at (or says there is none).
            Some(p) => match container::classify(p).and_then(|f| self.containers.resolve(&f)) {
                Some(r) => {
                    for (field, why) in r.gaps.iter() {
                        c.gap(field, why.clone());
                    }
                    c.container = Some(r.container);
                }
                None => c.unit = container::unit(p),
            },
            None => c.gap(
                "cgroup",
                format!(
                    "cgroup id {} is no longer in the cgroup hierarchy",
                    c.cgroup_id
                ),
            ),
        }
        c.cgroup = path;
    }
}

fn parent_record(ppid: u32, pstart: u64, image: &ImageLookup, clock: &Clock) -> Parent {
    let mut p = Parent {
        pid: ppid,
        start_time: Some(clock.timestamp(pstart)),
        ..Parent::default()
    };
    match image {
        Ok(image) => {
            p.comm = Some(Arc::clone(&image.comm));
            p.exe.clone_from(&image.exe);
        }
        Err(why) => p.gap = Some(why),
    }
    p
}

/// A process's effective capabilities when a detection needs them: it took a privileged port
/// without root (`model::net::needs_privilege`). Read now, while the process very likely still
/// runs: the record itself has no capabilities.
pub fn capabilities(pid: u32, uid: Option<u32>, port: Option<u16>) -> Option<u64> {
    let (Some(uid), Some(port)) = (uid, port) else {
        return None;
    };
    if !crate::model::net::needs_privilege(port, uid) {
        return None;
    }
    crate::host::caps::of(pid)
}

/// `capabilities` of the owner of a listener found by listing: the socket's uid stands for an
/// owner that is not known (pid 0: nothing to read).
pub fn listed_capabilities(l: &Listener, owner: &ListenerOwner) -> Option<u64> {
    let task = owner.task.as_ref();
    let uid = task.map_or(l.socket.uid, |t| t.uid);
    let pid = task.map_or(0, |t| t.pid);
    capabilities(pid, Some(uid), Some(l.socket.local.port()))
}

#[cfg(test)]
mod tests;
