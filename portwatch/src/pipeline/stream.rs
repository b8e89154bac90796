//! The record stream after start-up: turns kernel records into output records, keeps the
//! process and listener tables current, and reports losses.
use rustc_hash::FxHashSet;

use crate::{
    clock::Clock,
    enrich::{self, Enricher},
    error::{Error, Result},
    filter::Filters,
    judge::{Judge, NewListener, Place, Who, baseline::Baseline, rules::Rules},
    model::{
        loss::LossCounts,
        socket::{SockKind, SocketEvent, Via},
        source::{Counters, RecordSource, Sockets, UdpCloses},
    },
    output::{
        Output,
        record::{Record, SocketRecord},
        sink::Sink,
    },
    pipeline::{
        decode::{self, KernelRecord},
        sequence::LossSequencer,
    },
    state::{firewall::Firewall, health::Trends, listeners::ListenerTable, stdio::StdioSessions},
};

mod exec;
mod flood;
mod reconcile;
mod snapshot;
pub use snapshot::judge_listed;
mod stats;
mod totals;

/// Records one `drain` takes at most: about 30 ms of work for the daemon, 3 MiB of ring.
pub const BATCH: usize = 16_384;

/// The record stream, composed of its stages' objects: what it numbers and counts as lost
/// (`losses`), who did it (`enricher`), what the user asked to see (`filters`), what it knows
/// of the host's sockets (`known`), the verdicts (`judge`) and the outputs (`out`).
pub struct Stream<S: Sink> {
    out: Output<S>,
    judge: Judge,
    filters: Filters,
    enricher: Enricher,
    losses: Losses,
    known: Known,
}

/// Sequencing and loss accounting: the kernel's counters, each CPU's numbering, what the last
/// loss record said, and the floods reported.
struct Losses {
    counters: Box<dyn Counters>,
    seq: LossSequencer,
    reported: LossCounts,
    reported_drops: Vec<crate::output::SinkDrops>,
    decode_errors: u64,
    exec_lost: u64,
    floods: flood::FloodReports,
    metrics: Option<crate::metrics::Metrics>,
}

/// What the stream knows of the host's sockets, and how it checks that knowledge.
struct Known {
    sockets: Box<dyn Sockets>,
    listeners: ListenerTable,
    /// Inodes of snapshot listeners, until they close: their live listen/bind records, queued
    /// while the snapshot was taken, are not reported a second time.
    already_reported: FxHashSet<u64>,
    stdio_sessions: StdioSessions,
    /// `--stats`: each listener's drops and CLOSE_WAIT run at its last stats record.
    trends: Trends,
    /// The kernel's table of UDP sockets whose close it reports (None: no such hook, tests).
    udp_closes: Option<Box<dyn UdpCloses>>,
    reconciler: reconcile::Reconciler,
}

impl<S: Sink> Stream<S> {
    pub fn new(
        out: Output<S>,
        enricher: Enricher,
        counters: Box<dyn Counters>,
        sockets: Box<dyn Sockets>,
        baseline: Option<Baseline>,
        filters: Filters,
        listeners: ListenerTable,
    ) -> Self {
        Self {
            losses: Losses {
                counters,
                seq: LossSequencer::default(),
                reported: LossCounts::default(),
                reported_drops: out.drops(),
                decode_errors: 0,
                exec_lost: 0,
                floods: flood::FloodReports::default(),
                metrics: None,
            },
            known: Known {
                sockets,
                listeners,
                already_reported: FxHashSet::default(),
                stdio_sessions: StdioSessions::default(),
                trends: Trends::default(),
                udp_closes: None,
                reconciler: reconcile::Reconciler::default(),
            },
            out,
            judge: Judge::new(Rules::default(), baseline, None),
            filters,
            enricher,
        }
    }

    /// Sockets found by listing are handed to the kernel's UDP close tracking.
    pub fn set_udp_closes(&mut self, udp: Box<dyn UdpCloses>) {
        self.known.udp_closes = Some(udp);
    }

    /// When periodic work is due next even if no record comes (boot-clock ns): a listing after
    /// a loss, a flood report.
    pub fn next_due_ns(&self) -> Option<u64> {
        match (self.known.reconciler.due_ns(), self.losses.floods.due_ns()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Turns the records waiting in `ring` into output, at most `BATCH` of them, so that a
    /// ring that fills as fast as it is read still leaves room for the periodic work (loss
    /// records, flushes, listings after a loss); returns how many there were.
    pub fn drain(&mut self, ring: &mut impl RecordSource, clock: &Clock) -> Result<usize> {
        // Checked before each batch, so no record after a lost exec is enriched on the
        // assumption that every exec was seen.
        let exec_lost = self.losses.counters.exec_lost()?;
        if exec_lost > self.losses.exec_lost {
            self.losses.exec_lost = exec_lost;
            self.enricher.exec_records_lost(clock.boot_now());
        }
        let mut records = 0;
        while records < BATCH {
            let Some(item) = ring.next_record() else {
                break;
            };
            records += 1;
            let decoded = match decode::decode(&item) {
                Ok(d) => d,
                Err(_) => {
                    // Counted, and its place in the stream left empty like any lost record:
                    // the kernel numbered it, so the gap before it is revealed as for any other
                    // (else the next record of its CPU would number it a second time).
                    self.losses.decode_errors += 1;
                    if let Some((cpu, seq)) = decode::numbered(&item) {
                        let lost = self.losses.seq.revealed(cpu, seq);
                        self.out.skip(lost);
                    }
                    self.out.skip(1);
                    continue;
                }
            };
            let lost = self.losses.seq.revealed(decoded.cpu, decoded.seq);
            self.out.skip(lost);
            match decoded.record {
                KernelRecord::Socket(event) => self.socket_event(&event, clock)?,
                KernelRecord::Exec(exec) => {
                    self.enricher.on_exec(&exec);
                    if let Some(stdio) = &exec.stdio {
                        self.exec_on_sockets(&exec, stdio, clock)?;
                    }
                }
                KernelRecord::Exit(task) => {
                    self.known.listeners.owner_exited(task.pid);
                    self.known.stdio_sessions.exited(task.pid);
                    self.enricher.on_exit(&task);
                }
            }
        }
        Ok(records)
    }

    fn socket_event(&mut self, e: &SocketEvent, clock: &Clock) -> Result<()> {
        if self.in_snapshot(e) {
            return Ok(());
        }
        let process = self.enricher.context(&e.task, clock);
        if !self.filters.allows(&process) {
            return Ok(());
        }
        let keep = self.filters.traces_closes();
        let update = self.known.listeners.apply(e, &process, keep);
        if let (false, Some(_), Some(inode)) = (keep, update.new_listener, e.inode) {
            self.known.reconciler.saw(inode, e.task.boot_ns);
        }
        if update.already_closed {
            return Ok(());
        }
        // What the program is by content, for the rules on what runs: once per process state.
        let judged = e.kind == SockKind::Accept || update.new_listener.is_some();
        let identity = judged.then(|| {
            self.enricher
                .identity(e.task.pid, &process, e.task.running.exe_ino)
        });
        let mut who = Who {
            pid: e.task.pid,
            holder: Some((e.task.pid, e.task.tid)),
            uid: Some(e.task.uid),
            comm: e.task.comm.text(),
            process: &process,
            caps: None,
            identity,
        };
        let io_uring = matches!(e.via, Via::IoUring(_));
        let verdicts = match (e.kind, update.new_listener) {
            (SockKind::Accept, _) => {
                let shown = e.shown();
                let at = Place {
                    protocol: e.socket.as_ref().map(|s| s.protocol),
                    ip: shown.map(|a| a.ip()),
                    port: shown.map(|a| a.port()),
                };
                Some(self.judge.accept(&at, io_uring, &who))
            }
            (SockKind::Listen | SockKind::Bind, Some((proto, local))) => {
                if self.judge.needs_caps() {
                    let port = Some(local.port());
                    who.caps = enrich::capabilities(e.task.pid, Some(e.task.uid), port);
                }
                Some(
                    self.judge.new_listener(
                        &NewListener {
                            proto,
                            local,
                            v6only: None,
                            netns: e.task.netns.unwrap_or(0),
                            socket_uid: None,
                            // Only SO_REUSEPORT lets a second TCP listener share an address and port.
                            joined: (e.kind == SockKind::Listen)
                                .then_some(update.shared_with.as_deref())
                                .flatten(),
                            io_uring,
                        },
                        &who,
                    ),
                )
            }
            _ => None,
        };
        let mut record = SocketRecord::new(e, process, clock);
        record.shared_with = update.shared_with;
        record.ended = update.ended;
        if let Some(v) = verdicts {
            record.judged(v);
        }
        self.out.write(&Record::from_socket(e.kind, record))
    }

    /// Judge each new listener against its namespace's firewall.
    pub fn set_firewall(&mut self, firewall: Firewall) {
        self.judge.set_firewall(firewall);
    }

    /// The detections to run (`--no-detection`, `--backdoor-port`, `--uring-allow`).
    pub fn set_rules(&mut self, rules: Rules) {
        self.judge.set_rules(rules);
    }

    /// A new baseline (SIGHUP), for the listeners from now on.
    pub fn set_baseline(&mut self, baseline: Baseline) {
        self.judge.set_baseline(baseline);
    }

    /// Whether the snapshot already reported this event's listener (the event raced start-up).
    fn in_snapshot(&mut self, e: &SocketEvent) -> bool {
        let Some(inode) = e.inode else { return false };
        match e.kind {
            SockKind::Close => {
                self.known.already_reported.remove(&inode);
                false
            }
            SockKind::Listen | SockKind::Bind => {
                e.is_birth() && self.known.already_reported.contains(&inode)
            }
            SockKind::Accept => false,
        }
    }

    /// Periodic work: forget exited processes, close the listeners whose close was not seen,
    /// report losses.
    pub fn tick(&mut self, clock: &Clock) -> Result<()> {
        self.enricher.maintain();
        if self.known.listeners.check_due() {
            self.close_unseen(clock)?;
        }
        let counts = self.report_loss(clock)?;
        self.report_floods(&counts, clock)?;
        self.reconcile_if_due(clock)?;
        if let Some(m) = &self.losses.metrics {
            m.update(&self.out.written(), &counts, &self.out.queues());
        }
        self.flush()
    }

    /// Figures for `--metrics`, kept current at each tick from now on.
    pub fn set_metrics(&mut self, metrics: crate::metrics::Metrics) {
        self.losses.metrics = Some(metrics);
    }

    /// sock_diag tells which listeners went away without a close record (see `ListenerTable`).
    fn close_unseen(&mut self, clock: &Clock) -> Result<()> {
        let present = self
            .known
            .sockets
            .present()
            .map_err(|e| Error::io("listing sockets with sock_diag", e))?;
        let now = clock.boot_now();
        for (inode, live, ended) in self.known.listeners.reconcile(&present, now) {
            self.known.already_reported.remove(&inode);
            let record = SocketRecord::departed(
                inode,
                live.proto,
                live.bound.local,
                &live.owner,
                live.owner_exited,
                ended,
                clock.timestamp(now),
            );
            self.out.write(&Record::Close(record))?;
        }
        Ok(())
    }
}
