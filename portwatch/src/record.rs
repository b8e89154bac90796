//! The JSON records portwatch writes, one per line. These types are the output schema
//! (`schema/portwatch.schema.json` describes them; the README documents every field); they are
//! kept apart from the kernel's records (portwatch-common) so either can change without the other.
use std::{borrow::Cow, collections::BTreeMap, net::IpAddr, ops::Deref, sync::Arc};

use serde::Serialize;

use crate::{
    cgroup::Container,
    clock::{Clock, Timestamp},
    decode::{Comm, SockKind, SocketEvent},
    hooks::Chosen,
    inventory::Scope,
    json::Members,
    listeners::{Ended, Neighbour},
};

/// A record; its `event` member is the variant's name (`Record::event`).
#[derive(Debug)]
pub enum Record {
    Start(StartRecord),
    Bind(SocketRecord),
    Listen(SocketRecord),
    Accept(SocketRecord),
    Close(SocketRecord),
    /// A socket that was already listening (or bound, for UDP) when portwatch started.
    Listener(ListenerRecord),
    /// Every pre-existing listener has been reported; live events follow.
    SnapshotComplete(SnapshotRecord),
    Loss(LossRecord),
    Stop(StopRecord),
}

#[derive(Debug, Serialize)]
pub struct ListenerRecord {
    pub time: String,
    pub protocol: &'static str,
    pub family: &'static str,
    pub address: String,
    pub port: u16,
    pub scope: Scope,
    /// IPv6 sockets: whether it refuses IPv4 (false on a `::` socket means IPv4 reaches it too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v6only: Option<bool>,
    pub inode: u64,
    /// How many other sockets serve the same protocol and port on overlapping addresses.
    #[serde(skip_serializing_if = "is_zero")]
    pub shared: usize,
    /// Every process holding the socket.
    pub owners: Vec<u32>,
    /// Why the baseline (`watch --baseline`) does not allow this listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The first owner: pid, tid, uid, gid, comm and its process context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Written after the other fields (see `Record::write_line`).
    #[serde(skip)]
    pub process: Option<Arc<Process>>,
}

const fn is_zero(n: &usize) -> bool {
    *n == 0
}

const fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Serialize)]
pub struct SnapshotRecord {
    pub time: String,
    /// Listener records in the snapshot.
    pub listeners: usize,
}

#[derive(Debug, Serialize)]
pub struct StartRecord {
    pub time: String,
    pub version: &'static str,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// portwatch's own process id.
    pub pid: u32,
    pub ring_buffer_bytes: u32,
    /// The attach type each hook got.
    pub hooks: Vec<Chosen>,
}

/// A bind, listen, accept or close, written member by member (`write_members`): the one
/// record written per event.
#[derive(Debug, Default, PartialEq)]
pub struct SocketRecord {
    pub time: Timestamp,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Comm,
    pub protocol: Option<Cow<'static, str>>,
    pub family: Option<&'static str>,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub remote_address: Option<IpAddr>,
    pub remote_port: Option<u16>,
    pub requested_address: Option<IpAddr>,
    pub requested_port: Option<u16>,
    pub backlog: Option<u32>,
    pub fd: Option<i32>,
    pub success: Option<bool>,
    pub errno: Option<String>,
    pub errno_code: Option<i32>,
    /// Who can reach the port (bind, listen and close of a known socket).
    pub scope: Option<Scope>,
    /// The socket's inode: the same number in /proc/PID/fd, `ss -e` and listener records.
    pub inode: Option<u64>,
    /// accept: the listening socket's inode.
    pub listener_inode: Option<u64>,
    /// A new listener on a port that other programs (other executables) already serve.
    pub shared_with: Option<Vec<Neighbour>>,
    /// A new listener that the baseline (`watch --baseline`) does not allow, and why.
    pub alert: Option<String>,
    /// close: why portwatch reports it (a UDP socket gone with its exited owner).
    pub reason: Option<&'static str>,
    /// close: how long the listener lived and how many connections it accepted.
    pub ended: Option<Ended>,
    /// Written after the other fields.
    pub process: Arc<Process>,
}

/// Who did it, beyond pid/tid/uid/gid/comm: see `enrich`.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// When the process started (with `pid`, its lasting identity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Audit login uid: the user who logged in, whatever su/sudo did since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loginuid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Arc<[String]>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub args_truncated: bool,
    /// 0 (omitted) only when there is no process to take it from.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub cgroup_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRecord>,
    /// Fields that could not be known, each with the reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gaps: BTreeMap<&'static str, String>,
}

impl ProcessContext {
    pub fn gap(&mut self, field: &'static str, why: impl Into<String>) {
        self.gaps.insert(field, why.into());
    }
}

/// A process context with its JSON members, formatted once for each state of a process and
/// shared by all its records (`enrich` caches it): a busy process costs no formatting per event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Process {
    context: ProcessContext,
    /// `context` as JSON object members, without the braces (empty when it has none).
    members: Box<str>,
}

impl Process {
    pub fn new(context: ProcessContext) -> Arc<Self> {
        // Strings, numbers and maps with string keys: serialising them cannot fail.
        let json = serde_json::to_string(&context).unwrap_or_default();
        let members = json
            .strip_prefix('{')
            .and_then(|j| j.strip_suffix('}'))
            .unwrap_or_default()
            .into();
        Arc::new(Self { context, members })
    }

    pub fn members(&self) -> &str {
        &self.members
    }
}

impl Deref for Process {
    type Target = ProcessContext;

    fn deref(&self) -> &ProcessContext {
        &self.context
    }
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParentRecord {
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// Why comm and exe are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<&'static str>,
}

/// Per-kind counts (exec and exit are the process-tracking records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub bind: u64,
    pub listen: u64,
    pub accept: u64,
    pub close: u64,
    pub exec: u64,
    pub exit: u64,
}

impl KindCounts {
    /// From counts in `EventKind::ALL` order.
    pub fn from_array(a: [u64; 6]) -> Self {
        let [bind, listen, accept, close, exec, exit] = a;
        Self {
            bind,
            listen,
            accept,
            close,
            exec,
            exit,
        }
    }

    pub const fn total(&self) -> u64 {
        self.bind + self.listen + self.accept + self.close + self.exec + self.exit
    }
}

/// Everything counted as lost or damaged since start-up (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LossCounts {
    /// Events that never reached userspace or could not be decoded.
    pub lost_total: u64,
    /// Events dropped in the kernel because the ring buffer was full.
    pub ring_buffer_full: KindCounts,
    /// Syscalls whose arguments could not be stored (in-flight table full): their event is lost.
    pub in_flight_table_full: KindCounts,
    /// Records that reached userspace but could not be decoded.
    pub decode_errors: u64,
    /// Events sent without their socket fields because the kernel could not read the socket.
    pub socket_read_errors: u64,
    /// Records sent without parent, start time and namespace because the task was unreadable.
    pub task_read_errors: u64,
}

#[derive(Debug, Serialize)]
pub struct LossRecord {
    pub time: String,
    #[serde(flatten)]
    pub counts: LossCounts,
}

#[derive(Debug, Serialize)]
pub struct StopRecord {
    pub time: String,
    /// Why portwatch stopped: `SIGINT` or `SIGTERM`.
    pub reason: &'static str,
    /// Event records written.
    pub events: u64,
    #[serde(flatten)]
    pub counts: LossCounts,
}

/// Protocol name for an IP protocol number.
pub fn protocol_name(protocol: u16) -> Cow<'static, str> {
    Cow::Borrowed(match protocol {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        255 => "raw",
        262 => "mptcp",
        n => return Cow::Owned(format!("ip-proto-{n}")),
    })
}

/// `EADDRINUSE` for 98, ...; numbers the platform does not name stay numeric.
pub fn errno_name(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("E{errno}"),
        e => format!("{e:?}"),
    }
}

/// `ipv4` or `ipv6`, as records name address families.
pub fn family(addr: &std::net::SocketAddr) -> &'static str {
    if addr.is_ipv4() { "ipv4" } else { "ipv6" }
}

impl SocketRecord {
    /// The record's own members (absent ones left out); its process context follows them.
    fn write_members(&self, m: &mut Members) {
        m.plain("time", self.time);
        m.int("pid", self.pid);
        m.int("tid", self.tid);
        m.int("uid", self.uid);
        m.int("gid", self.gid);
        m.str("comm", &self.comm.text());
        if let Some(p) = &self.protocol {
            m.plain("protocol", p.as_bytes());
        }
        if let Some(f) = self.family {
            m.plain("family", f);
        }
        if let Some(a) = self.address {
            m.ip("address", a);
        }
        if let Some(p) = self.port {
            m.int("port", p);
        }
        if let Some(a) = self.remote_address {
            m.ip("remote_address", a);
        }
        if let Some(p) = self.remote_port {
            m.int("remote_port", p);
        }
        if let Some(a) = self.requested_address {
            m.ip("requested_address", a);
        }
        if let Some(p) = self.requested_port {
            m.int("requested_port", p);
        }
        if let Some(b) = self.backlog {
            m.int("backlog", b);
        }
        if let Some(fd) = self.fd {
            m.int("fd", fd);
        }
        if let Some(ok) = self.success {
            m.bool("success", ok);
        }
        if let Some(e) = &self.errno {
            m.plain("errno", e);
        }
        if let Some(e) = self.errno_code {
            m.int("errno_code", e);
        }
        if let Some(s) = self.scope {
            m.plain("scope", s.name());
        }
        if let Some(i) = self.inode {
            m.int("inode", i);
        }
        if let Some(i) = self.listener_inode {
            m.int("listener_inode", i);
        }
        if let Some(n) = &self.shared_with {
            m.value("shared_with", n);
        }
        if let Some(a) = &self.alert {
            m.str("alert", a);
        }
        if let Some(r) = self.reason {
            m.plain("reason", r);
        }
        if let Some(e) = &self.ended {
            m.flatten(e);
        }
    }

    pub fn new(e: &SocketEvent, process: Arc<Process>, clock: &Clock) -> Self {
        let t = &e.task;
        let mut r = Self {
            time: clock.timestamp(t.boot_ns),
            pid: t.pid,
            tid: t.tid,
            uid: t.uid,
            gid: t.gid,
            comm: t.comm,
            process,
            fd: e.fd,
            backlog: e.backlog,
            ..Self::default()
        };
        r.inode = e.inode;
        r.listener_inode = e.listener_inode;
        let mut shown = None;
        if let Some(s) = &e.socket {
            shown = Some(s.local);
            r.protocol = Some(protocol_name(s.protocol));
            r.family = Some(family(&s.local));
            r.address = Some(s.local.ip());
            r.port = Some(s.local.port());
            if let Some(remote) = s.remote {
                r.remote_address = Some(remote.ip());
                r.remote_port = Some(remote.port());
            }
        }
        if let Some(req) = e.requested {
            r.requested_address = Some(req.ip());
            r.requested_port = Some(req.port());
            r.family.get_or_insert(family(&req));
            // A failed bind bound nothing: the port it is about is the one it asked for.
            if e.errno != 0 || e.socket.is_none() {
                r.address = r.requested_address;
                r.port = r.requested_port;
                shown = Some(req);
            }
        }
        if e.kind != SockKind::Accept {
            r.scope = shown.map(|a| Scope::of(&a));
        }
        if matches!(e.kind, SockKind::Bind | SockKind::Listen) {
            r.success = Some(e.errno == 0);
            if e.errno != 0 {
                r.errno = Some(errno_name(e.errno));
                r.errno_code = Some(e.errno);
            }
        }
        r
    }
}

impl Record {
    /// The record's `event` member.
    pub const fn event(&self) -> &'static str {
        match self {
            Self::Start(_) => "start",
            Self::Bind(_) => "bind",
            Self::Listen(_) => "listen",
            Self::Accept(_) => "accept",
            Self::Close(_) => "close",
            Self::Listener(_) => "listener",
            Self::SnapshotComplete(_) => "snapshot_complete",
            Self::Loss(_) => "loss",
            Self::Stop(_) => "stop",
        }
    }

    /// Appends the record as one JSON line: `seq`, `event`, the record's own fields, then its
    /// process context's preformatted members, and a newline.
    pub fn write_line(&self, seq: u64, line: &mut Vec<u8>) {
        line.extend_from_slice(b"{\"seq\":");
        line.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        line.extend_from_slice(b",\"event\":\"");
        line.extend_from_slice(self.event().as_bytes());
        line.push(b'"');
        let mut m = Members::new(line);
        match self {
            Self::Bind(r) | Self::Listen(r) | Self::Accept(r) | Self::Close(r) => {
                r.write_members(&mut m);
                m.raw(r.process.members());
            }
            Self::Listener(r) => {
                m.flatten(r);
                m.raw(r.process.as_deref().map_or("", Process::members));
            }
            Self::Start(r) => m.flatten(r),
            Self::SnapshotComplete(r) => m.flatten(r),
            Self::Loss(r) => m.flatten(r),
            Self::Stop(r) => m.flatten(r),
        }
        line.extend_from_slice(b"}\n");
    }

    pub fn socket(e: &SocketEvent, process: Arc<Process>, clock: &Clock) -> Self {
        Self::from_socket(e.kind, SocketRecord::new(e, process, clock))
    }

    pub fn from_socket(kind: SockKind, r: SocketRecord) -> Self {
        match kind {
            SockKind::Bind => Self::Bind(r),
            SockKind::Listen => Self::Listen(r),
            SockKind::Accept => Self::Accept(r),
            SockKind::Close => Self::Close(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{
        KernelRecord, SocketInfo, decode,
        tests::{bytes, sock_event},
    };
    use portwatch_common::EventKind;
    use serde_json::{Value, json};

    const CLOCK: Clock = Clock::fixed(1_767_225_600 * 1_000_000_000);

    /// The record as written, without its `seq`.
    fn to_json(r: &Record) -> Value {
        let mut line = Vec::new();
        r.write_line(7, &mut line);
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
        socket(&e).write_line(0, &mut line);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(to_json(&socket(&e))["comm"], "a\u{fffd}\"\n");
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
        Record::socket(&e, Process::new(context), &CLOCK).write_line(9, &mut line);
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
            json!([{"pid": 7, "exe": "/usr/sbin/sshd"}])
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
        Record::SnapshotComplete(SnapshotRecord {
            time: CLOCK.format(0),
            listeners: 2,
        })
        .write_line(0, &mut line);
        assert_eq!(
            line,
            b"{\"seq\":0,\"event\":\"snapshot_complete\",\"time\":\"2026-01-01T00:00:00.000000000Z\",\"listeners\":2}\n"
        );
    }

    #[test]
    fn names_errnos_and_protocols() {
        assert_eq!(errno_name(98), "EADDRINUSE");
        assert_eq!(errno_name(13), "EACCES");
        assert_eq!(errno_name(4000), "E4000");
        assert_eq!(protocol_name(6), "tcp");
        assert_eq!(protocol_name(99), "ip-proto-99");
    }
}
