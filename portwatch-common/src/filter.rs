//! The filters the kernel applies, as the daemon configures them before load.
use crate::EventKind;

pub const PIDS: u32 = 1 << 0;
pub const UIDS: u32 = 1 << 1;
pub const CGROUPS: u32 = 1 << 2;
pub const NETNS: u32 = 1 << 3;
pub const PORTS: u32 = 1 << 4;
/// Entries per filter map.
pub const MAX_ENTRIES: u32 = 1024;

/// Which filters the kernel applies, set by the daemon before load. A set bit in `active` means
/// "only what is in the matching FILTER_* map"; `kinds` has bit `1 << kind` for each socket event
/// kind to report (process-tracking records are never filtered by kind).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    pub active: u32,
    pub kinds: u32,
    /// portwatch's own tgid: its activity is never reported.
    pub self_tgid: u32,
    pub _pad: u32,
}

impl FilterConfig {
    /// Whether `--events` selected `kind`.
    #[inline(always)]
    pub const fn selects(&self, kind: EventKind) -> bool {
        self.kinds & (1 << kind as u32) != 0
    }

    /// The rule of every value filter, in the kernel and for the snapshot alike: an inactive
    /// filter (`filter::*` bit clear) lets everything through, an active one only what is
    /// `listed`.
    #[inline(always)]
    pub fn passes(&self, filter: u32, listed: impl FnOnce() -> bool) -> bool {
        self.active & filter == 0 || listed()
    }
}
