//! The flood row: can a listener hide in a flood of listener births? Six processes churn TCP
//! listens and UDP binds as fast as they can while a seventh listens and holds its port; each
//! tracer's output is read at full speed, and what is measured is whether the hidden listener
//! is named and how long after its listen its record came, with what the tracer lost. portwatch
//! as users run it (`portwatch watch`, its default flood limit), then bpftrace on the same
//! probes, in the same run.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{
    procs::{finish_load, go, spawn_load, wait_or_kill},
    tracer::{Tracer, attached, start},
};
use crate::loadgen::Load;

const CHURNERS: [Load; 6] = [
    Load::Listen4,
    Load::UdpBind,
    Load::Listen4,
    Load::UdpBind,
    Load::Listen4,
    Load::UdpBind,
];

/// What one run under one tracer found.
struct Run {
    ops: u64,
    /// portwatch's stop record: lost_total, and the births among them (shed by the flood limit,
    /// or listens and binds lost at a full ring: an upper bound, TCP binds are in it too).
    lost: Option<u64>,
    births_lost: Option<u64>,
    /// From the hidden listen to its record on the tracer's output.
    named_after: Option<Duration>,
}

/// Watches the tracer's output for the hidden listener (pid and port, set once it listens)
/// and for portwatch's stop record.
struct Watch {
    pid: Arc<AtomicU32>,
    port: Arc<AtomicU32>,
    seen: Arc<Mutex<Option<Instant>>>,
    stop: Arc<Mutex<Option<serde_json::Value>>>,
}

fn watch(t: &mut Child, portwatch: bool, first: mpsc::Sender<()>) -> Result<Watch> {
    let w = Watch {
        pid: Arc::default(),
        port: Arc::default(),
        seen: Arc::default(),
        stop: Arc::default(),
    };
    let (pid, port, seen, stop) = (
        Arc::clone(&w.pid),
        Arc::clone(&w.port),
        Arc::clone(&w.seen),
        Arc::clone(&w.stop),
    );
    let out = t.stdout.take().context("tracer stdout")?;
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 20, out);
        let mut line = String::new();
        let mut first = Some(first);
        // The needles, made once the hidden listener is known: the reader must keep up.
        let mut needles: Option<(String, String)> = None;
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(f) = first.take() {
                let _ = f.send(());
            }
            let p = pid.load(Ordering::Relaxed);
            if needles.is_none() && p != 0 {
                let q = port.load(Ordering::Relaxed);
                needles = Some(if portwatch {
                    (format!("\"pid\":{p},"), format!("\"port\":{q},"))
                } else {
                    (format!("listen {p}\n"), String::new())
                });
            }
            let hit = needles.as_ref().is_some_and(|(a, b)| {
                if portwatch {
                    line.contains(a)
                        && line.contains(b)
                        && (line.contains("\"event\":\"listen\"")
                            || line.contains("\"event\":\"listener\""))
                } else {
                    line == *a
                }
            });
            if hit {
                seen.lock().unwrap().get_or_insert_with(Instant::now);
            }
            if portwatch && line.starts_with("{\"seq\"") && line.contains("\"event\":\"stop\"") {
                *stop.lock().unwrap() = serde_json::from_str(&line).ok();
            }
            line.clear();
        }
    });
    Ok(w)
}

fn one(tracer: Tracer, portwatch: &Path, seconds: f64) -> Result<Run> {
    let mut loads: Vec<Child> = CHURNERS
        .iter()
        .map(|l| spawn_load(*l, None, seconds))
        .collect::<Result<_>>()?;
    let mut t = start(tracer, false, portwatch)?;
    let is_pw = matches!(tracer, Tracer::Portwatch(_));
    let (first_tx, first_rx) = mpsc::channel();
    let w = watch(&mut t, is_pw, first_tx)?;
    attached(&mut t, tracer, first_rx)?;
    for l in &mut loads {
        go(l)?;
    }
    thread::sleep(Duration::from_secs(1)); // the flood under way: the scenario, not a wait
    let mut hidden = Command::new(std::env::current_exe()?)
        .args(["listen-hold", "--seconds", &(seconds + 3.0).to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    BufReader::new(hidden.stdout.take().context("hidden stdout")?).read_line(&mut port)?;
    let listened = Instant::now();
    w.port.store(port.trim().parse()?, Ordering::Relaxed);
    w.pid.store(hidden.id(), Ordering::Relaxed);
    let mut ops = 0;
    for l in loads {
        ops += finish_load(l)?.0;
    }
    // The port is held a while after the flood: time for a listing after the losses.
    wait_or_kill(&mut hidden, Duration::from_secs(10))?;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.id() as i32, libc::SIGINT) };
    wait_or_kill(&mut t, Duration::from_secs(20))?;
    thread::sleep(Duration::from_millis(200)); // the reader's last lines
    let stop = w.stop.lock().unwrap().take();
    let n = |v: &serde_json::Value, k: &str, kind: &str| v[k][kind].as_u64().unwrap_or(0);
    let named_after = w
        .seen
        .lock()
        .unwrap()
        .map(|at| at.saturating_duration_since(listened));
    Ok(Run {
        ops,
        lost: stop.as_ref().and_then(|s| s["lost_total"].as_u64()),
        births_lost: stop.as_ref().map(|s| {
            n(s, "shed", "listen")
                + n(s, "shed", "bind")
                + n(s, "ring_buffer_full", "listen")
                + n(s, "ring_buffer_full", "bind")
                + n(s, "in_flight_table_full", "listen")
                + n(s, "in_flight_table_full", "bind")
        }),
        named_after,
    })
}

pub fn run(portwatch: &Path, seconds: f64, runs: usize) -> Result<()> {
    println!(
        "\nflood: {} processes churn TCP listens and UDP binds for {seconds} s; 1 s in, another \
         listens and holds its port to the end and 3 s more; {runs} runs per tracer, output read \
         at full speed. births lost: shed by the flood limit, or listens and binds lost at a full \
         ring (an upper bound: TCP binds are in it too)",
        CHURNERS.len()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>12} {:>8} {:>22}",
        "tracer", "ops", "lost", "births lost", "named", "listen to its record"
    );
    for (name, tracer) in [
        ("portwatch watch", Tracer::Portwatch(None)),
        ("bpftrace", Tracer::Bpftrace(None)),
    ] {
        for _ in 0..runs {
            let r = one(tracer, portwatch, seconds)?;
            let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            println!(
                "{name:<16} {:>10} {:>10} {:>12} {:>8} {:>22}",
                r.ops,
                opt(r.lost),
                opt(r.births_lost),
                if r.named_after.is_some() { "yes" } else { "no" },
                r.named_after.map_or_else(
                    || "-".to_owned(),
                    |d| format!("{:.0} ms", d.as_secs_f64() * 1e3)
                ),
            );
        }
    }
    Ok(())
}
