//! `cargo xtask bench`: what portwatch costs under load, next to a bpftrace script on the same
//! tracepoints, in one run on this machine. A benchmark that prints figures, not a test.
//!
//! For each load (loopback generators in `loadgen`): a run with no tracer, one under portwatch,
//! one under bpftrace. Reported: the load's rate as a ratio of the no-tracer rate, the tracer's
//! CPU time per 1000 events, events it delivered for the generator vs events generated, events
//! it counted as lost, and its peak RSS.
use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::loadgen::Load;

struct Case {
    name: &'static str,
    load: Load,
    /// The portwatch event kind the load produces (and the only one traced).
    event: &'static str,
    rate: Option<u64>,
    /// Seconds the load runs (None: `--seconds`).
    seconds: Option<f64>,
    /// The events come from the generator's children, not from the generator.
    by_parent: bool,
    /// bpftrace probe counting the generator's events of this kind.
    bpftrace: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "accept storm",
        event: "accept",
        load: Load::Accept,
        rate: None,
        seconds: None,
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept /pid == $1 && args->ret >= 0/",
    },
    Case {
        name: "TCP v4 listen churn",
        event: "listen",
        load: Load::Listen4,
        rate: None,
        seconds: None,
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_listen /pid == $1/",
    },
    Case {
        name: "TCP v6 listen churn",
        event: "listen",
        load: Load::Listen6,
        rate: None,
        seconds: None,
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_listen /pid == $1/",
    },
    Case {
        name: "UDP bind churn",
        event: "bind",
        load: Load::UdpBind,
        rate: None,
        seconds: None,
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_bind /pid == $1/",
    },
    Case {
        name: "accept, 5000/s",
        event: "accept",
        load: Load::Accept,
        rate: Some(5000),
        seconds: None,
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept /pid == $1 && args->ret >= 0/",
    },
    Case {
        name: "TCP v4 listen, 5000/s",
        event: "listen",
        load: Load::Listen4,
        rate: Some(5000),
        seconds: None,
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_listen /pid == $1/",
    },
    Case {
        name: "UDP bind, 5000/s",
        event: "bind",
        load: Load::UdpBind,
        rate: Some(5000),
        seconds: None,
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_bind /pid == $1/",
    },
    Case {
        name: "300 short-lived processes",
        event: "listen",
        load: Load::Processes,
        rate: None,
        seconds: Some(60.0),
        by_parent: true,
        bpftrace: "tracepoint:syscalls:sys_exit_listen /curtask->real_parent->tgid == $1/",
    },
    Case {
        name: "UDP bind, 100k/s, 60 s",
        event: "bind",
        load: Load::UdpBind,
        rate: Some(100_000),
        seconds: Some(60.0),
        by_parent: false,
        bpftrace: "tracepoint:syscalls:sys_exit_bind /pid == $1/",
    },
];

/// What the tracer under test made of one run.
#[derive(Default)]
struct Traced {
    ops: u64,
    rate: f64,
    seen: u64,
    lost: Option<u64>,
    cpu_ns: u64,
    peak_rss_kib: u64,
}

pub(crate) fn load_name(load: Load) -> &'static str {
    match load {
        Load::Accept => "accept",
        Load::Listen4 => "listen4",
        Load::Listen6 => "listen6",
        Load::UdpBind => "udp-bind",
        Load::Processes => "processes",
    }
}

fn spawn_load(case: &Case, seconds: f64) -> Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "loadgen",
        load_name(case.load),
        "--seconds",
        &seconds.to_string(),
    ]);
    if let Some(rate) = case.rate {
        cmd.args(["--rate", &rate.to_string()]);
    }
    Ok(cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?)
}

/// The load's operations and its rate (operations per second).
pub(crate) fn finish_load(mut child: Child) -> Result<(u64, f64)> {
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("loadgen stdout")?).read_line(&mut line)?;
    wait_or_kill(&mut child, Duration::from_secs(10))?;
    let (ops, secs) = line.trim().split_once(' ').context("loadgen's output")?;
    let ops: u64 = ops.parse().context("loadgen's count")?;
    let secs: f64 = secs.parse().context("loadgen's time")?;
    Ok((ops, ops as f64 / secs.max(1e-3)))
}

/// Waits for a child, killing it if it has not exited in time (a benchmark never hangs).
pub(crate) fn wait_or_kill(child: &mut Child, limit: Duration) -> Result<()> {
    let end = std::time::Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > end {
            eprintln!("xtask: bench: {} did not exit in time; killed", child.id());
            child.kill()?;
            child.wait()?;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub(crate) fn go(child: &mut Child) -> Result<()> {
    child
        .stdin
        .take()
        .context("loadgen stdin")?
        .write_all(b"go\n")?;
    Ok(())
}

/// CPU time of all of `pid`'s threads so far, in ns, from schedstat: /proc/PID/stat counts
/// 10 ms ticks, too coarse for the rate-capped loads (a few tens of ms in all).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/PID/status` figure in KiB (VmRSS, VmHWM), 0 if unreadable.
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Counts the tracer's output lines that concern `pid` (and remembers portwatch's loss count).
/// Cheap per line (bytes, no allocation, portwatch's `event` and `pid` looked for only in the
/// line's first bytes, where they are): this reader shares the cores with the load and the
/// tracer, and must never be what holds the tracer back.
fn count_lines(
    child: &mut Child,
    pid: Arc<AtomicU64>,
    event: Option<&'static str>,
    by_parent: bool,
) -> Result<thread::JoinHandle<(u64, Option<u64>)>> {
    use memchr::memmem::Finder;
    let key = if by_parent { "ppid" } else { "pid" };
    let out = child.stdout.take().context("tracer stdout")?;
    Ok(thread::spawn(move || {
        let mut seen = 0;
        let mut lost = None;
        let mut reader = BufReader::with_capacity(1 << 20, out);
        let mut line = Vec::with_capacity(4096);
        let event_needle = event.map(|e| format!("\"event\":\"{e}\""));
        let event_finder = event_needle.as_deref().map(Finder::new);
        let stop = Finder::new("\"event\":\"stop\"");
        let mut target = u64::MAX;
        let mut needle = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let now = pid.load(Ordering::Relaxed);
            if now != target {
                target = now;
                needle = match event {
                    Some(_) => format!("\"{key}\":{target},"),
                    None => format!("{target}\n"),
                }
                .into_bytes();
            }
            match &event_finder {
                Some(event) => {
                    // `{"seq":N,"event":"bind","time":"...","pid":P,"tid":..,` (ppid comes later).
                    let head = &line[..line.len().min(if by_parent { line.len() } else { 160 })];
                    if event.find(head).is_some() && memchr::memmem::find(head, &needle).is_some() {
                        seen += 1;
                    } else if stop.find(&line[..line.len().min(64)]).is_some() {
                        lost = String::from_utf8_lossy(&line)
                            .split("\"lost_total\":")
                            .nth(1)
                            .and_then(|s| {
                                s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
                            });
                    }
                }
                None => {
                    if line == needle {
                        seen += 1;
                    }
                }
            }
            line.clear();
        }
        (seen, lost)
    }))
}

fn run_traced(case: &Case, seconds: f64, tracer: &str, portwatch: &Path) -> Result<Traced> {
    let mut load = spawn_load(case, seconds)?;
    let pid = Arc::new(AtomicU64::new(u64::from(load.id())));
    let mut t = match tracer {
        "portwatch" => Command::new(portwatch)
            .args([
                "watch",
                "--ring-buffer-size",
                "4194304",
                "--events",
                case.event,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
        _ => Command::new("bpftrace")
            .args([
                "-e",
                &format!(
                    "{} {{ printf(\"%d\\n\", {}); }}",
                    case.bpftrace.replace("$1", &load.id().to_string()),
                    if case.by_parent {
                        "curtask->real_parent->tgid"
                    } else {
                        "pid"
                    }
                ),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    };
    let counter = count_lines(
        &mut t,
        Arc::clone(&pid),
        (tracer == "portwatch").then_some(case.event),
        case.by_parent,
    )?;
    // Attach time: generous, the load waits.
    thread::sleep(Duration::from_secs(if tracer == "portwatch" {
        3
    } else {
        5
    }));
    let before = cpu_ns(t.id());
    go(&mut load)?;
    let (ops, rate) = finish_load(load)?;
    thread::sleep(Duration::from_millis(500)); // let the tracer drain
    let cpu_ns = cpu_ns(t.id()).saturating_sub(before);
    let peak = peak_rss_kib(t.id());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.id() as i32, libc::SIGINT) };
    wait_or_kill(&mut t, Duration::from_secs(10))?;
    let (seen, lost) = counter
        .join()
        .map_err(|_| anyhow::anyhow!("counter thread"))?;
    Ok(Traced {
        ops,
        rate,
        seen,
        lost,
        cpu_ns,
        peak_rss_kib: peak,
    })
}

pub fn run(root: &Path, seconds: f64, only: Option<&str>) -> Result<()> {
    let portwatch = root.join("target/release/portwatch");
    if Command::new("bpftrace").arg("--version").output().is_err() {
        bail!("bpftrace is not installed (apt-get install bpftrace)");
    }
    println!(
        "load generators run {seconds} s each unless named otherwise; rates are ratios of the \
         faster of two runs without a tracer (before and after); tracer CPU in ms per 1000 \
         events delivered"
    );
    println!(
        "{:<26} {:>10} | {:>6} {:>9} {:>15} {:>7} {:>8} | {:>6} {:>9} {:>15} {:>8}",
        "load",
        "ops/s",
        "pw",
        "pw ms/1k",
        "pw seen/gen",
        "pw lost",
        "pw RSS",
        "bt",
        "bt ms/1k",
        "bt seen/gen",
        "bt RSS"
    );
    for case in CASES
        .iter()
        .filter(|c| only.is_none_or(|o| c.name.contains(o)))
    {
        let seconds = case.seconds.unwrap_or(seconds);
        let bare = || -> Result<f64> {
            let mut load = spawn_load(case, seconds)?;
            go(&mut load)?;
            Ok(finish_load(load)?.1)
        };
        let before = bare()?;
        let runs =
            ["portwatch", "bpftrace"].map(|tracer| run_traced(case, seconds, tracer, &portwatch));
        // This machine's speed drifts between runs; the faster bare run is the fairer base.
        let base = before.max(bare()?);
        let mut row = format!("{:<26} {:>10.0} |", case.name, base);
        for (tracer, r) in ["portwatch", "bpftrace"].into_iter().zip(runs) {
            let r = r?;
            let ratio = r.rate / base;
            let ms_per_k = if r.seen > 0 {
                r.cpu_ns as f64 / 1e6 / (r.seen as f64 / 1e3)
            } else {
                f64::NAN
            };
            let lost = r.lost.map_or_else(|| "-".into(), |l| l.to_string());
            if tracer == "portwatch" {
                row += &format!(
                    " {:>6.2} {:>9.2} {:>15} {:>7} {:>6}Mi |",
                    ratio,
                    ms_per_k,
                    format!("{}/{}", r.seen, r.ops),
                    lost,
                    r.peak_rss_kib / 1024
                );
            } else {
                row += &format!(
                    " {:>6.2} {:>9.2} {:>15} {:>6}Mi",
                    ratio,
                    ms_per_k,
                    format!("{}/{}", r.seen, r.ops),
                    r.peak_rss_kib / 1024
                );
            }
        }
        println!("{row}");
    }
    Ok(())
}
