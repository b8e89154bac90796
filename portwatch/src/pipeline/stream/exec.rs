//! `exec` records: a program started with IP sockets as its standard streams (read by the exec
//! hook). The first program on a socket carries the `socket-stdio` finding; what runs after it
//! on the same socket (a reverse shell's commands) is reported too, naming that first
//! program's pid as its `session`, and raises the alarm again only when it is worse.
use super::{Stream, doing};
use crate::{
    clock::Clock,
    detect,
    error::Result,
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
        if !self.rules.judges_stdio() {
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
        let mut record = SocketRecord::exec(e, stdio, process, clock);
        let found = self.judge_exec(&record, stdio);
        if let Some(inode) = stdio.inode {
            record.session = self.stdio_sessions.started(inode, e.task.pid);
            let worst = found.iter().map(|d| d.severity).max();
            if self.stdio_sessions.raises(inode, worst) {
                record.detections = found;
            }
        } else {
            record.detections = found;
        }
        self.out.write(&Record::Exec(record))
    }

    fn judge_exec(&self, r: &SocketRecord, stdio: &StdioSocket) -> Vec<detect::Detection> {
        let local = doing("on", r.protocol.as_deref(), r.address, r.port);
        let on = match stdio.socket.as_ref().and_then(|s| s.remote) {
            _ if stdio.socket.is_none() => "on an IP socket".to_owned(),
            Some(peer) => format!("{local} connected to {peer}"),
            None => local,
        };
        let doing = format!("started with {} {on}", r.stdio.join(", "));
        let comm = r.comm.text();
        self.rules.judge_stdio(&detect::Subject {
            doing: &doing,
            pid: r.pid,
            comm: &comm,
            exe: r.process.exe.as_deref(),
            exe_deleted: r.process.exe_deleted,
            exec_args: r.process.exec_args.as_deref(),
            args: r.process.args.as_deref(),
            uid: Some(r.uid),
            ancestors: &r.process.lineage,
            ..detect::Subject::default()
        })
    }
}
