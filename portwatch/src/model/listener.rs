//! Listeners as every stage sees them: a listening TCP or bound UDP socket, who holds it, and
//! how it ended.
use std::{net::SocketAddr, sync::Arc};

use serde::Serialize;

use super::{
    net::{Bound, Proto, Scope},
    process::{ListenerOwner, Process},
    task::{Comm, Task},
};

/// One listening (TCP) or bound (UDP) socket, as sock_diag lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundSocket {
    pub proto: Proto,
    pub local: SocketAddr,
    pub inode: u64,
    pub uid: u32,
    /// IPv6 sockets: IPV6_V6ONLY (false means an `::` socket also takes IPv4).
    pub v6only: Option<bool>,
    /// The kernel's socket cookie (unique for the host's uptime), 0 if unknown.
    pub cookie: u64,
    /// The network namespace (inode) it lives in.
    pub netns: u32,
    /// Its queues and drops as sock_diag listed them (the connections too, when asked for).
    pub health: Option<super::health::Health>,
}

impl BoundSocket {
    pub const fn bound(&self) -> Bound {
        Bound {
            local: self.local,
            v6only: self.v6only,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub socket: BoundSocket,
    /// Processes holding the socket, lowest pid first.
    pub owners: Vec<u32>,
    pub scope: Scope,
    /// Other sockets of the same protocol on the same port whose addresses overlap this one's
    /// (SO_REUSEPORT groups, or a specific address next to a wildcard one).
    pub shared: usize,
    /// Whether the firewall lets a new connection reach it (`ls`, and `watch`'s snapshot).
    pub reachability: Option<super::reach::Reachability>,
}

/// How a listener ended, for its close record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ended {
    /// Seconds from listen (or from portwatch's start, see `lifetime_since_start`) to close.
    pub lifetime_s: f64,
    /// The listener predates portwatch: `lifetime_s` counts from the snapshot (a lower bound).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lifetime_since_start: bool,
    /// Connections accepted while portwatch watched (TCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u64>,
}

/// Another program serving the same port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    pub uid: u32,
}

/// Who held a listener, remembered for records written after the holder is gone.
#[derive(Clone, Debug, Default)]
pub struct Holder {
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Comm,
    pub exe: Option<Arc<str>>,
    pub cgroup_id: u64,
    /// Its whole context as it was then, shared with the records (`watch --stats` writes it
    /// again at every interval without reading /proc).
    pub process: Option<Arc<Process>>,
}

impl Holder {
    /// The owner `task` (unknown: zeros) running `process`.
    pub fn new(task: Option<&Task>, process: &Arc<Process>) -> Self {
        Self {
            pid: task.map_or(0, |t| t.pid),
            tid: task.map_or(0, |t| t.tid),
            uid: task.map_or(0, |t| t.uid),
            gid: task.map_or(0, |t| t.gid),
            comm: task.map_or_else(Comm::default, |t| t.comm),
            exe: process.exe.clone(),
            cgroup_id: process.cgroup_id,
            process: Some(Arc::clone(process)),
        }
    }

    /// The holder as the owner of a listener record, if it is known.
    pub fn owner(&self) -> Option<ListenerOwner> {
        let process = self.process.as_ref().filter(|_| self.pid != 0)?;
        let task = Task {
            pid: self.pid,
            tid: self.tid,
            uid: self.uid,
            gid: self.gid,
            comm: self.comm,
            cgroup_id: self.cgroup_id,
            ..Task::default()
        };
        Some(ListenerOwner {
            task: Some(task),
            process: Arc::clone(process),
        })
    }
}
