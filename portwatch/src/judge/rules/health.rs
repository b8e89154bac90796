//! The rules on a listener's health (`watch --stats`): connection attempts dropped because its
//! accept queue was full, and a CLOSE_WAIT count that keeps rising. Both say how a service fails
//! quietly; an overflow is also what a SYN or connection flood looks like from the inside.
use super::{
    Findings, Severity, Subject,
    table::{ACCEPT_QUEUE_OVERFLOW, CLOSE_WAIT_GROWING},
    who,
};
use crate::model::health::{Health, Rising};

/// CLOSE_WAIT must have risen at this many checks in a row (without falling) to be a finding;
/// it is reported once per run.
pub const CLOSE_WAIT_RISES: u32 = 3;

pub(super) fn judge(s: &Subject, h: &Health, close_wait: Option<Rising>, f: &mut Findings) {
    let who = who(s);
    if let (Some(new), Some(max)) = (h.new_drops, h.accept_queue_max) {
        if new > 0 {
            f.add(
                &ACCEPT_QUEUE_OVERFLOW,
                Severity::Medium,
                "T1499.002",
                format!(
                    "{who} {} dropped {new} connection attempt{} since the last check, accept queue {}/{max}: it does not accept(2) as fast as connections come (a stalled program, or a SYN or connection flood)",
                    s.doing,
                    if new == 1 { "" } else { "s" },
                    h.accept_queue.unwrap_or(0),
                ),
            );
        }
    }
    if let (Some(run), Some(c)) = (close_wait, h.connections) {
        if run.rises == CLOSE_WAIT_RISES {
            f.add_finding(
                &CLOSE_WAIT_GROWING,
                Severity::Medium,
                None,
                format!(
                    "{who} {} has {} connections in CLOSE_WAIT, up from {} over {} checks without a fall: its peers closed and it keeps the sockets open (a descriptor leak)",
                    s.doing, c.close_wait, run.from, run.rises
                ),
            );
        }
    }
}
