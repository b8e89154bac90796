//! `portwatch watch`: start-up, then the event loop until SIGINT/SIGTERM or stdout closes.
use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    time::Duration,
};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::WatchArgs,
    clock::Clock,
    cmd::session::{self, Session},
    error::{Error, Result},
    filter::{Filters, baseline::Baseline},
    output::{
        Output,
        format::Native,
        record::{Record, StartRecord},
        sink::{Writer, widen_pipe},
    },
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
    let Session {
        mut ebpf,
        hooks,
        mut ring,
        counters,
        tracing,
        log: _,
    } = session::start(&args, &filters, false)?;

    let mut clock = Clock::now();
    widen_pipe(io::stdout().as_fd());
    let mut out = Output::new(Box::new(Native), Writer(io::stdout().lock()));
    eprintln!("portwatch: watching ({})", session::summary(&hooks));
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
    // The listeners that existed before the hooks attached, reported once, before live events.
    let mut stream =
        session::snapshot_stream(&mut ebpf, counters, tracing, out, baseline, filters, &clock)?;

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
