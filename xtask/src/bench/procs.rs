//! The benchmark's child processes: load generators (`loadgen`) and what /proc says about a
//! tracer (CPU time, RSS).
use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::loadgen::Load;

pub(crate) fn load_name(load: Load) -> &'static str {
    match load {
        Load::Accept => "accept",
        Load::Listen4 => "listen4",
        Load::Listen6 => "listen6",
        Load::UdpBind => "udp-bind",
        Load::Processes => "processes",
    }
}

/// A load generator, waiting for `go`.
pub(crate) fn spawn_load(load: Load, rate: Option<u64>, seconds: f64) -> Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "loadgen",
        load_name(load),
        "--seconds",
        &seconds.to_string(),
    ]);
    if let Some(rate) = rate {
        cmd.args(["--rate", &rate.to_string()]);
    }
    Ok(cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?)
}

pub(crate) fn go(child: &mut Child) -> Result<()> {
    child
        .stdin
        .take()
        .context("loadgen stdin")?
        .write_all(b"go\n")?;
    Ok(())
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
    let end = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > end {
            let comm =
                std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
            eprintln!(
                "xtask: bench: {} ({}) did not exit in time; killed",
                child.id(),
                comm.trim()
            );
            child.kill()?;
            child.wait()?;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// CPU time of all of `pid`'s threads so far, in ns, from schedstat: /proc/PID/stat counts
/// 10 ms ticks, too coarse for the rate-capped loads (a few tens of ms in all).
pub(crate) fn cpu_ns(pid: u32) -> u64 {
    per_thread(pid, "schedstat", |s| {
        s.split_whitespace().next()?.parse().ok()
    })
}

/// Context switches of all of `pid`'s threads so far: each is a wake-up (or a preemption).
pub(crate) fn context_switches(pid: u32) -> u64 {
    per_thread(pid, "status", |s| {
        Some(
            s.lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum(),
        )
    })
}

fn per_thread(pid: u32, file: &str, value: impl Fn(&str) -> Option<u64>) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join(file)).ok())
        .filter_map(|s| value(&s))
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
