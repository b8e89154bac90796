//! `portwatch watch`: start-up, then the event loop until SIGINT/SIGTERM or stdout closes.
use std::{
    io,
    os::{
        fd::{AsFd, AsRawFd},
        unix::fs::MetadataExt as _,
    },
    time::Duration,
};

use aya::maps::{PerCpuArray, RingBuf};
use portwatch_common::names;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    cli::WatchArgs,
    clock::{self, Clock},
    enrich::Enricher,
    error::{Error, Result},
    filter::{Filters, baseline::Baseline},
    kernel::{bound_udp, counters::KernelCounters, hooks, layout, loader, preflight},
    output::{
        Output,
        format::Native,
        record::{Record, StartRecord},
        sink::{Writer, widen_pipe},
    },
    pipeline::stream::Stream,
    state::{inventory, listeners::ListenerTable, sockdiag::SockDiag},
};

/// How often loss counters are checked (and the wall clock re-synchronised).
const TICK: Duration = Duration::from_millis(200);

/// How often the ring buffer is drained and the output flushed. The kernel programs wake the
/// daemon early only when the ring fills up (see `wakeup_flags` in the eBPF crate), so this is the
/// longest an event waits before it is written.
pub const DRAIN: Duration = Duration::from_millis(50);

pub async fn run(args: WatchArgs) -> Result<()> {
    // Handlers first, so a signal during start-up still ends in an orderly stop.
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;

    // A malformed baseline is refused before anything touches the kernel.
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    let filters = Filters::from_args(&args)?;
    let machine = preflight::check(args.btf.as_deref())?;
    let offsets = {
        let types = layout::KernelTypes::open(&machine.btf)?;
        layout::kernel_offsets(&types, &machine.tracefs)?
    };
    let (mut ebpf, btf) = loader::load(
        &offsets,
        &filters.config,
        args.ring_buffer_size,
        &machine.btf,
    )?;
    filters.install(&mut ebpf)?;
    let hooks = hooks::attach_all(&mut ebpf, &btf, &offsets, &args.attach, |k| {
        filters.selects(k)
    })?;
    // The kernel's types (about 15 MiB) are not needed once everything is attached; give the
    // memory back rather than keep it for the daemon's lifetime.
    drop(btf);
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory.
    let _ = unsafe { libc::malloc_trim(0) };
    // From now on every execve is traced (if the exec hook attached); what ran before is read
    // from /proc once, below.
    let exec_traced = hooks.iter().any(|h| h.hook == "exec" && h.attach.is_some());
    let exec_traced_since = exec_traced.then(clock::boottime_ns);
    let udp_closes_traced = hooks
        .iter()
        .any(|h| h.hook == "udp_close" && h.attach.is_some());

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
    widen_pipe(io::stdout().as_fd());
    let mut out = Output::new(Box::new(Native), Writer(io::stdout().lock()));
    eprintln!("portwatch: watching ({})", summary(&hooks));
    for h in &hooks {
        if let Some(missing) = h.missing {
            eprintln!("portwatch: warning: no `{}` hook: {missing}", h.hook);
        }
    }
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

    // After the start record, whose time is then when every hook was attached.
    let mut enricher = Enricher::new(exec_traced_since);
    enricher.seed_from_proc();
    // The listeners that existed before the hooks attached, reported once, before live events.
    let listeners =
        inventory::snapshot().map_err(|e| Error::io("listing sockets with sock_diag", e))?;
    if udp_closes_traced {
        bound_udp::remember_snapshot(&mut ebpf, &listeners)?;
    }
    let own_netns = std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino() as u32);
    let mut stream = Stream::new(
        out,
        enricher,
        Box::new(counters),
        Box::new(SockDiag),
        baseline,
        filters,
        ListenerTable::new(own_netns, udp_closes_traced),
    );
    stream.snapshot(&listeners, &clock)?;

    let mut tick = tokio::time::interval(TICK);
    let mut drain = tokio::time::interval(DRAIN);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(|e| Error::io("polling the ring buffer", e))?;
                stream.drain(guard.get_inner_mut(), &clock)?;
                guard.clear_ready();
                stream.flush()?;
            }
            _ = drain.tick() => {
                stream.drain(ring.get_mut(), &clock)?;
                stream.flush()?;
            }
            _ = tick.tick() => {
                clock = Clock::now();
                stream.tick(&clock)?;
                if stdout_closed() {
                    return Err(Error::StdoutClosed);
                }
            }
        }
    };
    // Whatever the kernel had already queued still goes out before the totals.
    stream.drain(ring.get_mut(), &clock)?;
    stream.finish(reason, &clock)?;
    drop(ebpf); // detaches every program
    Ok(())
}

fn summary(hooks: &[hooks::Chosen]) -> String {
    hooks
        .iter()
        .map(|h| match h.attach {
            Some(a) => format!("{}: {a}", h.hook),
            None if h.skipped.is_some() => format!("{}: not needed", h.hook),
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
