//! The JSON records portwatch writes, one per line. These types are the output schema
//! (`schema/portwatch.schema.json` describes them; the README documents every field); they are
//! kept apart from the kernel's records (portwatch-common) so either can change without the other.
use std::{borrow::Cow, collections::BTreeMap, net::IpAddr, ops::Deref, sync::Arc};

use serde::Serialize;

use crate::{
    clock::{Clock, Timestamp},
    enrich::cgroup::Container,
    kernel::hooks::Chosen,
    model::{
        errno::errno_name,
        loss::LossCounts,
        net::{family, protocol_name},
    },
    model::{
        net::Scope,
        socket::{SockKind, SocketEvent},
        task::Comm,
    },
    state::listeners::{Ended, Neighbour},
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

impl SocketRecord {
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
    /// Whether the record reports a socket event (not start, snapshot, loss or stop).
    pub const fn is_event(&self) -> bool {
        matches!(
            self,
            Self::Bind(_) | Self::Listen(_) | Self::Accept(_) | Self::Close(_)
        )
    }

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
