//! `actor` and `process`: the task and its cached process context (program, parent, container,
//! ancestry) as OCSF process objects.
use super::{
    Ocsf,
    siem::{self, Task, id_string},
};
use crate::{
    model::process::{Ancestor, Container, Encoded, ProcessContext},
    output::format::json::{self, Members},
};

/// The pieces of a process context this format caches (`Process::encoded`).
const PROCESS: usize = 0; // members of `actor.process`
pub(super) const EXTRAS: usize = 1; // members of `unmapped.portwatch`

impl Ocsf {
    /// The context's pieces, once per process state.
    pub(super) fn context(&self, p: &ProcessContext) -> Encoded {
        let boot = self.boot_id.as_deref();
        let process = json::members(|m| {
            if let Some(cmd) = siem::command_line(p) {
                m.str("cmd_line", &cmd);
            }
            if let Some(exe) = &p.exe {
                file(m, exe);
            }
            if let Some(ms) = p.start_time.map(|t| t.epoch_ms()) {
                m.int("created_time", ms);
            }
            if let Some(parent) = &p.parent {
                m.object("parent_process", |pp| {
                    pp.int("pid", parent.pid);
                    if let Some(comm) = &parent.comm {
                        pp.str("name", comm);
                    }
                    if let Some(exe) = &parent.exe {
                        file(pp, exe);
                    }
                    if let Some(ms) = parent.start_time.map(|t| t.epoch_ms()) {
                        pp.int("created_time", ms);
                    }
                    if let Some(uid) = siem::entity_id(boot, parent.pid, parent.start_time) {
                        pp.str("uid", &uid);
                    }
                });
            }
            if let Some(c) = &p.container {
                container(m, c);
            }
            if let Some(ancestry) = &p.ancestry {
                m.value("ancestry", &ancestry_entities(ancestry, boot));
            }
        });
        let extras = json::members(|m| {
            m.append(&siem::process_extras(p));
            if let Some(c) = &p.container {
                container_extras(m, c);
            }
        });
        Box::new([process, extras])
    }

    /// `actor`: the process (with its parent, user and container) and the user; returns the
    /// context's `unmapped.portwatch` members.
    pub(super) fn actor<'p>(
        &self,
        m: &mut Members,
        task: &Task,
        p: &'p ProcessContext,
        pieces: &'p [Box<str>],
    ) -> &'p str {
        m.object("actor", |a| {
            self.process(a, task, p, pieces);
            if let Some(uid) = task.uid {
                a.object("user", |u| user(u, uid, p.user.as_deref()));
            }
        });
        &pieces[EXTRAS]
    }

    /// `process`: the task, with its context's process members.
    pub(super) fn process(
        &self,
        m: &mut Members,
        task: &Task,
        p: &ProcessContext,
        pieces: &[Box<str>],
    ) {
        m.object("process", |o| {
            o.int("pid", task.pid);
            if let Some(tid) = task.tid {
                o.int("tid", tid);
            }
            if let Some(comm) = &task.comm {
                o.str("name", comm);
            }
            let boot = self.boot_id.as_deref();
            if let Some(uid) = siem::entity_id(boot, task.pid, p.start_time) {
                o.str("uid", &uid);
            }
            if let Some(uid) = task.uid {
                o.object("user", |u| user(u, uid, p.user.as_deref()));
            }
            o.append(&pieces[PROCESS]);
        });
    }
}

/// `ancestry`: Process Entity objects, the parent first, as OCSF orders them.
fn ancestry_entities(ancestry: &[Ancestor], boot: Option<&str>) -> Vec<serde_json::Value> {
    ancestry
        .iter()
        .map(|a| {
            let mut e = serde_json::json!({"pid": a.pid, "name": &*a.comm});
            if let Some(exe) = &a.exe {
                e["path"] = exe.as_ref().into();
            }
            if let Some(args) = &a.args {
                e["cmd_line"] = args.join(" ").into();
            }
            e["created_time"] = a.start_time.epoch_ms().into();
            if let Some(uid) = siem::entity_id(boot, a.pid, Some(a.start_time)) {
                e["uid"] = uid.into();
            }
            e
        })
        .collect()
}

/// `container` (container profile). Its `image` needs the image's id (`uid` is required);
/// `pod_uuid` takes a UUID.
fn container(m: &mut Members, c: &Container) {
    m.object("container", |o| {
        o.str("uid", &c.id);
        if let Some(name) = &c.name {
            o.str("name", name);
        }
        o.plain("runtime", c.runtime);
        if let Some(id) = &c.image_id {
            o.object("image", |i| {
                i.str("uid", id);
                if let Some(image) = &c.image {
                    i.str("name", image);
                }
            });
        }
        if let Some(pod) = &c.pod {
            o.plain("orchestrator", "kubernetes");
            if let Some(uid) = pod.uid.as_deref().filter(|u| is_uuid(u)) {
                o.str("pod_uuid", uid);
            }
        }
    });
}

/// What `container` has no attribute for, under `unmapped.portwatch`.
fn container_extras(m: &mut Members, c: &Container) {
    if let (None, Some(image)) = (&c.image_id, &c.image) {
        m.str("container_image", image);
    }
    if let Some(pod) = &c.pod {
        if let Some(name) = &pod.name {
            m.str("pod_name", name);
        }
        if let Some(ns) = &pod.namespace {
            m.str("pod_namespace", ns);
        }
        if let Some(uid) = pod.uid.as_deref().filter(|u| !is_uuid(u)) {
            m.str("pod_uid", uid);
        }
    }
}

/// 8-4-4-4-12 hex digits, OCSF's `uuid_t`.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn user(m: &mut Members, uid: u32, name: Option<&str>) {
    id_string(m, "uid", uid);
    if let Some(name) = name {
        m.str("name", name);
    }
}

fn file(m: &mut Members, path: &str) {
    m.object("file", |f| {
        f.str("name", siem::file_name(path));
        f.str("path", path);
        f.int("type_id", 1);
        f.plain("type", "Regular File");
    });
}
