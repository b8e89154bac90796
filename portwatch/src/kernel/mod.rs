//! Everything that talks to the kernel's BPF side: start-up checks, this kernel's layout,
//! loading the programs, attaching them, and reading the ring buffer and counters.
pub mod bound_udp;
pub mod btf;
pub mod cgroup_root;
pub mod counters;
pub mod diagnostics;
pub mod hooks;
pub mod layout;
pub mod loader;
pub mod preflight;

use aya::maps::{MapData, RingBuf, ring_buf::RingBufItem};

use crate::model::source::RecordSource;

impl RecordSource for RingBuf<MapData> {
    type Item<'a> = RingBufItem<'a>;

    fn next_record(&mut self) -> Option<RingBufItem<'_>> {
        self.next()
    }
}
