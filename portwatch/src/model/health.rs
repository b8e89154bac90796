//! How a listener is doing at one moment, from sock_diag: what waits in its queue, the
//! connections on its address and port by state, and what the kernel dropped on it.
use serde::Serialize;

/// A listener's health. TCP listeners have the accept queue and the connection counts; UDP
/// sockets the receive queue; both the drops, when the kernel reports its socket memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// TCP: connections handshaken and waiting for accept(2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_queue: Option<u32>,
    /// TCP: the most the accept queue holds (listen's backlog, capped by net.core.somaxconn);
    /// the kernel lets it reach one more before it drops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_queue_max: Option<u32>,
    /// UDP: bytes received and not yet read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_queue: Option<u32>,
    /// TCP: connections on the listener's address and port, by state (those in the accept
    /// queue included; a SO_REUSEPORT group's members each count the group's).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Connections>,
    /// What the socket dropped since it was made (sk_drops): for a TCP listener, connection
    /// attempts lost to a full accept queue (or to memory); for UDP, datagrams lost to a full
    /// receive buffer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drops: Option<u64>,
    /// `watch --stats`: drops since the previous stats record (the first record: since the
    /// listener was made, when portwatch saw it made, else since portwatch first saw it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_drops: Option<u64>,
}

/// TCP connections by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Connections {
    pub established: u32,
    /// The peer has closed and the program has not: a pile that only grows is a leak.
    pub close_wait: u32,
    /// Handshakes under way (SYN received, no ACK yet).
    pub syn_recv: u32,
}

impl Connections {
    pub fn add(&mut self, other: Self) {
        self.established += other.established;
        self.close_wait += other.close_wait;
        self.syn_recv += other.syn_recv;
    }
}

/// A CLOSE_WAIT count that has risen at `rises` checks in a row (equal counts between them do
/// not break the run; a fall does), from `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rising {
    pub rises: u32,
    pub from: u32,
}
