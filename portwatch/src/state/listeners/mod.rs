//! The daemon's table of current listeners (listening TCP sockets, bound UDP sockets), keyed by
//! socket inode: it gives a closing listener its lifetime and accepted-connection count, and
//! names other programs already serving a port.
//!
//! Its size follows the live sockets: every close the kernel reports removes an entry, and a
//! sock_diag check (`reconcile`) removes those whose close was not seen: it is due when closes
//! were lost, when an owner of UDP sockets exits on a kernel without the UDP close hook, and
//! whenever the table has doubled since the last check.
use std::{net::SocketAddr, sync::Arc};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::source::Present;

use crate::model::{
    listener::{BoundSocket, Ended, Holder, Neighbour},
    net::{Bound, Proto, overlaps},
    process::Process,
    socket::{SockKind, SocketEvent},
};

#[derive(Clone, Debug)]
pub struct Live {
    pub proto: Proto,
    /// Its address; v6only is known for listeners from the snapshot (sock_diag reports it).
    pub bound: Bound,
    /// Boot-clock ns of the listen/bind, or of the snapshot for listeners older than portwatch.
    pub since_ns: u64,
    pub from_snapshot: bool,
    pub accepted: u64,
    pub owner: Holder,
    /// The network namespace (inode) it was made in, 0 if unknown.
    pub netns: u32,
    /// Its owner's exit was seen.
    pub owner_exited: bool,
}

/// What the table learned from a socket event, for the event's record.
#[derive(Debug, Default)]
pub struct Update {
    /// The event made a new listener (a listening TCP socket, a bound UDP one): its protocol
    /// and address, for the baseline to judge.
    pub new_listener: Option<(Proto, SocketAddr)>,
    /// Other programs already serving the new listener's port.
    pub shared_with: Option<Vec<Neighbour>>,
    /// A closed listener's lifetime and accepted connections.
    pub ended: Option<Ended>,
    /// A close the last sock_diag check already reported: not to be reported again.
    pub already_closed: bool,
}

/// The table may grow to this many entries before its first sock_diag check.
const CHECK_MIN: usize = 4096;

#[derive(Default)]
pub struct ListenerTable {
    by_inode: FxHashMap<u64, Live>,
    /// (protocol, port) → inodes, so a new listener finds its neighbours without a scan.
    by_port: FxHashMap<(Proto, u16), Vec<u64>>,
    check_due: bool,
    /// The kernel reports UDP closes (the `udp_close` hook is attached).
    udp_closes_traced: bool,
    /// Entries after the last check.
    checked_len: usize,
    /// What the last check closed: their close records, if still queued, are duplicates.
    recently_checked: FxHashSet<u64>,
}

impl ListenerTable {
    pub fn new(udp_closes_traced: bool) -> Self {
        Self {
            udp_closes_traced,
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.by_inode.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_inode.is_empty()
    }

    pub fn get(&self, inode: u64) -> Option<&Live> {
        self.by_inode.get(&inode)
    }

    pub fn insert(&mut self, inode: u64, live: Live) {
        let key = (live.proto, live.bound.local.port());
        if let Some(old) = self.by_inode.insert(inode, live) {
            self.unindex(inode, (old.proto, old.bound.local.port()));
        }
        self.by_port.entry(key).or_default().push(inode);
        if self.by_inode.len() > CHECK_MIN.max(2 * self.checked_len) {
            self.check_due = true;
        }
    }

    fn remove(&mut self, inode: u64) -> Option<Live> {
        let live = self.by_inode.remove(&inode)?;
        self.unindex(inode, (live.proto, live.bound.local.port()));
        Some(live)
    }

    fn unindex(&mut self, inode: u64, key: (Proto, u16)) {
        if let Some(inodes) = self.by_port.get_mut(&key) {
            inodes.retain(|&i| i != inode);
            if inodes.is_empty() {
                self.by_port.remove(&key);
            }
        }
    }

    /// The listeners of other executables or users already serving `new`'s protocol on an
    /// overlapping address and port in its network namespace (`inode` is `new` itself).
    pub fn neighbours(&self, inode: u64, new: &Live) -> Vec<Neighbour> {
        let same_port = self.by_port.get(&(new.proto, new.bound.local.port()));
        let mut out: Vec<Neighbour> = same_port
            .into_iter()
            .flatten()
            .filter(|&&i| i != inode)
            .filter_map(|i| self.by_inode.get(i))
            .filter(|l| l.netns == new.netns || l.netns == 0 || new.netns == 0)
            .filter(|l| overlaps(l.bound, new.bound))
            .filter(|l| l.owner.exe != new.owner.exe || l.owner.uid != new.owner.uid)
            .map(|l| Neighbour {
                pid: l.owner.pid,
                exe: l.owner.exe.clone(),
                uid: l.owner.uid,
            })
            .collect();
        out.sort_by_key(|n| n.pid);
        out.dedup();
        out
    }

    /// A listener of the start-up snapshot, held by `holder`: its lifetime counts from `now_ns`.
    pub fn insert_snapshot(&mut self, s: &BoundSocket, mut holder: Holder, now_ns: u64) {
        if holder.pid == 0 {
            // Its owner unknown: the socket's own user (who made it) is still known.
            holder.uid = s.uid;
        }
        let live = Live {
            proto: s.proto,
            bound: s.bound(),
            since_ns: now_ns,
            from_snapshot: true,
            accepted: 0,
            owner: holder,
            netns: s.netns,
            owner_exited: false,
        };
        self.insert(s.inode, live);
    }

    /// Applies a socket event of a task running `process`: a new listener is added (when
    /// `keep`: only while closes are traced, or nothing would ever leave the table), an accept
    /// is counted on its listener, a close ends its listener.
    pub fn apply(&mut self, e: &SocketEvent, process: &Arc<Process>, keep: bool) -> Update {
        let mut update = Update::default();
        let proto = e
            .socket
            .as_ref()
            .and_then(|s| Proto::from_number(s.protocol));
        match (e.kind, e.inode, proto, &e.socket) {
            (SockKind::Listen, Some(inode), Some(proto @ Proto::Tcp), Some(s))
            | (SockKind::Bind, Some(inode), Some(proto @ Proto::Udp), Some(s))
                if e.errno == 0 =>
            {
                update.new_listener = Some((proto, s.local));
                let live = Live {
                    proto,
                    bound: Bound {
                        local: s.local,
                        v6only: None,
                    },
                    since_ns: e.task.boot_ns,
                    from_snapshot: false,
                    accepted: 0,
                    owner: Holder::new(Some(&e.task), process),
                    netns: e.task.netns.unwrap_or(0),
                    owner_exited: false,
                };
                let others = self.neighbours(inode, &live);
                update.shared_with = (!others.is_empty()).then_some(others);
                if keep {
                    self.insert(inode, live);
                }
            }
            (SockKind::Accept, ..) => {
                if let Some(listener) = e.listener_inode {
                    self.accepted(listener);
                }
            }
            (SockKind::Close, Some(inode), ..) => {
                update.already_closed = self.recently_checked.remove(&inode);
                update.ended = self.close(inode, e.task.boot_ns).map(|(_, ended)| ended);
            }
            _ => {}
        }
        update
    }

    pub fn accepted(&mut self, listener_inode: u64) {
        if let Some(l) = self.by_inode.get_mut(&listener_inode) {
            l.accepted += 1;
        }
    }

    pub fn close(&mut self, inode: u64, now_ns: u64) -> Option<(Live, Ended)> {
        let live = self.remove(inode)?;
        let ended = ended(&live, now_ns);
        Some((live, ended))
    }

    /// A process exited. Without the UDP close hook, the UDP sockets it held may have gone
    /// with it: sock_diag is checked.
    pub fn owner_exited(&mut self, pid: u32) {
        if self.udp_closes_traced {
            return;
        }
        for l in self.by_inode.values_mut() {
            if l.proto == Proto::Udp && l.owner.pid == pid {
                l.owner_exited = true;
                self.check_due = true;
            }
        }
    }

    /// Close records were lost (ring buffer full, or a UDP socket the kernel could not track).
    pub fn closes_lost(&mut self) {
        self.check_due = true;
    }

    pub fn check_due(&self) -> bool {
        self.check_due
    }

    /// Removes the listeners that sock_diag (`present`) no longer lists; returns them with their
    /// ends. Those of namespaces it could not list (or of an unknown one) are left alone.
    pub fn reconcile(&mut self, present: &Present, now_ns: u64) -> Vec<(u64, Live, Ended)> {
        self.check_due = false;
        let gone: Vec<u64> = self
            .by_inode
            .iter()
            .filter(|(i, l)| present.namespaces.contains(&l.netns) && !present.inodes.contains(i))
            .map(|(i, _)| *i)
            .collect();
        self.recently_checked = gone.iter().copied().collect();
        let closed = gone
            .into_iter()
            .filter_map(|i| {
                let live = self.remove(i)?;
                let ended = ended(&live, now_ns);
                Some((i, live, ended))
            })
            .collect();
        self.checked_len = self.by_inode.len();
        closed
    }
}

fn ended(live: &Live, now_ns: u64) -> Ended {
    Ended {
        lifetime_s: now_ns.saturating_sub(live.since_ns) as f64 / 1e9,
        lifetime_since_start: live.from_snapshot,
        accepted: (live.proto == Proto::Tcp).then_some(live.accepted),
    }
}

#[cfg(test)]
mod tests;
