//! Idle: what a tracer costs while nothing happens (its wake-ups per second), and how long the
//! first event after a quiet spell takes to reach its stdout.
use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{
    procs::{context_switches, wait_or_kill},
    tracer::{self, Tracer},
};

const QUIET: Duration = Duration::from_secs(10);
const PROBES: usize = 20;

pub struct Idle {
    pub wakeups_per_s: f64,
    /// Milliseconds from listen(2) to the line on stdout, sorted.
    pub latency_ms: Vec<f64>,
}

pub fn measure(tracer: Tracer, portwatch: &Path) -> Result<Idle> {
    let mut t = tracer::start(tracer, false, portwatch)?;
    let out = t.stdout.take().context("tracer stdout")?;
    let me = std::process::id();
    let wanted = match tracer {
        Tracer::Portwatch(_) => ["\"event\":\"listen\"".to_owned(), format!("\"pid\":{me},")],
        Tracer::Bpftrace(_) | Tracer::Floor => [format!("listen {me}"), String::new()],
    };
    let (first_tx, first_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    thread::spawn(move || {
        for (n, line) in BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .enumerate()
        {
            if n == 0 {
                let _ = first_tx.send(());
            }
            if wanted.iter().all(|w| line.contains(w.as_str())) {
                let _ = seen_tx.send(Instant::now());
            }
        }
    });
    tracer::attached(&mut t, tracer, first_rx)?;
    thread::sleep(Duration::from_secs(1));
    let before = context_switches(t.id());
    thread::sleep(QUIET);
    let wakeups_per_s =
        context_switches(t.id()).saturating_sub(before) as f64 / QUIET.as_secs_f64();
    let mut latency_ms = Vec::new();
    for _ in 0..PROBES {
        thread::sleep(Duration::from_millis(250));
        while seen_rx.try_recv().is_ok() {}
        let start = Instant::now();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        if let Ok(at) = seen_rx.recv_timeout(Duration::from_secs(2)) {
            latency_ms.push(at.duration_since(start).as_secs_f64() * 1e3);
        }
        drop(listener);
    }
    latency_ms.sort_by(f64::total_cmp);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.id() as i32, libc::SIGINT) };
    wait_or_kill(&mut t, Duration::from_secs(10))?;
    Ok(Idle {
        wakeups_per_s,
        latency_ms,
    })
}
