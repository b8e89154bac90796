//! Listeners found by listing the host's sockets rather than by their listen or bind record:
//! the start-up snapshot (every listener that existed before the hooks attached, then the
//! completion marker) and reconciliation after a loss (`reconcile`). Each is reported once as a
//! `listener` record, judged like a new one (baseline, detections, firewall), and from then on
//! watched like one the stream saw being made.
use super::{Stream, doing};
use crate::{
    clock::Clock,
    detect,
    error::Result,
    model::{
        listener::{Holder, Listener},
        net::Proto,
    },
    output::{
        record::{ListenerRecord, Record, SnapshotRecord},
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
            time: clock.format_now(),
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
        self.already_reported.insert(s.inode);
        let owner = self.enricher.listener_owner(l, clock);
        if !self.filters.allows_listener(l, &owner) {
            return Ok(false);
        }
        if let Some(udp) = &mut self.udp_closes {
            udp.track(&[s]);
        }
        let now = clock.boot_now();
        let uid = owner.task.as_ref().map(|t| t.uid);
        let alert = self.judge(s.proto, s.local, uid, &owner.process);
        // One the table knows (its record was dropped on the way out) keeps its history.
        if self.listeners.get(s.inode).is_none() {
            let holder = Holder::new(owner.task.as_ref(), &owner.process);
            self.listeners.insert_snapshot(s, holder, now);
        }
        let mut r = ListenerRecord::new(l, &owner, alert, clock.format(now));
        r.reason = reason;
        r.reachability = self.firewall.as_mut().map(|f| f.listener(l, &owner));
        let verb = if s.proto == Proto::Tcp {
            "listening on"
        } else {
            "bound to"
        };
        let doing = doing(
            verb,
            Some(s.proto.name()),
            Some(s.local.ip()),
            Some(s.local.port()),
        );
        r.detections = self.rules.judge(&detect::Subject {
            doing: &doing,
            pid: owner.task.as_ref().map_or(0, |t| t.pid),
            comm: r.comm.as_deref().unwrap_or("?"),
            exe: owner.process.exe.as_deref(),
            exe_deleted: owner.process.exe_deleted,
            exec_args: owner.process.exec_args.as_deref(),
            args: owner.process.args.as_deref(),
            uid: Some(uid.unwrap_or(s.uid)),
            port: Some(s.local.port()),
            ancestors: &owner.process.lineage,
            ..detect::Subject::default()
        });
        self.out.write(&Record::Listener(r))?;
        Ok(true)
    }
}
