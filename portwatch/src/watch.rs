//! `portwatch watch`: start-up, then the event loop until SIGINT/SIGTERM or stdout closes.
use std::{
    collections::HashSet,
    io::{self, Write},
    os::fd::AsRawFd,
    time::Duration,
};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use portwatch_common::names;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    cli::WatchArgs,
    clock::{self, Clock},
    counters::KernelCounters,
    decode::{self, KernelRecord, SockKind, SocketEvent},
    enrich::Enricher,
    error::{Error, Result},
    hooks, inventory, kernel_layout, loader,
    output::JsonLines,
    preflight,
    record::{LossCounts, LossRecord, Record, SnapshotRecord, StartRecord, StopRecord},
};

const IPPROTO_UDP: u16 = 17;

/// How often loss counters are checked (and the wall clock re-synchronised).
const TICK: Duration = Duration::from_millis(200);

pub async fn run(args: WatchArgs) -> Result<()> {
    // Handlers first, so a signal during start-up still ends in an orderly stop.
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;

    let machine = preflight::check(args.btf.as_deref())?;
    let offsets = {
        let types = kernel_layout::KernelTypes::open(&machine.btf)?;
        kernel_layout::kernel_offsets(&types, &machine.tracefs)?
    };
    let (mut ebpf, btf) = loader::load(&offsets, args.ring_buffer_size, &machine.btf)?;
    let hooks = hooks::attach_all(&mut ebpf, &btf, &args.attach)?;
    // From now on every execve is traced (if the exec hook attached); what ran before is read
    // from /proc once.
    let exec_traced = hooks.iter().any(|h| h.hook == "exec" && h.attach.is_some());
    let mut enricher = Enricher::new(exec_traced.then(clock::boottime_ns));
    enricher.processes.seed_from_proc();

    let mut map = |name: &str| {
        ebpf.take_map(name)
            .ok_or_else(|| Error::Load(format!("map {name} is missing from the object")))
    };
    let ring = RingBuf::try_from(map(names::EVENTS_MAP)?)
        .map_err(|e| Error::Load(format!("ring buffer: {e}")))?;
    let counters = KernelCounters::new(
        PerCpuArray::try_from(map(names::COUNTERS_MAP)?)
            .map_err(|e| Error::Load(format!("counters: {e}")))?,
    );
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged while the AsyncFd
    // owns the RingBuf.
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| Error::io("polling the ring buffer", e.into_parts().1))?;

    let mut clock = Clock::now();
    let mut out = JsonLines::new(io::stdout().lock());
    eprintln!("portwatch: watching ({})", summary(&hooks));
    out.write(&Record::Start(StartRecord {
        time: clock.format_now(),
        version: env!("CARGO_PKG_VERSION"),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        pid: std::process::id(),
        ring_buffer_bytes: args.ring_buffer_size,
        hooks,
    }))?;
    // The listeners that existed before: reported once, here; their live listen/bind records,
    // queued since the hooks attached, are then skipped.
    let listeners =
        inventory::snapshot().map_err(|e| Error::io("listing sockets with sock_diag", e))?;
    let mut already_reported = HashSet::new();
    for l in &listeners {
        already_reported.insert(l.socket.inode);
        out.write(&Record::Listener(enricher.listener(l, &clock)))?;
    }
    out.write(&Record::SnapshotComplete(SnapshotRecord {
        time: clock.format_now(),
        listeners: listeners.len(),
    }))?;
    out.flush()?;

    let mut state = Stream {
        already_reported,
        out,
        enricher,
        counters,
        reported: LossCounts::default(),
        decode_errors: 0,
        exec_lost: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    let reason = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(|e| Error::io("polling the ring buffer", e))?;
                state.drain(guard.get_inner_mut(), &clock)?;
                guard.clear_ready();
                state.out.flush()?;
            }
            _ = tick.tick() => {
                clock = Clock::now();
                state.enricher.processes.maintain();
                state.report_loss(&clock)?;
                state.out.flush()?;
                if stdout_closed() {
                    return Err(Error::StdoutClosed);
                }
            }
        }
    };
    // Whatever the kernel had already queued still goes out before the totals.
    state.drain(ring.get_mut(), &clock)?;
    let counts = state.report_loss(&clock)?;
    let events = state.out.events;
    state.out.write(&Record::Stop(StopRecord {
        time: clock.format_now(),
        reason,
        events,
        counts,
    }))?;
    state.out.flush()?;
    drop(ebpf); // detaches every program
    Ok(())
}

struct Stream<W: Write> {
    out: JsonLines<W>,
    /// Inodes of snapshot listeners, until they close.
    already_reported: HashSet<u64>,
    enricher: Enricher,
    counters: KernelCounters,
    reported: LossCounts,
    decode_errors: u64,
    exec_lost: u64,
}

impl<W: Write> Stream<W> {
    fn drain(&mut self, ring: &mut RingBuf<MapData>, clock: &Clock) -> Result<()> {
        // Checked before each batch, so no record after a lost exec is enriched on the
        // assumption that every exec was seen.
        let exec_lost = self.counters.exec_lost()?;
        if exec_lost > self.exec_lost {
            self.exec_lost = exec_lost;
            self.enricher
                .processes
                .exec_records_lost(clock::boottime_ns());
        }
        while let Some(item) = ring.next() {
            match decode::decode(&item) {
                Ok(KernelRecord::Socket(event)) => {
                    if self.in_snapshot(&event) {
                        continue;
                    }
                    let process = self.enricher.context(&event.task, clock);
                    self.out.write(&Record::socket(&event, process, clock))?;
                }
                Ok(KernelRecord::Exec(exec)) => self.enricher.on_exec(&exec),
                Ok(KernelRecord::Exit(task)) => self.enricher.on_exit(&task),
                Err(_) => self.decode_errors += 1,
            }
        }
        Ok(())
    }

    /// Whether the snapshot already reported this event's listener (the event raced start-up).
    fn in_snapshot(&mut self, e: &SocketEvent) -> bool {
        let Some(inode) = e.inode else { return false };
        match e.kind {
            SockKind::Close => {
                self.already_reported.remove(&inode);
                false
            }
            SockKind::Listen => e.errno == 0 && self.already_reported.contains(&inode),
            SockKind::Bind => {
                let udp = e.socket.as_ref().is_some_and(|s| s.protocol == IPPROTO_UDP);
                udp && e.errno == 0 && self.already_reported.contains(&inode)
            }
            SockKind::Accept => false,
        }
    }

    /// Writes a `loss` record when any counter moved since the last one; returns the counts.
    fn report_loss(&mut self, clock: &Clock) -> Result<LossCounts> {
        let counts = self.counters.read(self.decode_errors)?;
        if counts != self.reported {
            self.out.write(&Record::Loss(LossRecord {
                time: clock.format_now(),
                counts,
            }))?;
            self.reported = counts;
        }
        Ok(counts)
    }
}

fn summary(hooks: &[hooks::Chosen]) -> String {
    hooks
        .iter()
        .map(|h| match h.attach {
            Some(a) => format!("{}: {a}", h.hook),
            None => format!("{}: unavailable", h.hook),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when stdout is a pipe whose reader has gone (`portwatch watch | head -1`), so a quiet
/// host does not keep portwatch running until the next event fails to write.
fn stdout_closed() -> bool {
    let mut pfd = libc::pollfd {
        fd: io::stdout().as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}
