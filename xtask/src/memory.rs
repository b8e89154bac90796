//! The memory part of `cargo xtask bench`: portwatch as users run it (plain `portwatch watch`,
//! all events) while one process binds and closes 1,000,000 UDP sockets, then listens on and
//! closes 1,000,000 TCP sockets. No table may grow with the sockets ever seen: the figure is the
//! daemon's RSS once the load is over (and its peak). A benchmark that prints figures, not a test.
use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{
    bench::procs::{finish_load, go, load_name, peak_rss_kib, status_kib, wait_or_kill},
    loadgen::Load,
};

const CYCLES: u64 = 1_000_000;

pub fn run(root: &Path, only: Option<&str>) -> Result<()> {
    let loads = [
        ("UDP bind/close", Load::UdpBind),
        ("TCP listen/close", Load::Listen4),
    ];
    let name = |what: &str| format!("memory after {CYCLES} {what} cycles");
    if !loads
        .iter()
        .any(|(what, _)| only.is_none_or(|o| name(what).contains(o)))
    {
        return Ok(());
    }
    println!("\nportwatch watch (default configuration), one load process, {CYCLES} cycles each:");
    println!(
        "{:<34} {:>10} {:>12} {:>12} {:>10} {:>10}",
        "load", "seconds", "lines", "RSS before", "RSS after", "peak RSS"
    );
    for (what, load) in loads {
        if only.is_some_and(|o| !name(what).contains(o)) {
            continue;
        }
        let mut pw = Command::new(root.join("target/release/portwatch"))
            .arg("watch")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting portwatch")?;
        let pid = pw.id();
        let mut out = BufReader::with_capacity(1 << 20, pw.stdout.take().context("stdout")?);
        // Live events flow once the snapshot is complete.
        let mut line = String::new();
        while out.read_line(&mut line)? > 0 && !line.contains("\"snapshot_complete\"") {
            line.clear();
        }
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut lines = 0u64;
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            }
            lines
        });
        let before = status_kib(pid, "VmRSS:");
        let started = Instant::now();
        let mut load_gen = Command::new(std::env::current_exe()?)
            .args(["loadgen", load_name(load), "--seconds", "600"])
            .args(["--count", &CYCLES.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        go(&mut load_gen)?;
        let (ops, _) = finish_load(load_gen)?;
        let seconds = started.elapsed().as_secs_f64();
        // The daemon drains what is queued and runs its checks (every 200 ms).
        thread::sleep(Duration::from_secs(2));
        let after = status_kib(pid, "VmRSS:");
        let peak = peak_rss_kib(pid);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        wait_or_kill(&mut pw, Duration::from_secs(10))?;
        let lines = reader.join().map_err(|_| anyhow::anyhow!("reader"))?;
        println!(
            "{:<34} {:>10.1} {:>12} {:>10}Mi {:>8}Mi {:>8}Mi",
            format!("{what} ({ops})"),
            seconds,
            lines,
            before / 1024,
            after / 1024,
            peak / 1024
        );
    }
    Ok(())
}
