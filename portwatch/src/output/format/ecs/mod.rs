//! Elastic Common Schema 9.x (`--format ecs`): one ECS document per line, nested objects as ECS
//! shows them. Socket events are `event.kind: event` (`alert` when the baseline refuses them),
//! snapshot listeners `state`, loss counts `metric`; what ECS has no field for is under
//! `portwatch.*` with its native name. The README lists every field. Written member by member
//! like the native records, with the host and each process context formatted once.
use super::{
    Encoder,
    json::{self, Members},
    siem::{self, Endpoint, Task, id_string},
};
use crate::{
    host::Host,
    model::{
        net::{Family, protocol_name},
        process::{Container, Encoded, ProcessContext},
    },
    output::record::{Record, SocketRecord},
};

mod event;

use event::event;

pub const ECS_VERSION: &str = "9.4.0";

pub struct Ecs {
    /// `ecs`, `agent` and `host`, the same in every document, as members.
    constant: Box<str>,
    boot_id: Option<String>,
}

/// The pieces of a process context this format caches (`Process::encoded`).
const PROCESS: usize = 0; // members of `process`
const TOP: usize = 1; // top-level members (`container`, `orchestrator`)
const EXTRAS: usize = 2; // members of `portwatch`

impl Ecs {
    pub fn new(host: &Host) -> Self {
        let constant = json::members(|m| {
            m.object("ecs", |e| e.plain("version", ECS_VERSION));
            m.object("agent", |a| {
                a.plain("type", "portwatch");
                a.plain("version", env!("CARGO_PKG_VERSION"));
            });
            m.object("host", |h| {
                if let Some(name) = &host.hostname {
                    h.str("name", name);
                    h.str("hostname", name);
                }
                if let Some(id) = &host.machine_id {
                    h.str("id", id);
                }
                if let Some(id) = &host.boot_id {
                    h.object("boot", |b| b.str("id", id));
                }
                h.str("architecture", host.architecture);
                h.object("os", |o| {
                    o.plain("type", "linux");
                    for (key, value) in [
                        ("family", &host.os.family),
                        ("platform", &host.os.id),
                        ("name", &host.os.name),
                        ("version", &host.os.version),
                        ("kernel", &host.kernel),
                    ] {
                        if let Some(v) = value {
                            o.str(key, v);
                        }
                    }
                });
            });
        });
        Self {
            constant,
            boot_id: host.boot_id.clone(),
        }
    }

    /// The context's pieces, once per process state.
    fn context(&self, p: &ProcessContext) -> Encoded {
        let process = json::members(|m| {
            if let Some(exe) = &p.exe {
                m.str("executable", exe);
            }
            if let Some(args) = &p.args {
                m.strs("args", args.iter().map(String::as_str));
                m.int("args_count", args.len());
            }
            if let Some(cmd) = siem::command_line(p) {
                m.str("command_line", &cmd);
            }
            if let Some(start) = &p.start_time {
                m.plain("start", *start);
            }
            if let Some(parent) = &p.parent {
                m.object("parent", |pp| {
                    pp.int("pid", parent.pid);
                    if let Some(comm) = &parent.comm {
                        pp.str("name", comm);
                    }
                    if let Some(exe) = &parent.exe {
                        pp.str("executable", exe);
                    }
                    if let Some(start) = &parent.start_time {
                        pp.plain("start", *start);
                    }
                    let boot = self.boot_id.as_deref();
                    if let Some(id) = siem::entity_id(boot, parent.pid, parent.start_time) {
                        pp.str("entity_id", &id);
                    }
                });
            }
        });
        let top = json::members(|m| {
            if let Some(c) = &p.container {
                container(m, c);
            }
        });
        // ECS has no field for ancestors beyond the parent: they go under portwatch.*.
        let extras = json::members(|m| {
            m.append(&siem::process_extras(p));
            if let Some(id) = p.container.as_ref().and_then(|c| c.image_id.as_deref()) {
                // An image id is no registry digest (`container.image.hash.all`).
                m.str("container_image_id", id);
            }
            if let Some(a) = &p.ancestry {
                m.value("ancestry", a);
            }
        });
        Box::new([process, top, extras])
    }

    /// `process`, `user`, `group` and `container` of a task and its context; returns the
    /// context's `portwatch.*` members.
    fn who<'p>(
        &self,
        m: &mut Members,
        task: &Task,
        p: &'p ProcessContext,
        pieces: &'p [Box<str>],
    ) -> &'p str {
        m.object("process", |o| {
            o.int("pid", task.pid);
            if let Some(tid) = task.tid {
                o.object("thread", |t| t.int("id", tid));
            }
            if let Some(comm) = &task.comm {
                o.str("name", comm);
            }
            let boot = self.boot_id.as_deref();
            if let Some(id) = siem::entity_id(boot, task.pid, p.start_time) {
                o.str("entity_id", &id);
            }
            if let Some(uid) = task.uid {
                o.object("user", |u| user(u, uid, p.user.as_deref()));
            }
            o.append(&pieces[PROCESS]);
        });
        if let Some(uid) = task.uid {
            m.object("user", |u| user(u, uid, p.user.as_deref()));
        }
        if let Some(gid) = task.gid {
            m.object("group", |g| user(g, gid, p.group.as_deref()));
        }
        m.append(&pieces[TOP]);
        &pieces[EXTRAS]
    }
}

/// `container.*`, and `orchestrator.*` for a Kubernetes pod's container.
fn container(m: &mut Members, c: &Container) {
    m.object("container", |o| {
        o.str("id", &c.id);
        if let Some(name) = &c.name {
            o.str("name", name);
        }
        if let Some(image) = &c.image {
            o.object("image", |i| i.str("name", image));
        }
        o.plain("runtime", c.runtime);
    });
    if let Some(pod) = &c.pod {
        m.object("orchestrator", |o| {
            o.plain("type", "kubernetes");
            if let Some(ns) = &pod.namespace {
                o.str("namespace", ns);
            }
            o.object("resource", |r| {
                r.plain("type", "pod");
                if let Some(name) = &pod.name {
                    r.str("name", name);
                }
                if let Some(uid) = &pod.uid {
                    r.str("id", uid);
                }
            });
        });
    }
}

/// `id` (a string) and `name` of a user or group.
fn user(m: &mut Members, id: u32, name: Option<&str>) {
    id_string(m, "id", id);
    if let Some(name) = name {
        m.str("name", name);
    }
}

fn endpoint(m: &mut Members, key: &'static str, e: Endpoint) {
    m.object(key, |o| {
        o.ip("ip", e.ip);
        o.int("port", e.port);
        o.ip("address", e.ip);
    });
}

fn network(m: &mut Members, protocol: Option<u16>, family: Option<Family>, direction: &str) {
    m.object("network", |n| {
        if let Some(p) = protocol {
            n.str("transport", &protocol_name(p));
            n.plain("iana_number", itoa::Buffer::new().format(p));
        }
        if let Some(f) = family {
            n.plain("type", f.name());
        }
        n.plain("direction", direction);
    });
}

impl Ecs {
    fn socket(&self, record: &Record, r: &SocketRecord, m: &mut Members) {
        if let (Some(code), Some(name)) = (r.errno_code, &r.errno) {
            m.object("error", |e| {
                e.str("code", name);
                e.str("message", &format!("{name} ({code})"));
            });
        }
        m.str("message", &siem::message(record, r));
        let pieces = r.process.encoded("ecs", |p| self.context(p));
        let task = Task::of_socket(r);
        let extras = task.map_or(&*pieces[EXTRAS], |t| self.who(m, &t, &r.process, &pieces));
        let (local, peer) = (siem::local(r), siem::remote(r));
        // A program started on a socket: whether it was accepted or connected is not known,
        // so its own end is the source and the peer the destination, with no client or server.
        let exec = matches!(record, Record::Exec(_));
        if let Some(local) = local {
            if exec {
                endpoint(m, "source", local);
            } else {
                endpoint(m, "server", local);
                endpoint(m, "destination", local);
            }
        }
        if let Some(peer) = peer {
            if exec {
                endpoint(m, "destination", peer);
            } else {
                endpoint(m, "client", peer);
                endpoint(m, "source", peer);
            }
        }
        m.object("related", |rel| {
            let mut ips: Vec<String> = local
                .iter()
                .chain(&peer)
                .map(|e| e.ip.to_string())
                .collect();
            ips.dedup();
            rel.strs("ip", ips.iter().map(String::as_str));
            if let Some(name) = &r.process.user {
                rel.strs("user", [name.as_str()]);
            }
        });
        let direction = if exec { "unknown" } else { "ingress" };
        network(m, r.protocol, r.family, direction);
        m.object("portwatch", |o| {
            siem::socket_extras(record, r, o);
            o.append(extras);
        });
    }
}

impl Encoder for Ecs {
    fn encode(&self, seq: u64, record: &Record, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"@timestamp\":\"");
        out.extend_from_slice(siem::record_time(record).as_ref());
        out.push(b'"');
        let mut m = Members::new(out);
        let alert = self.body(record, &mut m);
        let found = siem::detections(record);
        if !found.is_empty() {
            m.object("rule", |r| r.plain("name", found[0].name));
        }
        if found.iter().any(|d| d.technique.is_some()) {
            m.object("threat", |t| {
                t.plain("framework", "MITRE ATT&CK");
                t.object("technique", |tech| {
                    tech.strs("id", found.iter().filter_map(|d| d.technique))
                });
            });
        }
        m.object("event", |e| event(e, seq, record, alert));
        m.append(&self.constant);
        out.extend_from_slice(b"}\n");
    }
}

impl Ecs {
    /// Who, where and portwatch's own fields, by record kind; the baseline's alert, if any.
    fn body<'r>(&self, record: &'r Record, m: &mut Members) -> Option<&'r str> {
        match record {
            Record::Bind(r)
            | Record::Listen(r)
            | Record::Accept(r)
            | Record::Close(r)
            | Record::Exec(r) => {
                self.socket(record, r, m);
                r.alert.as_deref()
            }
            Record::Listener(r) | Record::ListenerStats(r) => {
                let pieces = r.process.encoded("ecs", |p| self.context(p));
                let task = Task::of_socket(r);
                let extras =
                    task.map_or(&*pieces[EXTRAS], |t| self.who(m, &t, &r.process, &pieces));
                if let Some(local) = siem::local(r) {
                    endpoint(m, "server", local);
                    endpoint(m, "destination", local);
                }
                network(m, r.protocol, r.family, "ingress");
                m.object("portwatch", |o| {
                    siem::listener_extras(record, r, o);
                    o.append(extras);
                });
                r.alert.as_deref()
            }
            Record::Flood(r) => {
                let pieces = r.process.encoded("ecs", |p| self.context(p));
                let extras = self.who(m, &Task::of_flood(r), &r.process, &pieces);
                m.object("portwatch", |o| {
                    siem::own_extras(record, o);
                    o.append(extras);
                });
                None
            }
            _ => {
                if let Record::Start(r) = record {
                    m.object("process", |p| {
                        p.int("pid", r.pid);
                        p.plain("name", "portwatch");
                    });
                }
                m.object("portwatch", |o| siem::own_extras(record, o));
                None
            }
        }
    }
}
