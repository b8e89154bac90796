//! Listeners found by listing the host's sockets rather than by their listen or bind record:
//! the start-up snapshot (every listener that existed before the hooks attached, then the
//! completion marker) and reconciliation after a loss (`reconcile`). Each is reported once as a
//! `listener` record, judged like a new one (baseline, detections, firewall), and from then on
//! watched like one the stream saw being made.
use super::Stream;
use crate::{
    clock::Clock,
    enrich,
    error::Result,
    judge::{Judge, NewListener, Who},
    model::{
        listener::{Holder, Listener},
        process::{Identity, ListenerOwner},
        verdict::Verdicts,
    },
    output::{
        record::{Record, SnapshotRecord, SocketRecord},
        sink::Sink,
    },
};

impl<S: Sink> Stream<S> {
    /// Reports the listeners that existed at start-up, then the completion marker.
    pub fn snapshot(&mut self, listeners: &[Listener], clock: &Clock) -> Result<()> {
        let mut reported = 0;
        for l in listeners {
            reported += usize::from(self.report_listed(l, None, clock)?);
        }
        self.out.write(&Record::SnapshotComplete(SnapshotRecord {
            time: clock.stamp_now(),
            listeners: reported,
        }))?;
        self.out.flush()
    }

    /// Reports listener `l`, found by listing, with `reason` (None: the start-up snapshot), unless
    /// the filters leave it out; false then. Either way the listing's sockets are known from
    /// now on: its live listen or bind record, if still queued, is not reported again.
    pub(super) fn report_listed(
        &mut self,
        l: &Listener,
        reason: Option<&'static str>,
        clock: &Clock,
    ) -> Result<bool> {
        let s = &l.socket;
        self.known.already_reported.insert(s.inode);
        let owner = self.enricher.listener_owner(l, clock);
        if !self.filters.allows_listener(l, &owner) {
            return Ok(false);
        }
        if let Some(udp) = &mut self.known.udp_closes {
            udp.track(&[s]);
        }
        let now = clock.boot_now();
        // One the table knows (its record was dropped on the way out) keeps its history.
        if self.known.listeners.get(s.inode).is_none() {
            let holder = Holder::new(owner.task.as_ref(), &owner.process);
            self.known.listeners.insert_snapshot(s, holder, now);
        }
        let mut r = SocketRecord::listed(l, &owner, clock.timestamp(now));
        r.reason = reason;
        let identity = owner
            .task
            .as_ref()
            .map(|t| self.enricher.identity(t.pid, &owner.process, None));
        r.judged(judge_listed(&mut self.judge, l, &owner, identity));
        self.out.write(&Record::Listener(r))?;
        Ok(true)
    }
}

/// The verdicts on listener `l`, found by listing and held by `owner` (its capabilities read
/// only when a rule needs them), whose executable is `identity`: the snapshot's, a
/// reconciliation's and `ls`'s.
pub fn judge_listed(
    judge: &mut Judge,
    l: &Listener,
    owner: &ListenerOwner,
    identity: Option<&Identity>,
) -> Verdicts {
    let caps = judge
        .needs_caps()
        .then(|| enrich::listed_capabilities(l, owner))
        .flatten();
    judge.new_listener(&NewListener::listed(l), &Who::owner(owner, caps, identity))
}
