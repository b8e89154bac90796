//! `portwatch watch`: start-up, then the event loop until SIGINT/SIGTERM or stdout closes.
use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    time::Duration,
};

use crate::{
    cli::WatchArgs,
    clock::{self, Clock},
    cmd::{
        session::{self, Session},
        signals::{Received, Signals},
    },
    error::{Error, Result},
    filter::Filters,
    judge::baseline::Baseline,
    output::{
        Output,
        format::Format,
        record::{Record, StartRecord},
        sink::{File, QUEUE_BYTES, Queued, Sink, Stdout, Syslog, widen_pipe},
        spec::{OutputKind, OutputSpec},
    },
};

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
    // A malformed baseline is refused before anything touches the kernel.
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    let filters = Filters::new(args.asked())?;
    let ports = (!args.backdoor_port.is_empty()).then(|| args.backdoor_port.clone());
    let rules =
        crate::judge::rules::Rules::new(args.no_detection.clone(), ports, args.uring_allow.clone())
            .map_err(Error::Usage)?;
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
    let outputs = sinks(&args)?;
    let on_stdout = outputs.iter().any(|(name, _, _)| name == "stdout");
    let mut out = Output::routes(outputs);
    eprintln!("portwatch: watching ({})", session::summary(&hooks));
    for h in &hooks {
        if let Some(missing) = h.missing {
            eprintln!("portwatch: warning: no `{}` hook: {missing}", h.hook);
        }
    }
    let missing_privileges = crate::host::caps::missing();
    for m in missing_privileges {
        eprintln!(
            "portwatch: warning: without {}, {}",
            m.capability, m.without
        );
    }
    let metrics = args
        .metrics
        .map(|addr| crate::metrics::Metrics::serve(addr, &hooks, args.ring_buffer_size))
        .transpose()?;
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
    let judges = session::Judges {
        baseline,
        rules,
        ancestry: args.ancestry,
        reachability: !args.no_reachability,
    };
    let mut stream =
        session::snapshot_stream(&mut ebpf, counters, tracing, out, judges, filters, &clock)?;
    if let Some(m) = metrics {
        stream.set_metrics(m);
        stream.tick(&clock)?;
    }

    let mut hangup = stdout_hangup();
    let mut watching_stdout = on_stdout;
    let mut batch = Batch::default();
    // --stats: the first records at once, then every interval (late ticks are not caught up).
    let mut stats = args.stats.map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let reason = loop {
        let due = stream.next_due_ns().map(|ns| {
            let wait = ns.saturating_sub(clock::boottime_ns());
            tokio::time::Instant::now() + Duration::from_nanos(wait)
        });
        tokio::select! {
            received = signals.next() => match received {
                Received::Stop(name) => break name,
                Received::Reload => {
                    stream.reopen();
                    reload_baseline(&args, &mut stream);
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
                    batch.drained(records, &mut stream, &mut clock)?;
                }
            }
            _ = async { stats.as_mut().unwrap().tick().await }, if stats.is_some() => {
                // What the kernel already queued first: the table then knows new listeners.
                clock = Clock::now();
                let records = stream.drain(ring.get_mut(), &clock)?;
                batch.drained(records, &mut stream, &mut clock)?;
                stream.stats(&clock)?;
            }
            _ = tokio::time::sleep_until(batch.next_drain.unwrap_or_else(far_future)),
                if batch.next_drain.is_some() => {
                let records = stream.drain(ring.get_mut(), &clock)?;
                batch.drained(records, &mut stream, &mut clock)?;
            }
            // A listing after a loss, a flood report: due even when no record comes.
            _ = tokio::time::sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {
                clock = Clock::now();
                let records = stream.drain(ring.get_mut(), &clock)?;
                batch.drained(records, &mut stream, &mut clock)?;
                stream.tick(&clock)?;
            }
        }
    };
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

/// A sink, its name and its format.
type NamedSink = (String, Format, Box<dyn Sink>);

/// The sinks of `--output` (stdout when none is named), each with its format, started.
fn sinks(args: &WatchArgs) -> Result<Vec<NamedSink>> {
    let specs = if args.output.is_empty() {
        vec![OutputSpec::STDOUT]
    } else {
        args.output.clone()
    };
    let mut sinks = Vec::new();
    for spec in specs {
        let name = spec.name();
        if sinks.iter().any(|(n, _, _)| *n == name) {
            return Err(Error::Usage(format!("--output {name} is named twice")));
        }
        let thread = |e| Error::io("starting an output thread", e);
        let sink: Box<dyn Sink> = match &spec.kind {
            OutputKind::Stdout => {
                widen_pipe(io::stdout().as_fd());
                // Straight to the descriptor: `io::stdout()` would copy every line through its
                // line buffer.
                let stdout = io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("duplicating stdout", e))?;
                let dest = Stdout::new(std::fs::File::from(stdout));
                Box::new(Queued::new(dest, QUEUE_BYTES, "output-stdout").map_err(thread)?)
            }
            OutputKind::File { path, rotation } => {
                let dest = File::open(path, *rotation)
                    .map_err(|e| Error::io(format!("opening --output {name}"), e))?;
                Box::new(Queued::new(dest, QUEUE_BYTES, "output-file").map_err(thread)?)
            }
            OutputKind::Syslog { target, framing } => {
                let format = spec.format.unwrap_or(args.format);
                let dest = Syslog::new(target.clone(), *framing, format);
                Box::new(Queued::new(dest, QUEUE_BYTES, "output-syslog").map_err(thread)?)
            }
        };
        sinks.push((name, spec.format.unwrap_or(args.format), sink));
    }
    Ok(sinks)
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

/// The drains of one burst of records: from the kernel's wake-up to the drain that finds the ring
/// empty.
#[derive(Default)]
struct Batch {
    /// When the ring is drained next (None: the daemon is idle, waiting for a wake-up).
    next_drain: Option<tokio::time::Instant>,
    /// Wake-ups since the last drain.
    wakes: u32,
    last_tick: Option<tokio::time::Instant>,
}

impl Batch {
    /// A wake-up from the kernel; true when the ring is to be drained now. Idle, always. In a
    /// batch, the first wake-up after a drain is the kernel's for the first record since (the
    /// adaptive rule), and waits for the next drain; a second one comes only from a ring past its
    /// wake-up threshold, which must not wait.
    fn woken(&mut self) -> bool {
        self.wakes += 1;
        self.next_drain.is_none() || self.wakes > 1
    }

    /// After a drain: keep draining while it found records, and check counters every TICK;
    /// when it found none, check them once more and go idle.
    fn drained<S: crate::output::sink::Sink>(
        &mut self,
        records: usize,
        stream: &mut crate::pipeline::stream::Stream<S>,
        clock: &mut Clock,
    ) -> Result<()> {
        let now = tokio::time::Instant::now();
        self.wakes = 0;
        let tick_due = self.last_tick.is_none_or(|t| now - t >= TICK);
        if records == 0 || tick_due {
            *clock = Clock::now();
            stream.tick(clock)?;
            self.last_tick = Some(now);
        } else {
            stream.flush()?;
        }
        // A full batch: the ring holds more, drained at once (after what else is ready).
        self.next_drain = match records {
            0 => None,
            crate::pipeline::stream::BATCH => Some(now),
            _ => Some(now + DRAIN),
        };
        Ok(())
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// Resolves when stdout is a pipe whose reader has gone (`portwatch watch | head -1`), so a quiet
/// host does not keep portwatch running until the next event fails to write. A thread blocked in
/// poll(2) for that alone: it wakes for nothing else (poll's wake-ups are filtered by the events
/// asked for), where checking on a timer would wake the daemon for nothing.
fn stdout_hangup() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watcher = std::thread::Builder::new()
        .name("stdout-hangup".into())
        .spawn(move || {
            let mut pfd = libc::pollfd {
                fd: io::stdout().as_raw_fd(),
                events: 0,
                revents: 0,
            };
            loop {
                // SAFETY: one valid pollfd; no timeout.
                let n = unsafe { libc::poll(&mut pfd, 1, -1) };
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if n == 1 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    let _ = tx.send(());
                }
                // Anything else (no stdout at all): the sender goes and the watch with it.
                return;
            }
        });
    if watcher.is_err() {
        eprintln!(
            "portwatch: warning: cannot start the thread that watches stdout; a closed reader is \
             noticed at the next write"
        );
    }
    rx
}
