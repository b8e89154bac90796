//! A socket event as the kernel reported it, decoded: the kind, the task, the socket's
//! addresses and the result.
use std::net::SocketAddr;

use portwatch_common::EventKind;

use super::task::Task;

/// What the socket looked like when the event happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u16,
    pub sock_type: u16,
    pub local: SocketAddr,
    /// The peer, for accepted connections.
    pub remote: Option<SocketAddr>,
}

/// A program started with IP sockets as standard streams: a bind or reverse shell, or a
/// service an inetd-style supervisor started for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdioSocket {
    /// Bit N: descriptor N (0 stdin, 1 stdout, 2 stderr) is one.
    pub fds: u8,
    /// The lowest of them, when it could be read; `remote` when it is connected.
    pub socket: Option<SocketInfo>,
    pub inode: Option<u64>,
}

impl StdioSocket {
    pub const STREAMS: [&'static str; 3] = ["stdin", "stdout", "stderr"];

    /// The streams that are sockets, by name.
    pub fn streams(&self) -> impl Iterator<Item = &'static str> + '_ {
        Self::STREAMS
            .into_iter()
            .enumerate()
            .filter(|(i, _)| self.fds & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

/// `bind, listen, accept, close`: the socket event kinds by name, as `--events` takes them.
pub fn socket_kind_names() -> String {
    EventKind::SOCKET.map(EventKind::name).join(", ")
}

/// How a call reached the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Via {
    /// A syscall (or a path the kernel-function hooks cannot tell).
    #[default]
    Syscall,
    /// An io_uring request, run by `thread`.
    IoUring(IoThread),
}

/// The thread that ran an io_uring request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoThread {
    /// The thread that submitted it, inside io_uring_enter(2).
    Submitter,
    /// The ring's SQPOLL thread (`iou-sqp-PID`).
    Sqpoll,
    /// One of io_uring's workers (`iou-wrk-PID`).
    Worker,
}

impl Via {
    /// From the kernel's `VIA_*` value; None for one this daemon does not know.
    pub fn from_kernel(v: u8) -> Option<Self> {
        use portwatch_common::{
            VIA_IO_URING, VIA_IO_URING_SQPOLL, VIA_IO_URING_WORKER, VIA_SYSCALL,
        };
        Some(match v {
            VIA_SYSCALL => Self::Syscall,
            VIA_IO_URING => Self::IoUring(IoThread::Submitter),
            VIA_IO_URING_SQPOLL => Self::IoUring(IoThread::Sqpoll),
            VIA_IO_URING_WORKER => Self::IoUring(IoThread::Worker),
            _ => return None,
        })
    }
}

impl IoThread {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Submitter => "submitter",
            Self::Sqpoll => "sqpoll",
            Self::Worker => "worker",
        }
    }
}

/// The socket event kinds (the kernel's record kinds minus process tracking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockKind {
    Bind,
    Listen,
    Accept,
    Close,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketEvent {
    pub kind: SockKind,
    pub task: Task,
    pub fd: Option<i32>,
    /// 0 on success, else the positive errno.
    pub errno: i32,
    pub backlog: Option<u32>,
    /// None when the kernel could not read the socket (see the `socket_read_errors` counter).
    pub socket: Option<SocketInfo>,
    /// The address passed to bind(2).
    pub requested: Option<SocketAddr>,
    /// The socket's inode (as in /proc/PID/fd), when known.
    pub inode: Option<u64>,
    /// accept: the listening socket's inode, when known.
    pub listener_inode: Option<u64>,
    pub via: Via,
}

impl SockKind {
    pub const fn event_kind(self) -> EventKind {
        match self {
            Self::Bind => EventKind::Bind,
            Self::Listen => EventKind::Listen,
            Self::Accept => EventKind::Accept,
            Self::Close => EventKind::Close,
        }
    }
}

impl SocketEvent {
    /// Whether it made a listener (`portwatch_common::is_birth`).
    pub fn is_birth(&self) -> bool {
        let protocol = self.socket.as_ref().map(|s| s.protocol);
        portwatch_common::is_birth(self.kind.event_kind(), self.errno, protocol)
    }

    /// The address the event is about: the socket's own, except for a bind that failed or
    /// whose socket could not be read, which bound nothing: the address it asked for.
    pub fn shown(&self) -> Option<SocketAddr> {
        match (&self.socket, self.requested) {
            (_, Some(asked)) if self.errno != 0 || self.socket.is_none() => Some(asked),
            (Some(s), _) => Some(s.local),
            (None, asked) => asked,
        }
    }
}
