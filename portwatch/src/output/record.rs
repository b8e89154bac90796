//! The JSON records portwatch writes, one per line. These types are the output schema
//! (`schema/portwatch.schema.json` describes them; the README documents every field); they are
//! kept apart from the kernel's records (portwatch-common) so either can change without the other.
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use portwatch_common::EventKind;

use super::sink::{Heading, Worth};
use crate::model::verdict::{Detection, Level, Verdicts};

use crate::{
    clock::{Clock, Timestamp},
    model::{
        errno::errno_name,
        health::Health,
        listener::{Ended, Holder, Listener, Neighbour},
        net::{Family, Proto, Scope},
        process::{ListenerOwner, Process, ProcessContext},
        reach::Reachability,
        socket::{SockKind, SocketEvent, SocketInfo, StdioSocket, Via},
        task::{Comm, ExecRecord, Task},
    },
};

mod own;

pub use own::{FloodRecord, LossRecord, SnapshotRecord, StartRecord, StopRecord};

/// A record; its `event` member is the variant's name (`Record::event`).
#[derive(Debug)]
pub enum Record {
    Start(StartRecord),
    Bind(SocketRecord),
    Listen(SocketRecord),
    Accept(SocketRecord),
    Close(SocketRecord),
    /// A program started with IP sockets as standard streams (`stdio`), with its detection.
    Exec(SocketRecord),
    /// A socket that was already listening (or bound, for UDP) when portwatch started, or
    /// found by listing after a loss (`listed`).
    Listener(SocketRecord),
    /// `watch --stats`: a listener's health at one moment, with what it gained since the last.
    ListenerStats(SocketRecord),
    /// Every pre-existing listener has been reported; live events follow.
    SnapshotComplete(SnapshotRecord),
    /// A process whose listener births the kernel shed, past the flood limit.
    Flood(FloodRecord),
    Loss(LossRecord),
    Stop(StopRecord),
}

/// The task a record is about: who made the event, or the first owner of a listed socket
/// (unknown when no readable /proc/PID/fd holds it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Actor {
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Comm,
}

impl Actor {
    pub const fn of(t: &Task) -> Self {
        Self {
            pid: t.pid,
            tid: t.tid,
            uid: t.uid,
            gid: t.gid,
            comm: t.comm,
        }
    }
}

/// What listing a socket (sock_diag, /proc) tells that an event does not: the `listener` and
/// `listener_stats` records.
#[derive(Debug, Default, PartialEq)]
pub struct Listed {
    /// IPv6 sockets: whether it refuses IPv4 (false on a `::` socket means IPv4 reaches it too).
    pub v6only: Option<bool>,
    /// How many other sockets serve the same protocol and port on overlapping addresses.
    pub shared: usize,
    /// Every process holding the socket.
    pub owners: Vec<u32>,
    /// Its queues, connections by state and drops (sock_diag).
    pub health: Option<Health>,
}

/// One socket, as every record about one has it: a bind, listen, accept or close (one per
/// event), an exec on sockets, a listener found by listing and its stats.
#[derive(Debug, Default, PartialEq)]
pub struct SocketRecord {
    pub time: Timestamp,
    /// Always known for an event; a listed socket's owner may not be.
    pub actor: Option<Actor>,
    /// The IP protocol number.
    pub protocol: Option<u16>,
    pub family: Option<Family>,
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
    /// How the call was made, when not by a syscall.
    pub via: Via,
    /// A new listener on a port that other programs (other executables) already serve.
    pub shared_with: Option<Vec<Neighbour>>,
    /// A new listener that the baseline (`watch --baseline`) does not allow, and why.
    pub alert: Option<String>,
    /// What the built-in detections found (`detect`): new listeners and accepts.
    pub detections: Vec<Detection>,
    /// A new listener: whether the firewall lets a new connection reach it.
    pub reachability: Option<Reachability>,
    /// close: why portwatch reports it (a UDP socket gone with its exited owner); listener:
    /// why it comes now, not at start-up (`listen not seen`: events were lost and listing the
    /// sockets again found it).
    pub reason: Option<&'static str>,
    /// A socket found by listing, not by an event.
    pub listed: Option<Listed>,
    /// close: how long the listener lived and how many connections it accepted.
    pub ended: Option<Ended>,
    /// exec: the standard streams that are sockets ("stdin", "stdout", "stderr").
    pub stdio: Vec<&'static str>,
    /// exec: the pid of the first live program started on the same socket, whose session
    /// this one runs in (None: this one opened it).
    pub session: Option<u32>,
    /// It made a listener: a successful listen, a successful bind of a UDP socket.
    pub birth: bool,
    /// Written after the other fields.
    pub process: Arc<Process>,
}

impl SocketRecord {
    /// Takes what the judge found.
    pub fn judged(&mut self, v: Verdicts) {
        self.alert = v.alert;
        self.detections = v.detections;
        self.reachability = v.reachability;
    }

    /// A listener found by the inventory, owned by `owner`, at `time`.
    pub fn listed(l: &Listener, owner: &ListenerOwner, time: Timestamp) -> Self {
        let s = &l.socket;
        Self {
            time,
            actor: owner.task.as_ref().map(Actor::of),
            protocol: Some(s.proto.number()),
            family: Some(Family::of(&s.local)),
            address: Some(s.local.ip()),
            port: Some(s.local.port()),
            scope: Some(l.scope),
            inode: Some(s.inode),
            reachability: l.reachability.clone(),
            listed: Some(Listed {
                v6only: s.v6only,
                shared: l.shared,
                owners: l.owners.clone(),
                health: s.health,
            }),
            process: Arc::clone(&owner.process),
            ..Self::default()
        }
    }

    /// The close of a listener whose close record was not seen, found gone by sock_diag: with
    /// its owner's exit, or else (the record was lost) at an unknown moment by an unknown task.
    pub fn departed(
        inode: u64,
        proto: Proto,
        local: SocketAddr,
        holder: &Holder,
        owner_exited: bool,
        ended: Ended,
        time: Timestamp,
    ) -> Self {
        let mut process = ProcessContext {
            exe: holder.exe.clone(),
            cgroup_id: holder.cgroup_id,
            ..ProcessContext::default()
        };
        let (reason, gap) = if owner_exited {
            (
                "owner exited",
                "the socket closed with its owner's exit; the owner is gone",
            )
        } else {
            (
                "close not seen",
                "its close record was lost; found closed by sock_diag: pid and user are its owner's, the closer is unknown",
            )
        };
        process.gap("ppid", gap);
        if holder.cgroup_id == 0 {
            // A listener of the snapshot that no readable /proc/PID/fd held.
            process.gap("cgroup_id", "the listener's owner was never known");
        }
        Self {
            time,
            actor: Some(Actor {
                pid: holder.pid,
                tid: holder.tid,
                uid: holder.uid,
                gid: holder.gid,
                comm: holder.comm,
            }),
            protocol: Some(proto.number()),
            family: Some(Family::of(&local)),
            address: Some(local.ip()),
            port: Some(local.port()),
            scope: Some(Scope::of(&local)),
            inode: Some(inode),
            reason: Some(reason),
            ended: Some(ended),
            process: Process::new(process),
            ..Self::default()
        }
    }

    /// The record of what task `t` (running `process`) did, its members still to fill.
    fn from_task(t: &Task, process: Arc<Process>, clock: &Clock) -> Self {
        Self {
            time: clock.timestamp(t.boot_ns),
            actor: Some(Actor::of(t)),
            process,
            ..Self::default()
        }
    }

    /// The local and remote ends of `s`.
    fn set_ends(&mut self, s: &SocketInfo) {
        self.protocol = Some(s.protocol);
        self.family = Some(Family::of(&s.local));
        self.address = Some(s.local.ip());
        self.port = Some(s.local.port());
        self.remote_address = s.remote.map(|a| a.ip());
        self.remote_port = s.remote.map(|a| a.port());
    }

    /// A program started with `stdio` sockets: the lowest one's ends, the new image's task.
    pub fn exec(e: &ExecRecord, stdio: &StdioSocket, process: Arc<Process>, clock: &Clock) -> Self {
        let mut r = Self {
            inode: stdio.inode,
            stdio: stdio.streams().collect(),
            ..Self::from_task(&e.task, process, clock)
        };
        if let Some(s) = &stdio.socket {
            r.set_ends(s);
        }
        r
    }

    pub fn new(e: &SocketEvent, process: Arc<Process>, clock: &Clock) -> Self {
        let mut r = Self {
            fd: e.fd,
            backlog: e.backlog,
            inode: e.inode,
            listener_inode: e.listener_inode,
            via: e.via,
            ..Self::from_task(&e.task, process, clock)
        };
        if let Some(s) = &e.socket {
            r.set_ends(s);
        }
        if let Some(req) = e.requested {
            r.requested_address = Some(req.ip());
            r.requested_port = Some(req.port());
            r.family.get_or_insert(Family::of(&req));
        }
        let shown = e.shown();
        if let Some(at) = shown {
            r.address = Some(at.ip());
            r.port = Some(at.port());
        }
        if e.kind != SockKind::Accept {
            r.scope = shown.map(|a| Scope::of(&a));
        }
        r.birth = e.is_birth();
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
    /// Whether the record reports an event (a socket's, or an exec on sockets; not start,
    /// snapshot, loss or stop).
    pub const fn is_event(&self) -> bool {
        matches!(
            self,
            Self::Bind(_) | Self::Listen(_) | Self::Accept(_) | Self::Close(_) | Self::Exec(_)
        )
    }

    /// The `event` of a listener found by listing.
    pub const LISTENER: &'static str = "listener";

    /// The record's `event` member (the kernel's kinds by their ABI names).
    pub const fn event(&self) -> &'static str {
        match self {
            Self::Start(_) => "start",
            Self::Bind(_) => EventKind::Bind.name(),
            Self::Listen(_) => EventKind::Listen.name(),
            Self::Accept(_) => EventKind::Accept.name(),
            Self::Close(_) => EventKind::Close.name(),
            Self::Exec(_) => EventKind::Exec.name(),
            Self::Listener(_) => Self::LISTENER,
            Self::ListenerStats(_) => "listener_stats",
            Self::SnapshotComplete(_) => "snapshot_complete",
            Self::Flood(_) => "flood",
            Self::Loss(_) => "loss",
            Self::Stop(_) => "stop",
        }
    }

    /// How much it asks of its reader (`Level`): every format's severity and syslog's priority.
    pub fn level(&self) -> Level {
        if let Some(r) = self.about_socket() {
            return Level::judged(r.alert.is_some(), &r.detections);
        }
        match self {
            Self::Loss(_) | Self::Flood(_) => Level::Notable,
            Self::Stop(r) if r.counts.lost_total > 0 => Level::Notable,
            _ => Level::Info,
        }
    }

    /// Its severity and kind, for receivers that want them before the text (syslog).
    pub fn heading(&self) -> Heading {
        Heading {
            level: self.level(),
            kind: self.event(),
        }
    }

    /// What a full output queue keeps longest (`sink::Worth`), and the socket inode of the
    /// listener whose birth it reports (0: none).
    pub fn worth(&self) -> (Worth, u64) {
        match (self, self.about_socket()) {
            (Self::Listen(r) | Self::Bind(r), _) if r.birth => {
                (Worth::Urgent, r.inode.unwrap_or(0))
            }
            (Self::Listener(r), _) => (Worth::Vital, r.inode.unwrap_or(0)),
            // A record the judge found something in is worth more than the bulk.
            (_, Some(_)) if self.level() > Level::Info => (Worth::Urgent, 0),
            (_, Some(_)) => (Worth::Bulk, 0),
            // portwatch's own.
            (_, None) => (Worth::Vital, 0),
        }
    }

    /// The socket the record is about (none for portwatch's own records).
    pub const fn about_socket(&self) -> Option<&SocketRecord> {
        match self {
            Self::Bind(r)
            | Self::Listen(r)
            | Self::Accept(r)
            | Self::Close(r)
            | Self::Exec(r)
            | Self::Listener(r)
            | Self::ListenerStats(r) => Some(r),
            _ => None,
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
