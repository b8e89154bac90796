//! Reconciliation: after any loss that could have hidden a listener's birth (a full ring buffer
//! or in-flight table, births shed by the flood limit, a decode error, a birth an output's queue
//! dropped), the host's sockets are listed again, every namespace, and each listening TCP or
//! bound UDP socket the stream does not know is reported as a `listener` record with
//! `reason: "listen not seen"` and its owner, within a second of the loss; one whose record an
//! output dropped, `"listen not delivered"` (the outputs that took the first get it twice).
//! A listener whose birth was lost and that closes before the next listing is only counted.
use rustc_hash::FxHashSet;

use super::Stream;
use crate::{
    clock::Clock,
    error::{Error, Result},
    model::net::Proto,
    output::sink::Sink,
    state::inventory,
};
use portwatch_common::EventKind;

/// Listings at least this far apart (boot-clock ns): two a second while losses go on.
const GAP_NS: u64 = 500_000_000;

/// Sockets remembered in `seen` before a listing is due to prune it.
const SEEN_MAX: usize = 1 << 16;

/// The `reason` of a listener the stream never saw made, and of one whose record an output
/// dropped.
pub const NOT_SEEN: &str = "listen not seen";
pub const NOT_DELIVERED: &str = "listen not delivered";

#[derive(Default)]
pub struct Reconciler {
    due_ns: Option<u64>,
    last_ns: u64,
    /// Births the stream reported that the listener table does not keep (closes not traced,
    /// or left out by the filters), so a listing does not report them again.
    pub seen: FxHashSet<u64>,
    /// Listeners whose listen, bind or listener record an output dropped: reported again while
    /// they live.
    undelivered: FxHashSet<u64>,
    /// More were dropped than remembered: every live listener is reported again.
    undelivered_overflow: bool,
}

impl Reconciler {
    /// Something was lost at `now_ns` that may have been a birth: list again soon.
    pub fn loss(&mut self, now_ns: u64) {
        if self.due_ns.is_none() {
            self.due_ns = Some(now_ns.max(self.last_ns + GAP_NS));
        }
    }

    /// When the next listing is due (boot-clock ns).
    pub fn due_ns(&self) -> Option<u64> {
        self.due_ns
    }

    /// A birth the stream reported and keeps nowhere else.
    pub fn saw(&mut self, inode: u64, now_ns: u64) {
        self.seen.insert(inode);
        if self.seen.len() > SEEN_MAX {
            self.loss(now_ns);
        }
    }
}

impl<S: Sink> Stream<S> {
    /// Lists the sockets again if a loss made it due; reports what the stream missed.
    pub(super) fn reconcile_if_due(&mut self, clock: &Clock) -> Result<()> {
        let now = clock.boot_now();
        let undelivered = self.out.undelivered();
        if !undelivered.births.is_empty() || undelivered.overflow {
            self.known.reconciler.undelivered.extend(undelivered.births);
            self.known.reconciler.undelivered_overflow |= undelivered.overflow;
            self.known.reconciler.loss(now);
        }
        if self.known.reconciler.due_ns.is_none_or(|due| due > now) {
            return Ok(());
        }
        self.known.reconciler.due_ns = None;
        self.known.reconciler.last_ns = now;
        let (sockets, present) = self
            .known
            .sockets
            .listed()
            .map_err(|e| Error::io("listing sockets with sock_diag", e))?;
        let wanted = |p: Proto| match p {
            Proto::Tcp => self.filters.selects(EventKind::Listen),
            Proto::Udp => self.filters.selects(EventKind::Bind),
        };
        let r = &mut self.known.reconciler;
        let mut missing = rustc_hash::FxHashMap::default();
        for s in sockets.iter().filter(|s| wanted(s.proto)) {
            let known = self.known.listeners.get(s.inode).is_some()
                || self.known.already_reported.contains(&s.inode)
                || r.seen.contains(&s.inode);
            if !known {
                missing.insert(s.inode, NOT_SEEN);
            } else if r.undelivered_overflow || r.undelivered.contains(&s.inode) {
                missing.insert(s.inode, NOT_DELIVERED);
            }
        }
        r.undelivered_overflow = false;
        if present.unlisted == 0 {
            // What is gone is not looked for again.
            let listed = |i: &u64| present.inodes.contains(i);
            r.seen.retain(listed);
            r.undelivered.clear();
            self.known.already_reported.retain(listed);
        } else {
            // A namespace could not be listed: its sockets may still live; only those found
            // are settled.
            r.undelivered.retain(|i| !present.inodes.contains(i));
        }
        if missing.is_empty() {
            return Ok(());
        }
        let owners = self.known.sockets.owners();
        for l in inventory::assemble(sockets, owners) {
            if let Some(&reason) = missing.get(&l.socket.inode) {
                self.report_listed(&l, Some(reason), clock)?;
            }
        }
        Ok(())
    }
}
