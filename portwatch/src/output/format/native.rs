//! portwatch's own JSON lines (`schema/portwatch.schema.json`; the README documents every
//! field): `seq` and `event` first, then the record's fields, then its process context. Socket
//! records (events and listed listeners, one shape) are written member by member
//! (`json::Members`); portwatch's own records through serde.
use std::borrow::Cow;

use super::{Encoder, json::Members};
use crate::{
    model::{
        net::protocol_name,
        process::{Process, ProcessContext},
        socket::Via,
    },
    output::record::{Actor, Record, SocketRecord},
};

/// The native encoder.
pub struct Native;

impl Encoder for Native {
    /// Appends the record as one JSON line: `seq`, `event`, the record's own fields, then its
    /// process context's preformatted members, and a newline.
    fn encode(&self, seq: u64, record: &Record, line: &mut Vec<u8>) {
        line.extend_from_slice(b"{\"seq\":");
        line.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        line.extend_from_slice(b",\"event\":\"");
        line.extend_from_slice(record.event().as_bytes());
        line.push(b'"');
        let mut m = Members::new(line);
        match record {
            Record::Bind(r)
            | Record::Listen(r)
            | Record::Accept(r)
            | Record::Close(r)
            | Record::Exec(r) => {
                socket_members(r, &mut m);
                m.raw(&process_members(&r.process)[0]);
            }
            Record::Listener(r) | Record::ListenerStats(r) => {
                listed_members(r, &mut m);
                m.raw(&process_members(&r.process)[0]);
            }
            Record::Flood(r) => {
                m.flatten(r);
                m.raw(&process_members(&r.process)[0]);
            }
            Record::Start(r) => m.flatten(r),
            Record::SnapshotComplete(r) => m.flatten(r),
            Record::Loss(r) => m.flatten(r),
            Record::Stop(r) => m.flatten(r),
        }
        line.extend_from_slice(b"}\n");
    }
}

/// A process context as JSON object members without the braces (empty when it has none),
/// formatted once per process state (`Process::encoded`).
fn process_members(p: &Process) -> Cow<'_, [Box<str>]> {
    p.encoded("native", |c: &ProcessContext| {
        let mut out = Vec::new();
        Members::new(&mut out).flatten(c);
        // `flatten` starts each member list with the comma that `Members::raw` adds again.
        let members = out.strip_prefix(b",").unwrap_or(&out);
        Box::new([String::from_utf8_lossy(members).into()])
    })
}

/// An event's socket: who did it first, then where, then what happened to it.
fn socket_members(r: &SocketRecord, m: &mut Members) {
    m.plain("time", r.time);
    actor_members(r.actor.as_ref(), m);
    place_members(r, m);
    if let Some(a) = r.remote_address {
        m.ip("remote_address", a);
    }
    if let Some(p) = r.remote_port {
        m.int("remote_port", p);
    }
    if let Some(a) = r.requested_address {
        m.ip("requested_address", a);
    }
    if let Some(p) = r.requested_port {
        m.int("requested_port", p);
    }
    if let Some(b) = r.backlog {
        m.int("backlog", b);
    }
    if let Some(fd) = r.fd {
        m.int("fd", fd);
    }
    if let Some(ok) = r.success {
        m.bool("success", ok);
    }
    if let Some(e) = &r.errno {
        m.plain("errno", e);
    }
    if let Some(e) = r.errno_code {
        m.int("errno_code", e);
    }
    later_members(r, m);
}

/// A listed socket: where it is and what listing told first, then its owner.
fn listed_members(r: &SocketRecord, m: &mut Members) {
    m.plain("time", r.time);
    if let Some(why) = r.reason {
        m.plain("reason", why);
    }
    place_members(r, m);
    listed_later_members(r, m);
    actor_members(r.actor.as_ref(), m);
}

/// A listed socket's members from `scope` to `reachability`: written alike in every format,
/// the SIEM ones under `portwatch.*`.
pub(super) fn listed_later_members(r: &SocketRecord, m: &mut Members) {
    if let Some(s) = r.scope {
        m.plain("scope", s.name());
    }
    let listed = r.listed.as_ref();
    if let Some(v) = listed.and_then(|l| l.v6only) {
        m.bool("v6only", v);
    }
    if let Some(i) = r.inode {
        m.int("inode", i);
    }
    if let Some(l) = listed {
        if l.shared > 0 {
            m.int("shared", l.shared);
        }
        m.value("owners", &l.owners);
    }
    if let Some(a) = &r.alert {
        m.str("alert", a);
    }
    if !r.detections.is_empty() {
        m.value("detections", &r.detections);
    }
    if let Some(h) = listed.and_then(|l| l.health.as_ref()) {
        m.value("health", h);
    }
    if let Some(reach) = &r.reachability {
        m.value("reachability", reach);
    }
}

fn actor_members(actor: Option<&Actor>, m: &mut Members) {
    if let Some(a) = actor {
        m.int("pid", a.pid);
        m.int("tid", a.tid);
        m.int("uid", a.uid);
        m.int("gid", a.gid);
        m.str("comm", &a.comm.text());
    }
}

/// Protocol, family, local address and port.
pub(super) fn place_members(r: &SocketRecord, m: &mut Members) {
    if let Some(p) = r.protocol {
        m.plain("protocol", protocol_name(p).as_bytes());
    }
    if let Some(f) = r.family {
        m.plain("family", f.name());
    }
    if let Some(a) = r.address {
        m.ip("address", a);
    }
    if let Some(p) = r.port {
        m.int("port", p);
    }
}

/// A socket record's members from `scope` on (its socket's identity, how it was made, what was
/// judged, how it ended): written alike in every format, the SIEM ones under `portwatch.*`.
pub(super) fn later_members(r: &SocketRecord, m: &mut Members) {
    if let Some(s) = r.scope {
        m.plain("scope", s.name());
    }
    if let Some(i) = r.inode {
        m.int("inode", i);
    }
    if let Some(i) = r.listener_inode {
        m.int("listener_inode", i);
    }
    if !r.stdio.is_empty() {
        m.strs("stdio", r.stdio.iter().copied());
    }
    if let Some(pid) = r.session {
        m.int("session", pid);
    }
    if let Via::IoUring(thread) = r.via {
        m.plain("via", "io_uring");
        m.plain("io_uring_thread", thread.name());
    }
    if let Some(n) = &r.shared_with {
        m.value("shared_with", n);
    }
    if let Some(a) = &r.alert {
        m.str("alert", a);
    }
    if !r.detections.is_empty() {
        m.value("detections", &r.detections);
    }
    if let Some(reach) = &r.reachability {
        m.value("reachability", reach);
    }
    if let Some(r) = r.reason {
        m.plain("reason", r);
    }
    if let Some(e) = &r.ended {
        m.flatten(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::{
        clock::Clock,
        model::{
            listener::{Ended, Neighbour},
            socket::{SocketEvent, SocketInfo},
            task::Comm,
        },
        output::record::SnapshotRecord,
        pipeline::decode::{
            KernelRecord, decode,
            tests::{bytes, sock_event},
        },
    };
    use portwatch_common::EventKind;
    use serde_json::{Value, json};

    const CLOCK: Clock = Clock::fixed(1_767_225_600 * 1_000_000_000);

    /// The record as written, without its `seq`.
    fn to_json(r: &Record) -> Value {
        let mut line = Vec::new();
        Native.encode(7, r, &mut line);
        assert_eq!(line.pop(), Some(b'\n'));
        let mut v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v.as_object_mut().unwrap().remove("seq"), Some(json!(7)));
        v
    }

    fn event(kind: EventKind) -> SocketEvent {
        match decode(&bytes(&sock_event(kind))).unwrap().record {
            KernelRecord::Socket(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn socket(e: &SocketEvent) -> Record {
        Record::socket(e, Arc::default(), &CLOCK)
    }

    #[test]
    fn failed_bind_reports_errno_by_name_and_requested_port() {
        let mut e = event(EventKind::Bind);
        e.errno = 98;
        e.requested = Some("0.0.0.0:8080".parse().unwrap());
        e.socket = Some(SocketInfo {
            protocol: 6,
            sock_type: 1,
            local: "0.0.0.0:0".parse().unwrap(),
            remote: None,
        });
        let v = to_json(&socket(&e));
        assert_eq!(
            v,
            json!({
                "event": "bind", "time": "2026-01-01T00:00:05.000000000Z", "pid": 42, "tid": 43,
                "uid": 1000, "gid": 100, "comm": "python3", "protocol": "tcp", "family": "ipv4",
                "address": "0.0.0.0", "port": 8080, "requested_address": "0.0.0.0",
                "requested_port": 8080, "fd": 3, "success": false, "errno": "EADDRINUSE",
                "errno_code": 98, "scope": "all"
            })
        );
    }

    #[test]
    fn successful_port_zero_bind_reports_the_real_port() {
        let mut e = event(EventKind::Bind);
        e.requested = Some("[::]:0".parse().unwrap());
        e.socket = Some(SocketInfo {
            protocol: 17,
            sock_type: 2,
            local: "[::]:41234".parse().unwrap(),
            remote: None,
        });
        let v = to_json(&socket(&e));
        assert_eq!(v["port"], 41234);
        assert_eq!(v["requested_port"], 0);
        assert_eq!(v["protocol"], "udp");
        assert_eq!(v["family"], "ipv6");
        assert_eq!(v["success"], true);
        assert!(v.get("errno").is_none());
    }

    #[test]
    fn accept_has_remote_and_no_success_field() {
        let mut e = event(EventKind::Accept);
        e.socket = Some(SocketInfo {
            protocol: 6,
            sock_type: 1,
            local: "[::ffff:127.0.0.1]:8080".parse().unwrap(),
            remote: Some("[::ffff:127.0.0.1]:50000".parse().unwrap()),
        });
        let v = to_json(&socket(&e));
        assert_eq!(v["event"], "accept");
        assert_eq!(v["address"], "::ffff:127.0.0.1");
        assert_eq!(v["remote_address"], "::ffff:127.0.0.1");
        assert_eq!(v["remote_port"], 50000);
        assert!(v.get("success").is_none());
    }

    #[test]
    fn non_utf8_comm_stays_valid_json() {
        let mut e = event(EventKind::Listen);
        e.task.comm = Comm::new(&[b'a', 0xff, b'"', b'\n']);
        let mut line = Vec::new();
        Native.encode(0, &socket(&e), &mut line);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        // Every byte kept (`model::text`): 0xff and the newline as `\xNN`.
        assert_eq!(to_json(&socket(&e))["comm"], "a\\xff\"\\x0a");
    }

    #[test]
    fn the_process_context_follows_the_record_fields_in_one_object() {
        let mut context = ProcessContext {
            ppid: Some(1),
            exe: Some("/usr/bin/nc".into()),
            ..ProcessContext::default()
        };
        context.gap("user", "uid 7 is not in /etc/passwd");
        let r = Record::socket(&event(EventKind::Listen), Process::new(context), &CLOCK);
        let v = to_json(&r);
        assert_eq!(v["event"], "listen");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["ppid"], 1);
        assert_eq!(v["exe"], "/usr/bin/nc");
        assert_eq!(v["gaps"]["user"], "uid 7 is not in /etc/passwd");
    }

    #[test]
    fn a_listen_line_is_written_field_by_field() {
        let mut e = event(EventKind::Listen);
        e.backlog = Some(511);
        e.inode = Some(777);
        e.socket = Some(SocketInfo {
            protocol: 6,
            sock_type: 1,
            local: "[::]:8080".parse().unwrap(),
            remote: None,
        });
        let context = ProcessContext {
            ppid: Some(1),
            ..ProcessContext::default()
        };
        let mut line = Vec::new();
        Native.encode(
            9,
            &Record::socket(&e, Process::new(context), &CLOCK),
            &mut line,
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"seq\":9,\"event\":\"listen\",\"time\":\"2026-01-01T00:00:05.000000000Z\",\
             \"pid\":42,\"tid\":43,\"uid\":1000,\"gid\":100,\"comm\":\"python3\",\
             \"protocol\":\"tcp\",\"family\":\"ipv6\",\"address\":\"::\",\"port\":8080,\
             \"backlog\":511,\"fd\":3,\"success\":true,\"scope\":\"all\",\"inode\":777,\
             \"ppid\":1}\n"
        );
    }

    #[test]
    fn a_closed_listener_carries_its_lifetime_neighbours_and_alert() {
        let mut r = SocketRecord::new(&event(EventKind::Close), Arc::default(), &CLOCK);
        r.shared_with = Some(vec![Neighbour {
            pid: 7,
            exe: Some("/usr/sbin/sshd".into()),
            uid: 0,
        }]);
        r.alert = Some("port 22 is \"not\" allowed".into());
        r.reason = Some("owner exited");
        r.ended = Some(Ended {
            lifetime_s: 1.5,
            lifetime_since_start: false,
            accepted: Some(3),
        });
        let v = to_json(&Record::Close(r));
        assert_eq!(
            v["shared_with"],
            json!([{"pid": 7, "exe": "/usr/sbin/sshd", "uid": 0}])
        );
        assert_eq!(v["alert"], "port 22 is \"not\" allowed");
        assert_eq!(v["reason"], "owner exited");
        assert_eq!(v["lifetime_s"], 1.5);
        assert_eq!(v["accepted"], 3);
        assert!(v.get("lifetime_since_start").is_none());
    }

    #[test]
    fn other_records_are_one_object_with_seq_and_event_first() {
        let mut line = Vec::new();
        let r = Record::SnapshotComplete(SnapshotRecord {
            time: CLOCK.timestamp(0),
            listeners: 2,
        });
        Native.encode(0, &r, &mut line);
        assert_eq!(
            line,
            b"{\"seq\":0,\"event\":\"snapshot_complete\",\"time\":\"2026-01-01T00:00:00.000000000Z\",\"listeners\":2}\n"
        );
    }
}
