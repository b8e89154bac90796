//! The start-up snapshot: every listener that existed before the hooks attached, reported once
//! as a `listener` record (judged like a new one: baseline, detections, firewall), then the
//! completion marker.
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
    /// Reports the listeners that existed at start-up, then the completion marker; returns the
    /// ones the filters let through (the others are not watched either).
    pub fn snapshot<'l>(
        &mut self,
        listeners: &'l [Listener],
        clock: &Clock,
    ) -> Result<Vec<&'l Listener>> {
        let now = clock.boot_now();
        let mut reported = Vec::new();
        for l in listeners {
            let owner = self.enricher.listener_owner(l, clock);
            if !self.filters.allows_listener(l, &owner) {
                continue;
            }
            reported.push(l);
            let s = &l.socket;
            let uid = owner.task.as_ref().map(|t| t.uid);
            let alert = self.judge(s.proto, s.local, uid, &owner.process);
            self.already_reported.insert(s.inode);
            let holder = Holder::new(owner.task.as_ref(), &owner.process);
            self.listeners.insert_snapshot(s, holder, now);
            let mut r = ListenerRecord::new(l, &owner, alert, clock.format(now));
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
                args: owner.process.args.as_deref(),
                uid: Some(uid.unwrap_or(s.uid)),
                port: Some(s.local.port()),
                ancestors: &owner.process.lineage,
                ..detect::Subject::default()
            });
            self.out.write(&Record::Listener(r))?;
        }
        self.out.write(&Record::SnapshotComplete(SnapshotRecord {
            time: clock.format_now(),
            listeners: reported.len(),
        }))?;
        self.out.flush()?;
        Ok(reported)
    }
}
