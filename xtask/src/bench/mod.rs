//! `cargo xtask bench`: what portwatch costs under load, next to a bpftrace script on the same
//! tracepoints, in one run on this machine. A benchmark that prints figures, not a test.
//!
//! This machine's speed drifts by tens of percent within minutes, so no figure comes from one
//! run: each load runs without a tracer, under portwatch and under bpftrace in turn, `--pairs`
//! times, and each traced rate is divided by the mean of the no-tracer runs just before and
//! after it. Reported: the median of those ratios with their range, and what each tracer costs:
//! its own CPU time and its kernel programs' (the kernel's BPF statistics, from one more run of
//! each with them on), per 1000 events it delivered. First as users run portwatch (plain
//! `portwatch watch`), then with only the load's kind of event.
pub mod procs;

mod flood;
mod idle;
mod kstats;
mod tracer;

use std::path::Path;

use anyhow::{Result, bail};

use crate::loadgen::Load;
use tracer::{Traced, Tracer};

pub struct Case {
    pub name: &'static str,
    pub load: Load,
    /// The portwatch event kind the load produces (what is counted as delivered).
    pub event: &'static str,
    pub rate: Option<u64>,
    /// Seconds the load runs (None: `--seconds`).
    pub seconds: Option<f64>,
    /// The events come from the generator's children, not from the generator.
    pub by_parent: bool,
    /// Long: run once, and only with `--long`.
    pub long: bool,
}

const fn case(name: &'static str, load: Load, event: &'static str, rate: Option<u64>) -> Case {
    Case {
        name,
        load,
        event,
        rate,
        seconds: None,
        by_parent: false,
        long: false,
    }
}

const CASES: &[Case] = &[
    case("accept storm", Load::Accept, "accept", None),
    case("TCP v4 listen churn", Load::Listen4, "listen", None),
    case("TCP v6 listen churn", Load::Listen6, "listen", None),
    case("UDP bind churn", Load::UdpBind, "bind", None),
    case("accept, 5000/s", Load::Accept, "accept", Some(5000)),
    case("TCP v4 listen, 5000/s", Load::Listen4, "listen", Some(5000)),
    case("UDP bind, 5000/s", Load::UdpBind, "bind", Some(5000)),
    // What process tracking costs: each operation is a fork, an exec, a listen and an exit.
    Case {
        by_parent: true,
        ..case("exec storm", Load::Processes, "listen", None)
    },
    Case {
        seconds: Some(60.0),
        by_parent: true,
        long: true,
        ..case("300 short-lived processes", Load::Processes, "listen", None)
    },
    Case {
        seconds: Some(60.0),
        long: true,
        ..case(
            "UDP bind, 100k/s, 60 s",
            Load::UdpBind,
            "bind",
            Some(100_000),
        )
    },
];

pub struct Options<'a> {
    pub seconds: f64,
    pub pairs: usize,
    pub only: Option<&'a str>,
    pub long: bool,
    pub default_only: bool,
}

/// The median and range of some figures.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        median,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ({:.2}–{:.2})", self.median, self.min, self.max)
    }
}

/// One tracer's figures for one load.
struct Figures {
    ratios: Vec<f64>,
    runs: Vec<Traced>,
    /// The run with the kernel's BPF statistics on.
    stats: Traced,
}

impl Figures {
    fn delivered(&self) -> (u64, u64) {
        let worst = self.runs.iter().min_by(|a, b| {
            (a.seen as f64 / a.ops as f64).total_cmp(&(b.seen as f64 / b.ops as f64))
        });
        worst.map_or((0, 0), |r| (r.seen, r.ops))
    }

    fn lost(&self) -> String {
        let lost: Vec<u64> = self.runs.iter().filter_map(|r| r.lost).collect();
        lost.iter().max().map_or_else(|| "-".into(), u64::to_string)
    }

    /// The tracer's own CPU, ms per 1000 lines it wrote.
    fn user_ms_per_k(&self) -> Spread {
        spread(
            self.runs
                .iter()
                .map(|r| ms_per_k(r.cpu_ns, r.lines))
                .collect(),
        )
    }

    fn kernel_ms_per_k(&self) -> f64 {
        ms_per_k(self.stats.kernel_ns(), self.stats.lines)
    }

    fn peak_mib(&self) -> f64 {
        self.runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0
    }

    fn final_mib(&self) -> f64 {
        self.runs.iter().map(|r| r.final_rss_kib).max().unwrap_or(0) as f64 / 1024.0
    }
}

fn ms_per_k(ns: u64, events: u64) -> f64 {
    if events == 0 {
        f64::NAN
    } else {
        ns as f64 / 1e6 / (events as f64 / 1e3)
    }
}

/// What one load measured: the no-tracer rate, each tracer's figures, and (default
/// configuration only) the paired ratios under `Tracer::Floor`.
struct Measured {
    base: f64,
    tracers: [Figures; 2],
    floor: Vec<f64>,
}

/// `pairs` rounds of: no tracer, portwatch, bpftrace (and the floor); then no tracer once more,
/// and one run of each tracer with the kernel's BPF statistics on.
fn measure(case: &Case, o: &Options, portwatch: &Path, only_kind: bool) -> Result<Measured> {
    let seconds = case.seconds.unwrap_or(o.seconds);
    let pairs = if case.long { 1 } else { o.pairs };
    let kind = only_kind.then_some(case.event);
    let tracers = [Tracer::Portwatch(kind), Tracer::Bpftrace(kind)];
    let with_floor = !only_kind && !case.long;
    let mut bare = vec![tracer::bare(case, seconds)?];
    let mut runs: [Vec<Traced>; 2] = [Vec::new(), Vec::new()];
    let mut floor = Vec::new();
    for _ in 0..pairs {
        for (i, t) in tracers.iter().enumerate() {
            runs[i].push(tracer::run(case, seconds, *t, portwatch, false)?);
        }
        if with_floor {
            floor.push(tracer::run(case, seconds, Tracer::Floor, portwatch, false)?.rate);
        }
        bare.push(tracer::bare(case, seconds)?);
    }
    let stats = {
        let _on = kstats::Enabled::new()?;
        tracers.map(|t| tracer::run(case, seconds, t, portwatch, true))
    };
    let paired = |rates: Vec<f64>| -> Vec<f64> {
        rates
            .iter()
            .enumerate()
            .map(|(i, r)| r / ((bare[i] + bare[i + 1]) / 2.0))
            .collect()
    };
    let [pw, bt] = runs;
    let [pw_stats, bt_stats] = stats;
    let figures = |runs: Vec<Traced>, stats: Traced| Figures {
        ratios: paired(runs.iter().map(|r| r.rate).collect()),
        runs,
        stats,
    };
    Ok(Measured {
        base: spread(bare.clone()).median,
        tracers: [figures(pw, pw_stats?), figures(bt, bt_stats?)],
        floor: paired(floor),
    })
}

pub fn run(root: &Path, o: &Options) -> Result<()> {
    let portwatch = root.join("target/release/portwatch");
    if std::process::Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("bpftrace is not installed (apt-get install bpftrace)");
    }
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| o.only.is_none_or(|w| c.name.contains(w)) && (o.long || !c.long))
        .collect();
    for only_kind in [false, true]
        .into_iter()
        .take(if o.default_only { 1 } else { 2 })
    {
        section(&cases, o, &portwatch, only_kind)?;
    }
    if o.only.is_none_or(|w| "flood".contains(w)) {
        flood::run(&portwatch, 8.0, o.pairs.min(3))?;
    }
    if o.only.is_none_or(|w| "idle".contains(w)) {
        println!(
            "\nidle, 10 s with nothing happening, then {} listens 250 ms apart:",
            20
        );
        for (name, t) in [
            ("portwatch watch", Tracer::Portwatch(None)),
            ("bpftrace", Tracer::Bpftrace(None)),
        ] {
            let i = idle::measure(t, &portwatch)?;
            let l = spread(i.latency_ms.clone());
            println!(
                "  {name:<16} {:>6.1} wake-ups/s; listen to stdout: median {:.1} ms, max {:.1} ms ({} of 20 seen)",
                i.wakeups_per_s,
                l.median,
                l.max,
                i.latency_ms.len()
            );
        }
    }
    Ok(())
}

fn section(cases: &[&Case], o: &Options, portwatch: &Path, only_kind: bool) -> Result<()> {
    if cases.is_empty() {
        return Ok(());
    }
    println!(
        "\n{}: {} s per run unless named, {} pairs (long loads: 1); ratio = median (range) of \
         the paired rate ratios; CPU in ms per 1000 events written (own: median; kernel: \
         its BPF programs, from the kernel's statistics); delivered: the worst run; floor: \
         bpftrace programs that do nothing on the syscall tracepoints portwatch uses here",
        if only_kind {
            "Only the load's kind: `portwatch watch --events KIND`, bpftrace on that kind's probes"
        } else {
            "As users run it: `portwatch watch` (all events, default ring), bpftrace on every kind's probes"
        },
        o.seconds,
        o.pairs
    );
    println!(
        "{:<26} {:>8} | {:>17} {:>8} {:>6} {:>6} {:>6} {:>11} | {:>17} {:>8} {:>6} {:>6} {:>5} | {:>17}",
        "load",
        "ops/s",
        "pw ratio",
        "pw deliv",
        "lost",
        "own",
        "kernel",
        "RSS peak/end",
        "bt ratio",
        "bt deliv",
        "own",
        "kernel",
        "RSS",
        "floor ratio"
    );
    let mut costs = Vec::new();
    for case in cases {
        let Measured {
            base,
            tracers: [pw, bt],
            floor,
        } = measure(case, o, portwatch, only_kind)?;
        let pct = |(seen, ops): (u64, u64)| 100.0 * seen as f64 / ops.max(1) as f64;
        println!(
            "{:<26} {:>8.0} | {:>17} {:>7.2}% {:>6} {:>6.2} {:>6.2} {:>5.0}/{:<5.0} | {:>17} {:>7.2}% {:>6.2} {:>6.2} {:>5.0} | {:>17}",
            case.name,
            base,
            spread(pw.ratios.clone()).to_string(),
            pct(pw.delivered()),
            pw.lost(),
            pw.user_ms_per_k().median,
            pw.kernel_ms_per_k(),
            pw.peak_mib(),
            pw.final_mib(),
            spread(bt.ratios.clone()).to_string(),
            pct(bt.delivered()),
            bt.user_ms_per_k().median,
            bt.kernel_ms_per_k(),
            bt.peak_mib(),
            if floor.is_empty() {
                "-".to_owned()
            } else {
                spread(floor).to_string()
            },
        );
        costs.push((case.name, pw.stats, bt.stats));
    }
    kernel_costs(costs);
    Ok(())
}

/// Each tracer's BPF programs: runs, time per run and per event written.
fn kernel_costs(costs: Vec<(&str, Traced, Traced)>) {
    println!("\nkernel cost per program (the run with the kernel's BPF statistics on):");
    for (name, pw, bt) in costs {
        for (tracer, t) in [("portwatch", pw), ("bpftrace", bt)] {
            println!("  {name}, {tracer}: {} events written", t.lines);
            for (prog, p) in &t.kernel {
                println!(
                    "    {prog:<24} {:>10} runs {:>8.0} ns/run {:>9.1} ms {:>8.0} ns/event",
                    p.runs,
                    p.ns as f64 / p.runs.max(1) as f64,
                    p.ns as f64 / 1e6,
                    p.ns as f64 / t.lines.max(1) as f64
                );
            }
        }
    }
}
