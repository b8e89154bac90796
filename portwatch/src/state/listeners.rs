//! The daemon's table of current listeners (listening TCP sockets, bound UDP sockets), keyed by
//! socket inode: it gives a closing listener its lifetime and accepted-connection count, and
//! names other programs already serving a port.
//!
//! Its size follows the live sockets: every close the kernel reports removes an entry, and a
//! sock_diag check (`reconcile`) removes those whose close was not seen: it is due when closes
//! were lost, when an owner of UDP sockets exits on a kernel without the UDP close hook, and
//! whenever the table has doubled since the last check.
use std::net::SocketAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{
    listener::{BoundSocket, Ended, Holder, Neighbour},
    net::{Bound, Proto, overlaps},
    process::ProcessContext,
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
    /// portwatch's network namespace: sock_diag lists only its sockets.
    own_netns: u32,
    /// Entries after the last check.
    checked_len: usize,
    /// What the last check closed: their close records, if still queued, are duplicates.
    recently_checked: FxHashSet<u64>,
}

impl ListenerTable {
    /// A table for a daemon in network namespace `own_netns` (0: unknown, never checked).
    pub fn new(own_netns: u32, udp_closes_traced: bool) -> Self {
        Self {
            own_netns,
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

    /// Programs other than `exe` already serving `proto` on an overlapping address and port.
    pub fn neighbours(
        &self,
        inode: u64,
        proto: Proto,
        local: Bound,
        exe: Option<&str>,
    ) -> Vec<Neighbour> {
        let same_port = self.by_port.get(&(proto, local.local.port()));
        let mut out: Vec<Neighbour> = same_port
            .into_iter()
            .flatten()
            .filter(|&&i| i != inode)
            .filter_map(|i| self.by_inode.get(i))
            .filter(|l| overlaps(l.bound, local) && l.owner.exe.as_deref() != exe)
            .map(|l| Neighbour {
                pid: l.owner.pid,
                exe: l.owner.exe.clone(),
            })
            .collect();
        out.sort_by_key(|n| n.pid);
        out.dedup();
        out
    }

    /// A listener of the start-up snapshot, held by `holder`: its lifetime counts from `now_ns`.
    pub fn insert_snapshot(&mut self, s: &BoundSocket, holder: Holder, now_ns: u64) {
        let live = Live {
            proto: s.proto,
            bound: s.bound(),
            since_ns: now_ns,
            from_snapshot: true,
            accepted: 0,
            owner: holder,
            netns: self.own_netns,
            owner_exited: false,
        };
        self.insert(s.inode, live);
    }

    /// Applies a socket event of a task running `process`: a new listener is added (when
    /// `keep`: only while closes are traced, or nothing would ever leave the table), an accept
    /// is counted on its listener, a close ends its listener.
    pub fn apply(&mut self, e: &SocketEvent, process: &ProcessContext, keep: bool) -> Update {
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
                let local = Bound {
                    local: s.local,
                    v6only: None,
                };
                let others = self.neighbours(inode, proto, local, process.exe.as_deref());
                update.shared_with = (!others.is_empty()).then_some(others);
                if keep {
                    let live = Live {
                        proto,
                        bound: local,
                        since_ns: e.task.boot_ns,
                        from_snapshot: false,
                        accepted: 0,
                        owner: Holder::new(Some(&e.task), process),
                        netns: e.task.netns.unwrap_or(0),
                        owner_exited: false,
                    };
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

    /// Removes the listeners of portwatch's namespace that sock_diag (`present`) no longer
    /// lists; returns them with their ends. Those of other namespaces are left alone.
    pub fn reconcile(&mut self, present: &FxHashSet<u64>, now_ns: u64) -> Vec<(u64, Live, Ended)> {
        self.check_due = false;
        let own = self.own_netns;
        let gone: Vec<u64> = self
            .by_inode
            .iter()
            .filter(|(i, l)| own != 0 && l.netns == own && !present.contains(i))
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
mod tests {
    use super::*;

    fn live(proto: Proto, addr: &str, pid: u32, exe: &str, since_ns: u64) -> Live {
        Live {
            proto,
            bound: Bound {
                local: addr.parse().unwrap(),
                v6only: None,
            },
            since_ns,
            from_snapshot: false,
            accepted: 0,
            owner: Holder {
                pid,
                exe: Some(exe.into()),
                ..Holder::default()
            },
            netns: NETNS,
            owner_exited: false,
        }
    }

    const NETNS: u32 = 4026531840;

    #[test]
    fn lifetime_and_accepted_connections() {
        let mut t = ListenerTable::default();
        t.insert(
            7,
            live(
                Proto::Tcp,
                "0.0.0.0:80",
                1,
                "/usr/sbin/nginx",
                1_000_000_000,
            ),
        );
        t.accepted(7);
        t.accepted(7);
        t.accepted(8); // another socket: ignored
        let (_, ended) = t.close(7, 3_500_000_000).unwrap();
        assert_eq!(ended.lifetime_s, 2.5);
        assert_eq!(ended.accepted, Some(2));
        assert!(t.close(7, 4_000_000_000).is_none(), "closed once");
    }

    #[test]
    fn names_other_programs_on_the_same_port() {
        let mut t = ListenerTable::default();
        t.insert(1, live(Proto::Tcp, "0.0.0.0:8080", 10, "/usr/bin/app", 0));
        t.insert(2, live(Proto::Tcp, "[::]:8081", 11, "/usr/bin/other", 0));
        t.insert(3, live(Proto::Udp, "0.0.0.0:8080", 12, "/usr/bin/dns", 0));
        let local = Bound {
            local: "127.0.0.1:8080".parse().unwrap(),
            v6only: None,
        };
        let same_exe = t.neighbours(9, Proto::Tcp, local, Some("/usr/bin/app"));
        assert!(
            same_exe.is_empty(),
            "SO_REUSEPORT workers of one program are not flagged"
        );
        let other = t.neighbours(9, Proto::Tcp, local, Some("/tmp/intruder"));
        assert_eq!(
            other,
            vec![Neighbour {
                pid: 10,
                exe: Some("/usr/bin/app".into())
            }]
        );
    }

    /// The table and the inventory agree on overlap: a v6-only `::` socket does not take IPv4,
    /// so an IPv4 listener on its port shares nothing with it (the table once assumed every
    /// `::` socket was dual-stack).
    #[test]
    fn a_v6only_wildcard_does_not_overlap_ipv4() {
        let mut t = ListenerTable::default();
        let mut v6 = live(Proto::Tcp, "[::]:80", 10, "/usr/sbin/web6", 0);
        v6.bound.v6only = Some(true);
        t.insert(1, v6);
        let ipv4 = |a: &str| Bound {
            local: a.parse().unwrap(),
            v6only: None,
        };
        assert!(
            t.neighbours(2, Proto::Tcp, ipv4("127.0.0.1:80"), Some("/x"))
                .is_empty()
        );
        assert_eq!(
            t.neighbours(2, Proto::Tcp, ipv4("[::1]:80"), Some("/x"))
                .len(),
            1
        );
        t.insert(3, live(Proto::Tcp, "[::]:81", 11, "/usr/sbin/dual", 0));
        assert_eq!(
            t.neighbours(4, Proto::Tcp, ipv4("127.0.0.1:81"), Some("/x"))
                .len(),
            1,
            "v6only unknown: dual-stack, the Linux default"
        );
    }

    #[test]
    fn udp_sockets_that_left_with_their_owner_are_closed() {
        let mut t = ListenerTable::new(NETNS, false);
        t.insert(1, live(Proto::Udp, "0.0.0.0:53", 10, "/usr/sbin/dnsd", 0));
        t.insert(2, live(Proto::Udp, "0.0.0.0:54", 11, "/usr/sbin/other", 0));
        t.owner_exited(99);
        assert!(!t.check_due());
        t.owner_exited(10);
        assert!(t.check_due());
        let gone = t.reconcile(&FxHashSet::from_iter([2]), 1_000_000_000);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, 1);
        assert!(gone[0].1.owner_exited);
        assert_eq!(t.len(), 1);
        assert!(!t.check_due());
    }

    /// With the kernel reporting UDP closes, an exit needs no check; a lost close does, and
    /// the close record that arrives after the check is known as a duplicate.
    #[test]
    fn a_check_after_lost_closes_and_the_late_close_record() {
        let mut t = ListenerTable::new(NETNS, true);
        t.insert(1, live(Proto::Tcp, "0.0.0.0:80", 10, "/usr/sbin/web", 0));
        t.owner_exited(10);
        assert!(!t.check_due());
        t.closes_lost();
        assert!(t.check_due());
        let gone = t.reconcile(&FxHashSet::default(), 1);
        assert_eq!(gone.len(), 1);
        assert!(!gone[0].1.owner_exited);
        let close = crate::testkit::socket_event(SockKind::Close, 1);
        let update = t.apply(&close, &ProcessContext::default(), true);
        assert!(update.already_closed);
        let update = t.apply(&close, &ProcessContext::default(), true);
        assert!(!update.already_closed, "only once");
    }

    /// Sockets of other namespaces are not in portwatch's sock_diag view: never checked away.
    #[test]
    fn the_check_leaves_other_namespaces_alone() {
        let mut t = ListenerTable::new(NETNS, true);
        let mut other = live(Proto::Udp, "0.0.0.0:53", 10, "/usr/sbin/dnsd", 0);
        other.netns = NETNS + 1;
        t.insert(1, other);
        assert!(t.reconcile(&FxHashSet::default(), 1).is_empty());
        assert_eq!(t.len(), 1);
    }

    /// No table grows with the sockets ever seen: once it has doubled since the last check,
    /// one is due, so stale entries never exceed the live ones.
    #[test]
    fn growth_makes_a_check_due() {
        let mut t = ListenerTable::new(NETNS, true);
        for i in 0..CHECK_MIN as u64 {
            t.insert(i, live(Proto::Udp, "0.0.0.0:53", 10, "/x", 0));
        }
        assert!(!t.check_due());
        t.insert(
            CHECK_MIN as u64,
            live(Proto::Udp, "0.0.0.0:53", 10, "/x", 0),
        );
        assert!(t.check_due());
        let present: FxHashSet<u64> = (0..10).collect();
        assert_eq!(t.reconcile(&present, 1).len(), CHECK_MIN + 1 - 10);
        assert_eq!(t.len(), 10);
    }
}
