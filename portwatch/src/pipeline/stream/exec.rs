//! `exec` records: a program started with IP sockets as its standard streams (read by the exec
//! hook). The first program on a socket carries the `socket-stdio` finding; what runs after it
//! on the same socket (a reverse shell's commands) is reported too, naming that first
//! program's pid as its `session`, and raises the alarm again only when it is worse.
use super::Stream;
use crate::{
    clock::Clock,
    error::Result,
    judge::Who,
    model::{socket::StdioSocket, task::ExecRecord},
    output::{
        record::{Record, SocketRecord},
        sink::Sink,
    },
};

impl<S: Sink> Stream<S> {
    /// The `exec` record of `e` (none while the `socket-stdio` rule is off).
    pub(super) fn exec_on_sockets(
        &mut self,
        e: &ExecRecord,
        stdio: &StdioSocket,
        clock: &Clock,
    ) -> Result<()> {
        if !self.judge.judges_stdio() {
            return Ok(());
        }
        let ports: Vec<u16> = stdio
            .socket
            .iter()
            .flat_map(|s| std::iter::once(s.local).chain(s.remote))
            .map(|a| a.port())
            .collect();
        let process = self.enricher.context(&e.task, clock);
        if !self.filters.allows(&process) || !self.filters.allows_ports(&ports) {
            return Ok(());
        }
        let identity = self
            .enricher
            .identity(e.task.pid, &process, e.task.running.exe_ino);
        let who = Who {
            pid: e.task.pid,
            holder: None,
            uid: Some(e.task.uid),
            comm: e.task.comm.text(),
            process: &process,
            caps: None,
            identity: Some(identity),
        };
        let found = self.judge.exec(stdio, &who).detections;
        let mut record = SocketRecord::exec(e, stdio, process, clock);
        if let Some(inode) = stdio.inode {
            record.session = self.known.stdio_sessions.started(inode, e.task.pid);
            let worst = found.iter().map(|d| d.severity).max();
            if self.known.stdio_sessions.raises(inode, worst) {
                record.detections = found;
            }
        } else {
            record.detections = found;
        }
        self.out.write(&Record::Exec(record))
    }
}
