//! What the unit tests feed the daemon's parts instead of a kernel and a host: counters and
//! sockets the test sets, an output it can read back, `watch` filters parsed from flags, and
//! listeners with the owner a test gives them.
use std::{cell::Cell, cell::RefCell, io, rc::Rc};

use clap::Parser as _;

use crate::{
    cli::{Cli, Command},
    error::Result,
    filter::Filters,
    model::source::{Counters, Present, Sockets},
    model::{
        listener::{BoundSocket, Listener},
        loss::LossCounts,
        net::{Proto, Scope},
        process::{ListenerOwner, Process, ProcessContext},
        socket::{SockKind, SocketEvent},
        task::Task,
    },
};

/// Loss counters the test sets, and the kernel's table of flooding processes.
#[derive(Clone, Default)]
pub struct FixedCounters(
    pub Rc<Cell<LossCounts>>,
    pub Rc<RefCell<Vec<(u32, portwatch_common::FloodState)>>>,
);

impl Counters for FixedCounters {
    fn exec_lost(&self) -> Result<u64> {
        Ok(self.0.get().ring_buffer_full.exec)
    }

    fn read(&self, decode_errors: u64) -> Result<LossCounts> {
        let mut c = self.0.get();
        c.decode_errors = decode_errors;
        c.lost_total = c.kernel_lost();
        Ok(c)
    }

    fn floods(&self) -> Result<Vec<(u32, portwatch_common::FloodState)>> {
        Ok(self.1.borrow().clone())
    }
}

/// The sockets that sock_diag would list (bare inodes, and listeners with their owners),
/// changeable while the stream runs.
#[derive(Clone, Default)]
pub struct FixedSockets(pub Rc<RefCell<Vec<u64>>>, pub Rc<RefCell<Vec<Listener>>>);

impl FixedSockets {
    pub fn new(inodes: &[u64]) -> Self {
        Self(Rc::new(RefCell::new(inodes.to_vec())), Rc::default())
    }
}

impl Sockets for FixedSockets {
    fn present(&mut self) -> io::Result<Present> {
        let listed = self.1.borrow();
        Ok(Present {
            inodes: self
                .0
                .borrow()
                .iter()
                .copied()
                .chain(listed.iter().map(|l| l.socket.inode))
                .collect(),
            namespaces: [NETNS].into_iter().collect(),
            unlisted: 0,
        })
    }

    fn listed(&mut self) -> io::Result<(Vec<BoundSocket>, Present)> {
        let sockets = self.1.borrow().iter().map(|l| l.socket.clone()).collect();
        Ok((sockets, self.present()?))
    }

    fn owners(&mut self) -> std::collections::HashMap<u64, Vec<u32>> {
        self.1
            .borrow()
            .iter()
            .map(|l| (l.socket.inode, l.owners.clone()))
            .collect()
    }

    fn health(&mut self) -> io::Result<(Vec<BoundSocket>, crate::model::source::Unlisted)> {
        let sockets = self.1.borrow().iter().map(|l| l.socket.clone()).collect();
        Ok((sockets, Vec::new()))
    }
}

/// The one network namespace of the test stream's records, the daemon's own.
pub const NETNS: u32 = 4_026_531_840;

/// An output the test reads back while the stream still holds it.
pub type SharedSink = crate::output::sink::Memory;

/// Every line written to `sink` so far, parsed.
pub fn records(sink: &SharedSink) -> Vec<serde_json::Value> {
    sink.lines()
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// The filters of `portwatch watch FLAGS...`, or the error resolving them.
pub fn try_watch_filters(flags: &[&str]) -> Result<Filters> {
    let cli = Cli::parse_from(["portwatch", "watch"].iter().chain(flags));
    let Command::Watch(args) = cli.command else {
        unreachable!("parsed a watch command")
    };
    Filters::new(args.asked())
}

/// The filters of `portwatch watch FLAGS...`.
pub fn watch_filters(flags: &[&str]) -> Filters {
    try_watch_filters(flags).unwrap()
}

/// A listener on `local` (`ADDRESS:PORT`), socket `inode`, held by `owners`.
pub fn listener(proto: Proto, local: &str, inode: u64, owners: &[u32]) -> Listener {
    let local: std::net::SocketAddr = local.parse().unwrap();
    Listener {
        socket: BoundSocket {
            cookie: 0,
            netns: NETNS,
            health: None,
            proto,
            local,
            inode,
            uid: 0,
            v6only: None,
        },
        owners: owners.to_vec(),
        scope: Scope::of(&local),
        shared: 0,
        reachability: None,
    }
}

/// A listener's owner: `task` (None: unreadable) running with `context`.
pub fn listener_owner(task: Option<Task>, context: ProcessContext) -> ListenerOwner {
    ListenerOwner {
        task,
        process: Process::new(context),
    }
}

/// A socket event of `kind` on socket `inode`, with nothing else known.
pub fn socket_event(kind: SockKind, inode: u64) -> SocketEvent {
    SocketEvent {
        kind,
        task: Task::default(),
        fd: None,
        errno: 0,
        backlog: None,
        socket: None,
        requested: None,
        inode: Some(inode),
        listener_inode: None,
        via: crate::model::socket::Via::Syscall,
    }
}
