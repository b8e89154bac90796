//! `listener_stats` records (`watch --stats INTERVAL`): at each interval, every listener the
//! filters let through, with its health from sock_diag (queues, connections by state, drops and
//! the drops new since the last record) and the health findings. The owner is the one the
//! listener table knows (from the listen or the start-up snapshot); no /proc scan is repeated.
use rustc_hash::FxHashSet;

use super::Stream;
use crate::{
    clock::Clock,
    error::Result,
    judge::{NewListener, Who},
    model::{
        listener::Listener,
        net::Scope,
        process::{ListenerOwner, Process, ProcessContext},
    },
    output::{
        record::{Record, SocketRecord},
        sink::Sink,
    },
};

impl<S: Sink> Stream<S> {
    /// One `listener_stats` record per listener; a sock_diag failure is said on stderr and the
    /// next interval tries again.
    pub fn stats(&mut self, clock: &Clock) -> Result<()> {
        let (sockets, failed) = match self.known.sockets.health() {
            Ok(listed) => listed,
            Err(e) => {
                eprintln!("portwatch: warning: --stats: listing sockets with sock_diag: {e}");
                return Ok(());
            }
        };
        let mut unlisted = FxHashSet::default();
        for (netns, e) in failed {
            eprintln!("portwatch: warning: --stats: network namespace {netns} not listed: {e}");
            unlisted.insert(netns);
        }
        let mut listed = FxHashSet::default();
        let time = clock.stamp_now();
        for socket in sockets {
            let inode = socket.inode;
            listed.insert(inode);
            let live = self.known.listeners.get(inode);
            let made_while_watched = live.is_some_and(|l| !l.from_snapshot);
            let owners: Vec<u32> = live
                .map(|l| l.owner.pid)
                .filter(|&p| p != 0)
                .into_iter()
                .collect();
            let l = Listener {
                scope: Scope::of(&socket.local),
                socket,
                owners,
                shared: 0,
                reachability: None,
            };
            // The owner as the table remembers it: no /proc read per listener and interval.
            let owner = live
                .and_then(|l| l.owner.owner())
                .unwrap_or_else(|| unknown_owner(&l, live.is_some()));
            if !self.filters.allows_listener(&l, &owner) {
                continue;
            }
            let mut health = l.socket.health.unwrap_or_default();
            let netns = l.socket.netns;
            let rising = self
                .known
                .trends
                .update(inode, netns, &mut health, made_while_watched);
            let mut r = SocketRecord::listed(&l, &owner, time);
            if let Some(listed) = &mut r.listed {
                listed.health = Some(health);
            }
            let who = Who::owner(&owner, None, None);
            let found = self
                .judge
                .stats(&NewListener::listed(&l), &health, rising, &who);
            r.detections = found.detections;
            self.out.write(&Record::ListenerStats(r))?;
        }
        self.known.trends.retain(&listed, &unlisted);
        self.flush()
    }
}

/// The owner of a listener the table does not know (made while closes were not traced, or
/// before a filter let its owner through), or knows without an owner (`listed`: found in the
/// snapshot with no process holding it): only its namespace, and why.
fn unknown_owner(l: &Listener, listed: bool) -> ListenerOwner {
    let mut c = ProcessContext {
        netns: (l.socket.netns != 0).then_some(l.socket.netns),
        ..ProcessContext::default()
    };
    c.gap(
        "pid",
        if listed {
            "no readable /proc/PID/fd held it when the start-up snapshot found it (kernel-owned, or its owner's descriptors are hidden from portwatch)"
        } else {
            "portwatch saw neither its listen nor it in the start-up snapshot, so its owner is not known"
        },
    );
    ListenerOwner {
        task: None,
        process: Process::new(c),
    }
}
