//! `portwatch watch`: start-up, then the event loop until SIGINT/SIGTERM or stdout closes.
use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    time::Duration,
};

use crate::{
    cli::WatchArgs,
    clock::Clock,
    cmd::{
        session::{self, Session},
        signals::{Received, Signals},
    },
    error::{Error, Result},
    filter::{Filters, baseline::Baseline},
    output::{
        Output,
        format::Native,
        record::{Record, StartRecord},
        sink::{QUEUE_BYTES, Queued, widen_pipe},
    },
};

/// How long a stop waits for stdout's reader to take the last records.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// How often loss counters are checked (and the wall clock re-synchronised).
const TICK: Duration = Duration::from_millis(200);

/// How often the ring buffer is drained and the output flushed. The kernel programs wake the
/// daemon early only when the ring fills up (see `wakeup_flags` in the eBPF crate), so this is the
/// longest an event waits before it is written.
pub const DRAIN: Duration = Duration::from_millis(50);

pub async fn run(args: WatchArgs) -> Result<()> {
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

    // Start-up is over: from here on a signal ends portwatch with its totals (see `signals`).
    let mut signals = Signals::install()?;
    let mut clock = Clock::now();
    widen_pipe(io::stdout().as_fd());
    let sink = Queued::new(io::stdout(), QUEUE_BYTES)
        .map_err(|e| Error::io("starting the output thread", e))?;
    let mut out = Output::new(Box::new(Native), sink);
    eprintln!("portwatch: watching ({})", session::summary(&hooks));
    for h in &hooks {
        if let Some(missing) = h.missing {
            eprintln!("portwatch: warning: no `{}` hook: {missing}", h.hook);
        }
    }
    let missing_privileges = crate::kernel::preflight::missing();
    for m in missing_privileges {
        eprintln!(
            "portwatch: warning: without {}, {}",
            m.capability, m.without
        );
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
        missing_privileges,
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
            received = signals.next() => match received {
                Received::Stop(name) => break name,
                Received::Reload => reload_baseline(&args, &mut stream),
            },
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
    // Stopping is bounded whatever stdout's reader does: one that stopped reading gets what it
    // can take within STOP_WAIT, and the totals (counting what it did not take) go to stderr.
    if !stream.settle(STOP_WAIT) {
        let line = stream.stop_line(reason, &clock)?;
        eprint!(
            "portwatch: stdout is not being read; the stop record, counting what could not be written: {}",
            String::from_utf8_lossy(&line)
        );
    }
    Ok(())
}

/// SIGHUP: the baseline read again, with the same checks as at start; one that is refused
/// leaves the one in use in place. Said on stderr either way.
fn reload_baseline<S: crate::output::sink::Sink>(
    args: &WatchArgs,
    stream: &mut crate::pipeline::stream::Stream<S>,
) {
    let Some(path) = &args.baseline else {
        eprintln!("portwatch: SIGHUP: no --baseline to reload");
        return;
    };
    match Baseline::load(path) {
        Ok(b) => {
            let rules = b.rules.len();
            stream.set_baseline(b);
            eprintln!(
                "portwatch: SIGHUP: baseline {} reloaded ({rules} rules)",
                path.display()
            );
        }
        Err(e) => eprintln!("portwatch: warning: SIGHUP: keeping the baseline in use: {e}"),
    }
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
