//! OCSF 1.8.0 (`--format ocsf`): socket events and snapshot listeners as Network Activity
//! (4001: bind 99 Other "Bind", listen and listener 7 Listen, accept 1 Open, close 2 Close),
//! a program started on a socket as Process Activity (1007: 1 Launch), portwatch's own records
//! as Event Log Activity (1008: start 6 Start, stop 7 Stop, loss and the snapshot's end 99
//! Other). The `host` profile always (`actor`, `device`), `container` when the record names
//! one; what OCSF has no attribute for is under `unmapped.portwatch` with its native name. The
//! README lists every attribute. Written member by member, with the device and each process
//! context (`actor`) formatted once.
use super::{
    Encoder,
    json::{self, Members},
    siem::{self, Endpoint, Task},
};
use crate::{
    host::Host,
    model::net::{Family, protocol_name},
    model::verdict::Level,
    output::record::{Record, SocketRecord},
};

mod actor;

use actor::EXTRAS;

pub const OCSF_VERSION: &str = "1.8.0";

/// A class: its uid, caption, and its category's uid and caption.
struct Class {
    uid: u32,
    name: &'static str,
    category_uid: u32,
    category_name: &'static str,
}

const NETWORK_ACTIVITY: Class = Class {
    uid: 4001,
    name: "Network Activity",
    category_uid: 4,
    category_name: "Network Activity",
};

const PROCESS_ACTIVITY: Class = Class {
    uid: 1007,
    name: "Process Activity",
    category_uid: 1,
    category_name: "System Activity",
};

const EVENT_LOG_ACTIVITY: Class = Class {
    uid: 1008,
    name: "Event Log Activity",
    category_uid: 1,
    category_name: "System Activity",
};

/// An activity: its id, the schema's caption (which `type_name` repeats) and the name written
/// in `activity_name` (portwatch's own for 99 Other).
struct Activity(u32, &'static str, &'static str);

const fn activity(record: &Record) -> (&'static Class, Activity) {
    match record {
        Record::Bind(_) => (&NETWORK_ACTIVITY, Activity(99, "Other", "Bind")),
        Record::Listen(_) | Record::Listener(_) => {
            (&NETWORK_ACTIVITY, Activity(7, "Listen", "Listen"))
        }
        Record::Accept(_) => (&NETWORK_ACTIVITY, Activity(1, "Open", "Open")),
        Record::ListenerStats(_) => (&NETWORK_ACTIVITY, Activity(6, "Traffic", "Traffic")),
        Record::Close(_) => (&NETWORK_ACTIVITY, Activity(2, "Close", "Close")),
        Record::Exec(_) => (&PROCESS_ACTIVITY, Activity(1, "Launch", "Launch")),
        Record::Start(_) => (&EVENT_LOG_ACTIVITY, Activity(6, "Start", "Start")),
        Record::Stop(_) => (&EVENT_LOG_ACTIVITY, Activity(7, "Stop", "Stop")),
        Record::Loss(_) => (&EVENT_LOG_ACTIVITY, Activity(99, "Other", "Events Lost")),
        Record::SnapshotComplete(_) => (
            &EVENT_LOG_ACTIVITY,
            Activity(99, "Other", "Snapshot Complete"),
        ),
        Record::Flood(_) => (&EVENT_LOG_ACTIVITY, Activity(99, "Other", "Listener Flood")),
    }
}

/// `severity_id` and its caption, from the record's level: a detection's own severity
/// (Medium, High, Critical); Medium for what a reader must look at otherwise (a baseline alert,
/// lost events); else Informational.
fn severity(record: &Record) -> (u32, &'static str) {
    match record.level() {
        Level::Info => (1, "Informational"),
        Level::Notable | Level::Medium => (3, "Medium"),
        Level::High => (4, "High"),
        Level::Critical => (5, "Critical"),
    }
}

pub struct Ocsf {
    /// `device`, the same in every event, as a member.
    device: Box<str>,
    boot_id: Option<String>,
}

impl Ocsf {
    pub fn new(host: &Host) -> Self {
        let device = json::members(|m| {
            m.object("device", |d| {
                d.int("type_id", 0);
                d.plain("type", "Unknown");
                if let Some(h) = &host.hostname {
                    d.str("hostname", h);
                    d.str("name", h);
                }
                if let Some(id) = &host.machine_id {
                    d.str("uid", id);
                }
                if let Some(id) = &host.boot_id {
                    d.str("boot_uid", id);
                }
                d.object("os", |o| {
                    o.str("name", host.os.name.as_deref().unwrap_or("Linux"));
                    o.int("type_id", 200);
                    o.plain("type", "Linux");
                    if let Some(v) = &host.os.version {
                        o.str("version", v);
                    }
                    if let Some(k) = &host.kernel {
                        o.str("kernel_release", k);
                    }
                });
            });
        });
        Self {
            device,
            boot_id: host.boot_id.clone(),
        }
    }
}

fn endpoint(m: &mut Members, key: &'static str, e: Endpoint) {
    m.object(key, |o| {
        o.ip("ip", e.ip);
        o.int("port", e.port);
    });
}

/// `connection_info`: the transport, the IP version, and the direction (a listener serves
/// inbound connections).
fn connection(m: &mut Members, protocol: Option<u16>, family: Option<Family>) {
    m.object("connection_info", |c| {
        if let Some(p) = protocol {
            c.str("protocol_name", &protocol_name(p));
            c.int("protocol_num", p);
        }
        if let Some(f) = family {
            c.int("protocol_ver_id", f.version());
            c.plain(
                "protocol_ver",
                match f {
                    Family::Ipv4 => "Internet Protocol version 4 (IPv4)",
                    Family::Ipv6 => "Internet Protocol version 6 (IPv6)",
                },
            );
        }
        c.int("direction_id", 1);
        c.plain("direction", "Inbound");
    });
}

fn status(m: &mut Members, ok: bool) {
    m.int("status_id", if ok { 1 } else { 2 });
    m.plain("status", if ok { "Success" } else { "Failure" });
}

impl Ocsf {
    fn socket(&self, record: &Record, r: &SocketRecord, m: &mut Members) {
        m.str("message", &siem::message(record, r));
        let pieces = r.process.encoded("ocsf", |p| self.context(p));
        let task = Task::of_socket(r);
        let extras = task
            .as_ref()
            .map_or(&*pieces[EXTRAS], |t| self.actor(m, t, &r.process, &pieces));
        if let Record::Exec(_) = record {
            // Process Activity has no endpoints: they stay under unmapped.portwatch, by their
            // native names. execve replaces the image in place: actor and process are one.
            if let Some(t) = &task {
                self.process(m, t, &r.process, &pieces);
            }
            m.int("launch_type_id", 3);
            m.plain("launch_type", "Exec");
            status(m, true);
            m.object("unmapped", |u| {
                u.object("portwatch", |o| {
                    o.plain("record", record.event());
                    if let Some(p) = r.protocol {
                        o.str("protocol", &protocol_name(p));
                    }
                    if let Some(a) = r.address {
                        o.ip("address", a);
                    }
                    if let Some(p) = r.port {
                        o.int("port", p);
                    }
                    if let Some(a) = r.remote_address {
                        o.ip("remote_address", a);
                    }
                    if let Some(p) = r.remote_port {
                        o.int("remote_port", p);
                    }
                    siem::socket_extras_after_record(r, o);
                    o.append(extras);
                });
            });
            return;
        }
        if let Some(local) = siem::local(r) {
            endpoint(m, "dst_endpoint", local);
        }
        if let Some(peer) = siem::remote(r) {
            endpoint(m, "src_endpoint", peer);
        }
        connection(m, r.protocol, r.family);
        m.bool("is_src_dst_assignment_known", true);
        status(m, r.success != Some(false));
        if let (Some(name), Some(code)) = (&r.errno, r.errno_code) {
            m.str("status_code", name);
            m.str("status_detail", &format!("{name} ({code})"));
        }
        m.object("unmapped", |u| {
            u.object("portwatch", |o| {
                siem::socket_extras(record, r, o);
                o.append(extras);
            });
        });
    }
}

impl Encoder for Ocsf {
    fn encode(&self, seq: u64, record: &Record, out: &mut Vec<u8>) {
        let (class, Activity(id, caption, name)) = activity(record);
        out.extend_from_slice(b"{\"class_uid\":");
        out.extend_from_slice(itoa::Buffer::new().format(class.uid).as_bytes());
        let mut m = Members::new(out);
        m.plain("class_name", class.name);
        m.int("category_uid", class.category_uid);
        m.plain("category_name", class.category_name);
        m.int("activity_id", id);
        m.plain("activity_name", name);
        m.int("type_uid", u64::from(class.uid) * 100 + u64::from(id));
        m.str("type_name", &format!("{}: {caption}", class.name));
        let (severity_id, severity) = severity(record);
        m.int("severity_id", severity_id);
        m.plain("severity", severity);
        m.int("time", siem::record_time(record).epoch_ms());
        m.int("timezone_offset", 0);
        let container = self.body(record, &mut m);
        m.object("metadata", |md| metadata(md, seq, record, container));
        m.append(&self.device);
        out.extend_from_slice(b"}\n");
    }
}

impl Ocsf {
    /// Who, where and portwatch's own fields, by record kind; whether it names a container
    /// (the container profile).
    fn body(&self, record: &Record, m: &mut Members) -> bool {
        match record {
            Record::Bind(r)
            | Record::Listen(r)
            | Record::Accept(r)
            | Record::Close(r)
            | Record::Exec(r) => {
                self.socket(record, r, m);
                r.process.container.is_some()
            }
            Record::Listener(r) | Record::ListenerStats(r) => {
                let pieces = r.process.encoded("ocsf", |p| self.context(p));
                let task = Task::of_socket(r);
                let extras = task
                    .as_ref()
                    .map_or(&*pieces[EXTRAS], |t| self.actor(m, t, &r.process, &pieces));
                if let Some(local) = siem::local(r) {
                    endpoint(m, "dst_endpoint", local);
                }
                connection(m, r.protocol, r.family);
                status(m, true);
                m.object("unmapped", |u| {
                    u.object("portwatch", |o| {
                        siem::listener_extras(record, r, o);
                        o.append(extras);
                    });
                });
                task.is_some() && r.process.container.is_some()
            }
            Record::Flood(r) => {
                let pieces = r.process.encoded("ocsf", |p| self.context(p));
                let extras = self.actor(m, &Task::of_flood(r), &r.process, &pieces);
                m.plain("log_name", "portwatch");
                m.plain("log_provider", "portwatch");
                status(m, true);
                m.object("unmapped", |u| {
                    u.object("portwatch", |o| {
                        siem::own_extras(record, o);
                        o.append(extras);
                    });
                });
                r.process.container.is_some()
            }
            _ => {
                if let Record::Start(r) = record {
                    m.object("actor", |a| {
                        a.object("process", |p| {
                            p.int("pid", r.pid);
                            p.plain("name", "portwatch");
                        });
                    });
                }
                m.plain("log_name", "portwatch");
                m.plain("log_provider", "portwatch");
                status(m, true);
                m.object("unmapped", |u| {
                    u.object("portwatch", |o| siem::own_extras(record, o))
                });
                false
            }
        }
    }
}

/// `metadata`: the schema's version, the product, the profiles, the sequence number.
fn metadata(md: &mut Members, seq: u64, record: &Record, container: bool) {
    md.plain("version", OCSF_VERSION);
    md.object("product", |p| {
        p.plain("name", "portwatch");
        p.plain("vendor_name", "portwatch");
        p.plain("version", env!("CARGO_PKG_VERSION"));
    });
    let profiles: &[&str] = if container {
        &["host", "container"]
    } else {
        &["host"]
    };
    md.strs("profiles", profiles.iter().copied());
    md.int("sequence", seq);
    md.plain("event_code", record.event());
    md.plain("log_name", "portwatch");
}
