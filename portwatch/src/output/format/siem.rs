//! What the SIEM formats (`ecs`, `ocsf`) take from a record the same way: its endpoints, the
//! command line, a one-line message for people, an identity for the process, and portwatch's
//! own fields that neither schema has a place for (ECS `portwatch.*`, OCSF
//! `unmapped.portwatch`), named as in the native format so one query works on all three.
use std::{borrow::Cow, net::IpAddr};

use super::json::{self, Members};
use crate::{
    clock::Timestamp,
    model::{net::protocol_name, process::ProcessContext},
    output::record::{Record, SocketRecord},
};

/// An address and port.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// The local end: the address bound, listened on, accepted at or closed (a failed bind: the
/// one it asked for).
pub fn local(r: &SocketRecord) -> Option<Endpoint> {
    Some(Endpoint {
        ip: r.address?,
        port: r.port?,
    })
}

/// accept: the peer; exec: the standard streams' peer, when connected.
pub fn remote(r: &SocketRecord) -> Option<Endpoint> {
    Some(Endpoint {
        ip: r.remote_address?,
        port: r.remote_port?,
    })
}

/// The arguments as one line, as both schemas want it besides (ECS) or instead of the list.
pub fn command_line(p: &ProcessContext) -> Option<String> {
    p.args.as_ref().map(|a| a.join(" "))
}

/// A process's lasting identity: pids are reused, (boot, pid, start time) is not.
pub fn entity_id(boot_id: Option<&str>, pid: u32, start_time: Option<Timestamp>) -> Option<String> {
    let start = start_time?.epoch_ms();
    Some(format!("{}:{pid}:{start}", boot_id.unwrap_or("boot")))
}

/// "nc[4242] listening on tcp 0.0.0.0:8080", for the people reading the SIEM's alert list.
pub fn message(record: &Record, r: &SocketRecord) -> String {
    let proto = r.protocol.map_or(Cow::Borrowed("socket"), protocol_name);
    let at = local(r).map_or_else(|| "an unknown address".to_owned(), |e| shown(&e));
    let what = match record {
        Record::Bind(_) if r.success == Some(false) => format!(
            "failed to bind {proto} {at}: {}",
            r.errno.as_deref().unwrap_or("error")
        ),
        Record::Bind(_) => format!("bound {proto} {at}"),
        Record::Listen(_) if r.success == Some(false) => format!(
            "failed to listen on {proto} {at}: {}",
            r.errno.as_deref().unwrap_or("error")
        ),
        Record::Listen(_) => format!("listening on {proto} {at}"),
        Record::Accept(_) => {
            let from = remote(r).map_or_else(|| "an unknown peer".to_owned(), |e| shown(&e));
            format!("accepted {proto} {from} -> {at}")
        }
        Record::Exec(_) => {
            let peer = remote(r).map(|e| format!(" connected to {}", shown(&e)));
            format!(
                "started with {} on {proto} {at}{}",
                r.stdio.join(", "),
                peer.unwrap_or_default()
            )
        }
        _ => format!("stopped serving {proto} {at}"),
    };
    match &r.actor {
        Some(a) => format!("{}[{}] {what}", a.comm.text(), a.pid),
        None => what,
    }
}

fn shown(e: &Endpoint) -> String {
    match e.ip {
        IpAddr::V4(ip) => format!("{ip}:{}", e.port),
        IpAddr::V6(ip) => format!("[{ip}]:{}", e.port),
    }
}

/// A socket record's own fields that the schemas have no place for.
pub fn socket_extras(record: &Record, r: &SocketRecord, m: &mut Members) {
    m.plain("record", record.event());
    socket_extras_after_record(r, m);
}

/// `socket_extras` from `time` on.
pub fn socket_extras_after_record(r: &SocketRecord, m: &mut Members) {
    m.plain("time", r.time);
    if let Some(a) = &r.actor {
        m.str("comm", &a.comm.text());
        m.int("gid", a.gid);
    }
    if let Some(fd) = r.fd {
        m.int("fd", fd);
    }
    if let Some(b) = r.backlog {
        m.int("backlog", b);
    }
    if let Some(a) = r.requested_address {
        m.ip("requested_address", a);
    }
    if let Some(p) = r.requested_port {
        m.int("requested_port", p);
    }
    if let Some(e) = r.errno_code {
        m.int("errno_code", e);
    }
    super::native::later_members(r, m);
}

/// A listener (or listener_stats) record's own fields that the schemas have no place for.
pub fn listener_extras(record: &Record, r: &SocketRecord, m: &mut Members) {
    m.plain("record", record.event());
    m.plain("time", r.time);
    if let Some(a) = &r.actor {
        m.str("comm", &a.comm.text());
        m.int("gid", a.gid);
    }
    super::native::listed_later_members(r, m);
    // Why it comes now, not at start-up (events were lost): a SIEM query needs it too.
    if let Some(why) = r.reason {
        m.plain("reason", why);
    }
}

/// The process context's fields that the schemas have no place for, as members.
pub fn process_extras(p: &ProcessContext) -> Box<str> {
    json::members(|m| {
        if let Some(ppid) = p.ppid {
            m.int("ppid", ppid);
        }
        if let Some(l) = p.loginuid {
            m.int("loginuid", l);
        }
        if p.args_truncated {
            m.bool("args_truncated", true);
        }
        if p.exe_deleted {
            m.bool("exe_deleted", true);
        }
        if let Some(args) = &p.exec_args {
            m.strs("exec_args", args.iter().map(String::as_str));
        }
        if p.cgroup_id != 0 {
            m.int("cgroup_id", p.cgroup_id);
        }
        if let Some(c) = &p.cgroup {
            m.str("cgroup", c);
        }
        if let Some(u) = &p.unit {
            m.str("unit", u);
        }
        if let Some(n) = p.netns {
            m.int("netns", n);
        }
        if let Some(source) = p.container.as_ref().and_then(|c| c.source) {
            m.plain("container_source", source);
        }
        if let Some(gap) = p.parent.as_ref().and_then(|pp| pp.gap) {
            m.str("parent_gap", gap);
        }
        if !p.gaps.is_empty() {
            m.value("gaps", &p.gaps);
        }
    })
}

/// portwatch's own records (start, stop, loss, snapshot end): their native fields.
pub fn own_extras(record: &Record, m: &mut Members) {
    m.plain("record", record.event());
    match record {
        Record::Start(r) => m.flatten(r),
        Record::Stop(r) => m.flatten(r),
        Record::Loss(r) => m.flatten(r),
        Record::SnapshotComplete(r) => m.flatten(r),
        Record::Flood(r) => m.flatten(r),
        _ => {}
    }
}

/// A record's detections (none for portwatch's own records).
pub fn detections(record: &Record) -> &[crate::model::verdict::Detection] {
    record.about_socket().map_or(&[], |r| &r.detections)
}

/// A record's time.
pub const fn record_time(record: &Record) -> Timestamp {
    match record {
        Record::Bind(r)
        | Record::Listen(r)
        | Record::Accept(r)
        | Record::Close(r)
        | Record::Exec(r)
        | Record::Listener(r)
        | Record::ListenerStats(r) => r.time,
        Record::Start(r) => r.time,
        Record::Stop(r) => r.time,
        Record::Loss(r) => r.time,
        Record::SnapshotComplete(r) => r.time,
        Record::Flood(r) => r.time,
    }
}

/// The basename of a path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The task fields a record has (a snapshot listener's owner may be unknown but its pid).
pub struct Task<'a> {
    pub pid: u32,
    pub tid: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub comm: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> Task<'a> {
    /// The socket record's actor, if known.
    pub fn of_socket(r: &'a SocketRecord) -> Option<Self> {
        r.actor.as_ref().map(|a| Self {
            pid: a.pid,
            tid: Some(a.tid),
            uid: Some(a.uid),
            gid: Some(a.gid),
            comm: Some(a.comm.text()),
        })
    }

    pub fn of_flood(r: &'a crate::output::record::FloodRecord) -> Self {
        Self {
            pid: r.pid,
            tid: None,
            uid: Some(r.uid),
            gid: Some(r.gid),
            comm: Some(std::borrow::Cow::Borrowed(&r.comm)),
        }
    }
}

/// A number as a JSON string (ECS and OCSF user and group ids are strings).
pub fn id_string(m: &mut Members, key: &'static str, id: u32) {
    m.plain(key, itoa::Buffer::new().format(id));
}
