//! `portwatch watch`: start-up, then the event loop until SIGINT/SIGTERM or stdout closes.
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::{
    cli::WatchArgs,
    clock::{self, Clock},
    cmd::{
        session::{self, Plan, Session},
        signals::{Received, Signals},
    },
    error::{Error, Result},
    judge::baseline::Baseline,
    output::{
        Output,
        record::{Record, StartRecord},
        sink::Sink,
    },
    pipeline::stream::Stream,
};

mod batch;
mod sinks;

use batch::{Batch, far_future, stdout_hangup};

/// How long a stop waits for stdout's reader to take the last records.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// How often, while records keep coming, loss counters are checked (and the wall clock
/// re-synchronised). A quiet daemon checks them once, when its last batch ends.
const TICK: Duration = Duration::from_millis(200);

/// While records keep coming, how often the ring is drained and the output flushed. A quiet
/// daemon sleeps until the kernel's wake-up for the first record (see `wakeup_flags` in the eBPF
/// crate), drains at once, then every DRAIN until a drain finds nothing: the first event of a
/// burst is written at once, the others within DRAIN, and idle costs no wake-up at all.
pub const DRAIN: Duration = Duration::from_millis(50);

pub async fn run(args: WatchArgs) -> Result<()> {
    let plan = Plan::new(&args)?;
    let Session {
        mut ebpf,
        hooks,
        mut ring,
        counters,
        tracing,
        log: _,
    } = session::start(&args, &plan.filters, false)?;
    // Start-up is over: from here on a signal ends portwatch with its totals (see `signals`).
    let mut signals = Signals::install()?;
    let clock = Clock::now();
    let outputs = sinks::open(&args)?;
    let on_stdout = outputs.iter().any(|(name, _, _)| name == "stdout");
    let mut out = Output::routes(outputs);
    eprintln!("portwatch: watching ({})", session::summary(&hooks));
    for h in &hooks {
        if let Some(missing) = h.missing {
            eprintln!("portwatch: warning: no `{}` hook: {missing}", h.hook);
        }
    }
    let missing_privileges = session::warn_missing_privileges();
    let metrics = args
        .metrics
        .map(|addr| crate::metrics::Metrics::serve(addr, &hooks, args.ring_buffer_size))
        .transpose()?;
    out.write(&Record::Start(StartRecord {
        time: clock.stamp_now(),
        version: env!("CARGO_PKG_VERSION"),
        kernel: crate::host::Host::read().kernel.unwrap_or_default(),
        pid: std::process::id(),
        ring_buffer_bytes: args.ring_buffer_size,
        hooks,
        missing_privileges,
    }))?;
    // After the start record, whose time is then when every hook was attached: the listeners
    // that existed before the hooks attached, reported once, before live events.
    let mut stream = session::snapshot_stream(&mut ebpf, counters, tracing, out, plan, &clock)?;
    if let Some(m) = metrics {
        stream.set_metrics(m);
        stream.tick(&clock)?;
    }
    let reason = watch(
        &args,
        &mut stream,
        &mut ring,
        &mut signals,
        on_stdout,
        clock,
    )
    .await?;
    let clock = Clock::now();
    // Whatever the kernel had already queued still goes out before the totals: at most a ring's
    // worth, so a flood that goes on cannot hold the stop.
    let mut left = args.ring_buffer_size as usize / size_of::<portwatch_common::ExitEvent>();
    while left > 0 {
        let records = stream.drain(ring.get_mut(), &clock)?;
        left = left.saturating_sub(records);
        if records < crate::pipeline::stream::BATCH {
            break;
        }
    }
    stream.finish(reason, &clock)?;
    drop(ebpf); // detaches every program
    // Stopping is bounded whatever stdout's reader does: one that stopped reading gets what it
    // can take within STOP_WAIT, and the totals (counting what it did not take) go to stderr.
    for name in stream.settle(STOP_WAIT) {
        let line = stream.stop_line(&name, reason, &clock)?;
        eprint!(
            "portwatch: {name} is not taking records; its stop record, counting what could not be written: {}",
            String::from_utf8_lossy(&line)
        );
    }
    Ok(())
}

/// The event loop, until a signal stops it (its name) or stdout's reader goes (an error).
async fn watch<S: Sink>(
    args: &WatchArgs,
    stream: &mut Stream<S>,
    ring: &mut AsyncFd<RingBuf<MapData>>,
    signals: &mut Signals,
    on_stdout: bool,
    mut clock: Clock,
) -> Result<&'static str> {
    let mut hangup = stdout_hangup();
    let mut watching_stdout = on_stdout;
    let mut batch = Batch::default();
    // --stats: the first records at once, then every interval (late ticks are not caught up).
    let mut stats = args.stats.map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let due = stream.next_due_ns().map(|ns| {
            let wait = ns.saturating_sub(clock::boottime_ns());
            tokio::time::Instant::now() + Duration::from_nanos(wait)
        });
        tokio::select! {
            received = signals.next() => match received {
                Received::Stop(name) => return Ok(name),
                Received::Reload => {
                    stream.reopen();
                    reload_baseline(args, stream);
                }
            },
            gone = &mut hangup, if watching_stdout => match gone {
                Ok(()) => return Err(Error::StdoutClosed),
                Err(_) => watching_stdout = false,
            },
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(|e| Error::io("polling the ring buffer", e))?;
                guard.clear_ready();
                if batch.woken() {
                    clock = Clock::now();
                    let records = stream.drain(guard.get_inner_mut(), &clock)?;
                    batch.drained(records, stream, &mut clock)?;
                }
            }
            _ = async { stats.as_mut().unwrap().tick().await }, if stats.is_some() => {
                // What the kernel already queued first: the table then knows new listeners.
                clock = Clock::now();
                let records = stream.drain(ring.get_mut(), &clock)?;
                batch.drained(records, stream, &mut clock)?;
                stream.stats(&clock)?;
            }
            _ = tokio::time::sleep_until(batch.next_drain.unwrap_or_else(far_future)),
                if batch.next_drain.is_some() => {
                let records = stream.drain(ring.get_mut(), &clock)?;
                batch.drained(records, stream, &mut clock)?;
            }
            // A listing after a loss, a flood report: due even when no record comes.
            _ = tokio::time::sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {
                clock = Clock::now();
                let records = stream.drain(ring.get_mut(), &clock)?;
                batch.drained(records, stream, &mut clock)?;
                stream.tick(&clock)?;
            }
        }
    }
}

/// SIGHUP: the baseline read again, with the same checks as at start; one that is refused
/// leaves the one in use in place. Said on stderr either way.
fn reload_baseline<S: crate::output::sink::Sink>(
    args: &WatchArgs,
    stream: &mut crate::pipeline::stream::Stream<S>,
) {
    let Some(path) = &args.baseline else {
        eprintln!("portwatch: SIGHUP: output files reopened (no --baseline to reload)");
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
