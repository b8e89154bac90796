//! Who did it: turns the kernel's task context into the process, parent, user and workload
//! fields of a record, saying for each field it cannot fill why not.
use std::sync::Arc;

use crate::{
    cgroup::{self, CgroupPaths, Workload},
    clock::{self, Clock},
    decode::{ExecRecord, Task},
    inventory::Listener,
    procfs,
    proctable::{Image, ProcessTable},
    record::{ListenerRecord, ParentRecord, ProcessContext, family},
    users::Users,
};

/// `loginuid` of a task that never logged in (AUDIT_UID_UNSET).
const LOGINUID_UNSET: u32 = u32::MAX;

pub struct Enricher {
    pub processes: ProcessTable,
    users: Users,
    cgroups: CgroupPaths,
}

impl Enricher {
    /// `exec_traced_since`: boot-clock ns since when every execve is traced (None: not traced).
    pub fn new(exec_traced_since: Option<u64>) -> Self {
        Self {
            processes: ProcessTable::new(exec_traced_since),
            users: Users::new(),
            cgroups: CgroupPaths::new(),
        }
    }

    pub fn on_exec(&mut self, e: &ExecRecord) {
        self.processes.on_exec(e);
    }

    pub fn on_exit(&mut self, t: &Task) {
        self.processes.on_exit(t);
    }

    /// A record for a listener found by the inventory, with its first owner's context.
    pub fn listener(&mut self, l: &Listener, clock: &Clock) -> ListenerRecord {
        let now = clock::boottime_ns();
        let s = &l.socket;
        let owner = l.owners.first().and_then(|&pid| procfs::task(pid, now));
        let mut r = ListenerRecord {
            time: clock.format(now),
            protocol: s.proto.name(),
            family: family(&s.local),
            address: s.local.ip().to_string(),
            port: s.local.port(),
            scope: l.scope,
            v6only: s.v6only,
            inode: s.inode,
            shared: l.shared,
            owners: l.owners.clone(),
            alert: None,
            pid: None,
            tid: None,
            uid: None,
            gid: None,
            comm: None,
            process: None,
        };
        match owner {
            Some(task) => {
                r.pid = Some(task.pid);
                r.tid = Some(task.tid);
                r.uid = Some(task.uid);
                r.gid = Some(task.gid);
                r.comm = Some(String::from_utf8_lossy(&task.comm).into_owned());
                r.process = Some(self.context(&task, clock));
            }
            None => {
                let mut c = ProcessContext::default();
                c.gap(
                    "pid",
                    "no readable /proc/PID/fd holds this socket (kernel-owned, its owner just exited, or the owner's descriptors are hidden from portwatch)",
                );
                r.process = Some(c);
            }
        }
        r
    }

    pub fn context(&mut self, t: &Task, clock: &Clock) -> ProcessContext {
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
        match (t.start_ns, t.ppid, t.parent_start_ns) {
            (Some(start), Some(ppid), Some(pstart)) => {
                c.start_time = Some(clock.format(start));
                c.ppid = Some(ppid);
                match self
                    .processes
                    .image(t.pid, start, Some((ppid, pstart)), t.boot_ns)
                {
                    Ok(i) => image = Some(i),
                    Err(why) => {
                        c.gap("exe", why);
                        c.gap("args", why);
                    }
                }
                if ppid != 0 {
                    c.parent = Some(self.parent(ppid, pstart, t.boot_ns, clock));
                }
            }
            _ => {
                let why = "the kernel could not read the task";
                for field in ["ppid", "start_time", "exe", "args", "parent"] {
                    c.gap(field, why);
                }
            }
        }
        if let Some(image) = &image {
            c.exe.clone_from(&image.exe);
            if let Some(why) = image.exe_gap {
                c.gap("exe", why);
            }
            match &image.args {
                Some(args) => c.args = Some(Arc::clone(args)),
                None => c.gap("args", "/proc/PID/cmdline was unreadable"),
            }
            c.args_truncated = image.args_truncated;
        }
        self.workload(&mut c, image.as_ref());
        c
    }

    fn parent(&mut self, ppid: u32, pstart: u64, at_ns: u64, clock: &Clock) -> ParentRecord {
        let mut p = ParentRecord {
            pid: ppid,
            start_time: Some(clock.format(pstart)),
            ..ParentRecord::default()
        };
        match self.processes.image(ppid, pstart, None, at_ns) {
            Ok(image) => {
                p.comm = Some(image.comm);
                p.exe = image.exe;
            }
            Err(why) => p.gap = Some(why),
        }
        p
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
            Some(p) => match cgroup::classify(p) {
                Some(Workload::Container(ct)) => c.container = Some(ct),
                Some(Workload::Unit(u)) => c.unit = Some(u),
                None => {}
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
