//! What was lost or damaged on the way from the kernel, counted per kind.
use serde::Serialize;

/// Per-kind counts (exec and exit are the process-tracking records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub bind: u64,
    pub listen: u64,
    pub accept: u64,
    pub close: u64,
    pub exec: u64,
    pub exit: u64,
}

impl KindCounts {
    /// From counts in `EventKind::ALL` order.
    pub fn from_array(a: [u64; 6]) -> Self {
        let [bind, listen, accept, close, exec, exit] = a;
        Self {
            bind,
            listen,
            accept,
            close,
            exec,
            exit,
        }
    }

    pub const fn total(&self) -> u64 {
        self.bind + self.listen + self.accept + self.close + self.exec + self.exit
    }
}

/// Listener births the kernel shed because their process passed the flood limit (`flood`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShedCounts {
    pub bind: u64,
    pub listen: u64,
}

impl ShedCounts {
    pub const fn total(&self) -> u64 {
        self.bind + self.listen
    }
}

/// Everything counted as lost or damaged since start-up (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LossCounts {
    /// Events that never reached userspace or could not be decoded.
    pub lost_total: u64,
    /// Events dropped in the kernel because the ring buffer was full.
    pub ring_buffer_full: KindCounts,
    /// Syscalls whose arguments could not be stored (in-flight table full): their event is lost.
    pub in_flight_table_full: KindCounts,
    /// Listener births shed in the kernel, their processes named by `flood` records. Part of
    /// `lost_total`: each has a number in the stream's `seq`.
    pub shed: ShedCounts,
    /// Records that reached userspace but could not be decoded.
    pub decode_errors: u64,
    /// Records numbered but not written to this stream's sink: its reader stopped reading and
    /// its queue was full (`output::sink::Queued`), or its destination failed (a full disk).
    /// Part of `lost_total`: their numbers are gaps too.
    pub output_dropped: u64,
    /// Events sent without their socket fields because the kernel could not read the socket.
    pub socket_read_errors: u64,
    /// Records sent without parent, start time and namespace because the task was unreadable.
    pub task_read_errors: u64,
    /// Forks whose parent the kernel could not remember (its table of live tasks was full):
    /// such a process, reparented before its first record, names its new parent instead.
    pub fork_table_full: u64,
}

impl LossCounts {
    /// `lost_total` before the output: everything counted lost on the way from the kernel.
    pub const fn kernel_lost(&self) -> u64 {
        self.ring_buffer_full.total()
            + self.in_flight_table_full.total()
            + self.shed.total()
            + self.decode_errors
    }

    /// Whether a listener birth may have been lost since `before`: then the listeners are
    /// listed again (`stream::reconcile`).
    pub fn births_lost_since(&self, before: &Self) -> bool {
        let births = |c: &Self| {
            c.ring_buffer_full.bind
                + c.ring_buffer_full.listen
                + c.in_flight_table_full.bind
                + c.in_flight_table_full.listen
                + c.shed.total()
                + c.decode_errors
        };
        births(self) > births(before)
    }

    /// These counts for a sink that dropped `n` records.
    pub const fn with_output_dropped(mut self, n: u64) -> Self {
        self.lost_total = self.lost_total.saturating_sub(self.output_dropped) + n;
        self.output_dropped = n;
        self
    }
}
