//! What the record stream (`pipeline`) reads from, as small traits: the kernel's ring buffer and counters,
//! and the sockets sock_diag lists. The daemon backs them with aya maps and netlink; tests back
//! them with byte vectors and fixed numbers, so the stream's rules run without a kernel.
use std::{collections::VecDeque, io, ops::Deref};

use rustc_hash::FxHashSet;

use crate::{error::Result, model::loss::LossCounts};

/// Kernel records, oldest first, each as the bytes the kernel wrote.
pub trait RecordSource {
    type Item<'a>: Deref<Target = [u8]>
    where
        Self: 'a;

    /// The next record, or None when none is waiting.
    fn next_record(&mut self) -> Option<Self::Item<'_>>;
}

/// Recorded or hand-made records (tests, replays).
impl RecordSource for VecDeque<Vec<u8>> {
    type Item<'a> = Vec<u8>;

    fn next_record(&mut self) -> Option<Vec<u8>> {
        self.pop_front()
    }
}

/// The kernel's loss and error counters.
pub trait Counters {
    /// Exec records lost so far (the process table must then stop trusting fork inheritance).
    fn exec_lost(&self) -> Result<u64>;
    /// Every loss count, with the daemon's own `decode_errors` added in.
    fn read(&self, decode_errors: u64) -> Result<LossCounts>;
    /// The processes whose listener births the kernel tracks for the flood limit, by pid.
    fn floods(&self) -> Result<Vec<(u32, portwatch_common::FloodState)>> {
        Ok(Vec::new())
    }
}

/// The listening and bound sockets that exist now, by inode, and the network namespaces that
/// were listed: what the listener table's checks compare it with.
pub trait Sockets {
    fn present(&mut self) -> io::Result<Present>;
    /// Every listening TCP and bound UDP socket of every namespace, and which were listed.
    fn listed(&mut self) -> io::Result<(Vec<crate::model::listener::BoundSocket>, Present)> {
        Ok((Vec::new(), self.present()?))
    }
    /// The processes holding each socket (inode → pids), from /proc.
    fn owners(&mut self) -> std::collections::HashMap<u64, Vec<u32>> {
        std::collections::HashMap::new()
    }
    /// Every listener with its health, connections counted (`watch --stats`), and the
    /// namespaces that could not be listed.
    fn health(&mut self) -> io::Result<(Vec<crate::model::listener::BoundSocket>, Unlisted)> {
        Ok((Vec::new(), Vec::new()))
    }
}

/// The kernel's table of bound UDP sockets whose close it reports: sockets found by listing
/// (the snapshot, reconciliation) are added to it, as a bind would have.
pub trait UdpCloses {
    fn track(&mut self, sockets: &[&crate::model::listener::BoundSocket]);
}

/// Network namespaces that could not be listed (by inode), each with the reason.
pub type Unlisted = Vec<(u32, io::Error)>;

#[derive(Debug, Default)]
pub struct Present {
    pub inodes: FxHashSet<u64>,
    /// The namespaces (inodes) whose sockets are all in `inodes`.
    pub namespaces: FxHashSet<u32>,
    /// Namespaces that could not be listed (their sockets are not in `inodes`).
    pub unlisted: usize,
}
