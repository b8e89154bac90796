//! The process table: which program each process runs, keyed by (pid, start time) so that a
//! reused pid never inherits another process's identity.
//!
//! It learns from the kernel's exec records (exact, even for processes that live a millisecond),
//! is seeded from /proc at start-up for processes already running, and falls back to /proc for
//! anything else. Records arrive in the order the kernel produced them, so when a socket event is
//! enriched, the table holds the image the process ran at that moment.
//!
//! Each entry remembers its parent as it was when the table learnt of it (before any
//! reparenting to init), so the chain of ancestors (`ancestry`) stays exact after they exit.
//!
//! Memory stays bounded by what is live: a process is forgotten a grace period after its exit
//! record (late events such as the close of its listeners, which the kernel reports after the
//! exit, still find it) once no known process names it as parent, and a periodic sweep drops
//! processes whose exit was not seen.
use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;

use crate::{
    enrich::procfs,
    model::{
        task::{ExecRecord, Task},
        text,
    },
};

/// How long an exited process stays known.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// How often processes are checked against /proc for exits that were not seen.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Images kept per process (exec chains), enough for a fork child to find the image its parent
/// ran when it was forked.
const IMAGES_KEPT: usize = 4;
/// Ancestors followed at most (a fork bomb's depth is not worth a record's size).
const ANCESTRY_MAX: usize = 32;

#[derive(Debug)]
struct Entry {
    /// Shared with the records (and `enrich`'s cache, which tells images apart by identity).
    images: VecDeque<Arc<Image>>,
    exited: Option<Instant>,
    /// Boot-clock ns of the start: exact from kernel records, else from /proc's ticks.
    start_ns: u64,
    /// The parent the process had when the table learnt of it.
    parent: Option<Key>,
    /// Entries naming this one as parent: while there are any, it is kept after its exit.
    children: u32,
}

impl Entry {
    fn new(image: Image, start_ns: u64) -> Self {
        Self {
            images: VecDeque::from([Arc::new(image)]),
            exited: None,
            start_ns,
            parent: None,
            children: 0,
        }
    }

    fn push(&mut self, image: Image) {
        if self.images.len() == IMAGES_KEPT {
            self.images.pop_front();
        }
        self.images.push_back(Arc::new(image));
    }

    fn current(&self) -> &Arc<Image> {
        self.images.back().expect("an entry always has an image")
    }

    /// The image the process ran at `at_ns`.
    fn at(&self, at_ns: u64) -> &Arc<Image> {
        self.images
            .iter()
            .rev()
            .find(|i| i.since_ns <= at_ns)
            .unwrap_or_else(|| self.current())
    }
}

/// (pid, start time in clock ticks since boot): the unit of /proc/PID/stat, so entries seeded
/// from /proc and entries from kernel records meet on the same key.
pub type Key = (u32, u64);

pub struct ProcessTable {
    entries: FxHashMap<Key, Entry>,
    ns_per_tick: u64,
    /// Boot-clock ns since when every exec is traced: a process started after it and absent from
    /// the table has not exec'd, so it runs its parent's image.
    exec_traced_since: Option<u64>,
    /// cgroup v1 hierarchies are mounted, so /proc/PID/cgroup is worth reading at exec.
    read_v1_cgroups: bool,
    last_sweep: Instant,
}

impl ProcessTable {
    /// `exec_traced_since`: when the exec hook was attached, if it was.
    pub fn new(exec_traced_since: Option<u64>) -> Self {
        Self {
            entries: FxHashMap::default(),
            ns_per_tick: procfs::ns_per_tick(),
            exec_traced_since,
            read_v1_cgroups: crate::enrich::cgroup::v1_in_use(),
            last_sweep: Instant::now(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn key(&self, pid: u32, start_ns: u64) -> Key {
        (pid, start_ns / self.ns_per_tick)
    }

    /// Adds every process in /proc that the table does not know yet.
    pub fn seed_from_proc(&mut self) {
        let mut seeded = Vec::new();
        for pid in procfs::pids() {
            let Some(stat) = procfs::stat(pid) else {
                continue;
            };
            let key = (pid, stat.start_ticks);
            if self.entries.contains_key(&key) {
                continue;
            }
            if let Some((image, ppid)) = proc_image(pid, stat.start_ticks) {
                let start_ns = stat.start_ticks * self.ns_per_tick;
                self.entries.insert(key, Entry::new(image, start_ns));
                seeded.push((key, ppid));
            }
        }
        // Parents by pid, now that all are in: /proc names a parent by pid only.
        let by_pid: FxHashMap<u32, Key> = self.entries.keys().map(|k| (k.0, *k)).collect();
        for (key, ppid) in seeded {
            if let Some(&parent) = by_pid.get(&ppid) {
                self.link(key, parent);
            }
        }
    }

    /// Records `parent` as `child`'s, unless it already has one.
    fn link(&mut self, child: Key, parent: Key) {
        if child == parent {
            return;
        }
        match self.entries.get_mut(&child) {
            Some(e) if e.parent.is_none() => e.parent = Some(parent),
            _ => return,
        }
        if let Some(p) = self.entries.get_mut(&parent) {
            p.children += 1;
        }
    }

    /// The parent key of a task record's parent, if it names one.
    fn parent_key(&self, parent: Option<(u32, u64)>) -> Option<Key> {
        parent
            .filter(|&(ppid, _)| ppid != 0)
            .map(|(ppid, pstart)| self.key(ppid, pstart))
    }

    /// The ancestors of (pid, start) from its parent up, each with the image it ran when its
    /// child started, as far as the table knows them.
    pub fn ancestry(&self, pid: u32, start_ns: u64) -> Vec<Ancestor> {
        let mut out = Vec::new();
        let Some(mut entry) = self.entries.get(&self.key(pid, start_ns)) else {
            return out;
        };
        let mut child_start = entry.start_ns;
        while let Some(key) = entry.parent {
            let Some(parent) = self.entries.get(&key) else {
                break;
            };
            if out.len() == ANCESTRY_MAX {
                break;
            }
            out.push(Ancestor {
                pid: key.0,
                start_ns: parent.start_ns,
                image: Arc::clone(parent.at(child_start)),
            });
            child_start = parent.start_ns;
            entry = parent;
        }
        out
    }

    pub fn on_exec(&mut self, e: &ExecRecord) {
        let Some(start_ns) = e.task.start_ns else {
            return;
        };
        let key = self.key(e.task.pid, start_ns);
        // /proc is read only for what the record lacks: the absolute path of a relative execve,
        // and the cgroup path where cgroup v1 is in use (the v2 id says nothing there).
        let linked = e.task.running.exe_unlinked == Some(false);
        let (exe, exe_gap) = if let Some(path) = &e.exe_path {
            // The file really running, as the kernel walked it: exact whatever name the exec
            // used (/proc/self/exe, /dev/fd/N, a symlink), inside a container its path there.
            let gap = (e.exe_detached && linked).then_some(
                "the executable is not under the process's root (a detached mount): its path is relative to that mount",
            );
            (Some(text::escape(path).into()), gap)
        } else if e.filename.starts_with(b"/") {
            // Resolved now, not at exec: taken only if it is still the file the kernel saw run.
            let resolved = procfs::resolve_exe(e.task.pid, &e.filename);
            match (e.task.running.exe_ino, procfs::inode_of(&resolved)) {
                (Some(ran), Some(ino)) if ran != ino => (
                    Some(text::escape(&e.filename).into()),
                    Some("the name exec'd leads to another file now: this is the name as given"),
                ),
                _ => (Some(resolved.into()), None),
            }
        } else {
            // execve with a relative path: /proc/PID/exe has the absolute one while it lives.
            match procfs::exe(e.task.pid, key.1) {
                Some(exe) => (Some(exe.into()), None),
                None if e.filename.is_empty() => {
                    (None, Some("the kernel could not read the file name"))
                }
                None => (
                    Some(text::escape(&e.filename).into()),
                    Some(
                        "relative path as given to execve: the process exited before /proc/PID/exe could be read",
                    ),
                ),
            }
        };
        let cgroup = self
            .read_v1_cgroups
            .then(|| procfs::cgroup(e.task.pid, key.1))
            .flatten();
        let image = Image {
            since_ns: e.task.boot_ns,
            exe,
            exe_gap,
            args: Some(text_args(&e.args)),
            args_truncated: e.args_truncated,
            exe_ino: e.task.running.exe_ino,
            exe_deleted: e.task.running.exe_unlinked == Some(true),
            args_print: e.task.running.args,
            comm: e.task.comm.text().into(),
            cgroup,
            source: Source::Exec,
        };
        match self.entries.get_mut(&key) {
            Some(entry) => entry.push(image),
            None => {
                self.entries.insert(key, Entry::new(image, start_ns));
            }
        }
        let parent = e.task.ppid.zip(e.task.parent_start_ns);
        if let Some(parent) = self.parent_key(parent) {
            self.link(key, parent);
        }
    }

    /// Exec records were lost: a process absent from the table may have exec'd unseen, so only
    /// processes started after `now_ns` may inherit their parent's image from now on.
    pub fn exec_records_lost(&mut self, now_ns: u64) {
        if self.exec_traced_since.is_some() {
            self.exec_traced_since = Some(now_ns);
        }
    }

    pub fn on_exit(&mut self, t: &Task) {
        if let Some(start_ns) = t.start_ns {
            let key = self.key(t.pid, start_ns);
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.exited = Some(Instant::now());
            }
        }
    }

    /// The image process (pid, start) ran at `at_ns`; `parent` is its parent's (pid, start ns).
    pub fn image(
        &mut self,
        pid: u32,
        start_ns: u64,
        parent: Option<(u32, u64)>,
        at_ns: u64,
    ) -> Result<Arc<Image>, &'static str> {
        let key = self.key(pid, start_ns);
        if let Some(entry) = self.entries.get_mut(&key) {
            // The kernel's start time is exact; /proc's, which seeded it maybe, is in ticks.
            entry.start_ns = start_ns;
            return Ok(Arc::clone(entry.at(at_ns)));
        }
        // Started while execs were traced and never exec'd: a fork running its parent's image.
        if self.exec_traced_since.is_some_and(|t| start_ns > t) {
            if let Some((ppid, pstart)) = parent {
                let pkey = self.key(ppid, pstart);
                if let Some(parent_entry) = self.entries.get(&pkey) {
                    let image = Image {
                        since_ns: start_ns,
                        source: Source::Inherited,
                        ..Image::clone(parent_entry.at(start_ns))
                    };
                    let entry = Entry::new(image, start_ns);
                    let image = Arc::clone(entry.current());
                    self.entries.insert(key, entry);
                    self.link(key, pkey);
                    return Ok(image);
                }
            }
        }
        match proc_image(pid, key.1) {
            Some((image, _)) => {
                let entry = Entry::new(image, start_ns);
                let image = Arc::clone(entry.current());
                self.entries.insert(key, entry);
                if let Some(pkey) = self.parent_key(parent) {
                    self.link(key, pkey);
                }
                Ok(image)
            }
            None => Err(
                "the process exited before portwatch could read it from /proc, and no exec of it was traced",
            ),
        }
    }

    /// Forgets exited processes after the grace period; now and then, notices exits that were
    /// not traced.
    pub fn maintain(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            for ((pid, start), entry) in &mut self.entries {
                if entry.exited.is_none()
                    && procfs::stat(*pid).is_none_or(|s| s.start_ticks != *start)
                {
                    entry.exited = Some(now);
                }
            }
        }
        let mut orphaned = Vec::new();
        self.entries.retain(|_, e| {
            let keep =
                e.children > 0 || e.exited.is_none_or(|t| now.duration_since(t) < EXIT_GRACE);
            if !keep {
                orphaned.extend(e.parent);
            }
            keep
        });
        // Their parents lose a child each (and may go at the next call).
        for parent in orphaned {
            if let Some(p) = self.entries.get_mut(&parent) {
                // Saturating: a parent the table learnt of after its child was not counted.
                p.children = p.children.saturating_sub(1);
            }
        }
    }
}

mod image;
#[cfg(test)]
mod tests;

use image::proc_image;
pub(crate) use image::text_args;
pub use image::{Ancestor, Image, Source};
