//! Indices into the per-CPU `COUNTERS` array.
use crate::EventKind;

/// Slots per event kind in each per-kind range (kind values are 1..=KIND_SLOTS).
pub const KIND_SLOTS: u32 = 8;
/// Ring buffer full: one slot per event kind (`LOST_BASE + kind - 1`).
pub const LOST_BASE: u32 = 0;
/// Enter hook could not store its in-flight syscall (map full): the exit event is lost.
pub const PENDING_FULL_BASE: u32 = KIND_SLOTS;
/// Reading a socket failed; the event was sent without the socket fields.
pub const SOCK_READ_FAILED: u32 = 2 * KIND_SLOTS;
/// Reading the task failed; the event was sent without parent, start time or netns.
pub const TASK_READ_FAILED: u32 = 2 * KIND_SLOTS + 1;
/// A fork whose parent could not be remembered (`FORK_PARENT` full): if that process is
/// reparented, its records name the new parent.
pub const FORK_PARENT_FULL: u32 = 2 * KIND_SLOTS + 2;
/// A listener birth shed because its process passed the flood limit (`flood`): one slot per
/// event kind, only bind and listen used.
pub const SHED_BASE: u32 = 2 * KIND_SLOTS + 3;
pub const COUNT: u32 = 3 * KIND_SLOTS + 3;

pub const fn lost(kind: EventKind) -> u32 {
    LOST_BASE + kind as u32 - 1
}
pub const fn pending_full(kind: EventKind) -> u32 {
    PENDING_FULL_BASE + kind as u32 - 1
}
pub const fn shed(kind: EventKind) -> u32 {
    SHED_BASE + kind as u32 - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_slots_are_distinct_and_in_range() {
        let mut slots = [0u32; 21];
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            slots[i] = lost(kind);
            slots[6 + i] = pending_full(kind);
            slots[15 + i] = shed(kind);
        }
        slots[12] = SOCK_READ_FAILED;
        slots[13] = TASK_READ_FAILED;
        slots[14] = FORK_PARENT_FULL;
        for (i, a) in slots.iter().enumerate() {
            assert!(*a < COUNT);
            assert!(slots[i + 1..].iter().all(|b| b != a), "slot {a} used twice");
        }
    }
}
