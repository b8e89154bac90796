//! portwatch's own records, about the stream rather than a socket: start, snapshot end, loss,
//! stop, and the flood summaries that stand for births the kernel shed.
use std::sync::Arc;

use serde::Serialize;

use crate::{
    clock::Timestamp,
    model::{attach::Chosen, loss::LossCounts, process::Process},
    output::SinkDrops,
};

/// A process past the flood limit: the listener births of one kind the kernel shed for it
/// since its last `flood` record, instead of reporting each.
#[derive(Debug, Serialize)]
pub struct FloodRecord {
    /// The latest birth shed.
    pub time: Timestamp,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    /// `listen` or `bind` (UDP).
    pub kind: &'static str,
    /// Births shed since the last flood record of this process and kind.
    pub count: u64,
    /// Births of this kind shed since the process first passed the limit.
    pub total: u64,
    /// The first of the `count` births shed.
    pub since: Timestamp,
    /// Seconds from `since` to `time`.
    pub interval_s: f64,
    /// Written after the other fields (by the encoder).
    #[serde(skip)]
    pub process: Arc<Process>,
}

#[derive(Debug, Serialize)]
pub struct SnapshotRecord {
    pub time: Timestamp,
    /// Listener records in the snapshot.
    pub listeners: usize,
}

#[derive(Debug, Serialize)]
pub struct StartRecord {
    pub time: Timestamp,
    pub version: &'static str,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// portwatch's own process id.
    pub pid: u32,
    pub ring_buffer_bytes: u32,
    /// The attach type each hook got.
    pub hooks: Vec<Chosen>,
    /// The capabilities portwatch runs without, and what is lost without each.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub missing_privileges: &'static [crate::host::caps::Missing],
}

/// Counts of what was lost. `output_dropped` (and its part of `lost_total`) is the receiving
/// sink's own: `Output` fills it in for each sink.
#[derive(Clone, Debug, Serialize)]
pub struct LossRecord {
    pub time: Timestamp,
    #[serde(flatten)]
    pub counts: LossCounts,
    /// With several sinks, what each dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<SinkDrops>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StopRecord {
    pub time: Timestamp,
    /// Why portwatch stopped: the signal's name (`cmd::signals::STOPPING`).
    pub reason: &'static str,
    /// Event records the receiving sink took (`Output` fills it in).
    pub events: u64,
    #[serde(flatten)]
    pub counts: LossCounts,
    /// With several sinks, what each dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<SinkDrops>>,
}
