//! `portwatch doctor`: a self-test for any host, and after every kernel upgrade. It attaches the
//! hooks as `watch` does, has a child process (`portwatch canary`) make sockets through every
//! path portwatch covers, runs the child's records through the whole pipeline, and prints which
//! path was seen through which hook. A path that is blind makes it exit non-zero, with why.
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use self::checks::{Check, checks};

use crate::{
    cli::{Cli, Command as Cmd, DoctorArgs, WatchArgs},
    clock::Clock,
    cmd::session::{self, Plan, Session},
    error::{Error, Result},
    kernel::{diagnostics::KernelLog, hooks::Chosen},
    output::{Output, format::Native, sink::Memory},
    state::inventory,
};

mod checks;

/// How long the canaries' records may take to come through.
const WAIT: Duration = Duration::from_secs(5);

/// What a doctor run saw.
struct Observed {
    /// The canary process's records, through the whole pipeline.
    records: Vec<Value>,
    /// (port, netns) of the TCP listeners the inventory found held by the canary.
    snapshot: Vec<(u64, u64)>,
    /// The canary's lines.
    canaries: Vec<String>,
    hooks: Vec<Chosen>,
    /// The kernel programs' diagnostics about the canary process (`--verbose` only).
    diagnostics: Vec<String>,
}

pub fn run(doctor: DoctorArgs) -> Result<()> {
    let cli = <Cli as clap::Parser>::parse_from(["portwatch", "watch"]);
    let Cmd::Watch(mut args) = cli.command else {
        unreachable!("parsed a watch command")
    };
    args.attach = doctor.attach;
    let verbose = doctor.verbose;
    let Observed {
        records,
        snapshot,
        canaries,
        hooks,
        diagnostics,
    } = observe(&args, verbose)?;
    let checks = checks(&canaries, &snapshot);
    let mut out = std::io::stdout().lock();
    let mut blind = Vec::new();
    let rows: Vec<[String; 3]> = checks
        .iter()
        .map(|c| {
            let hook = seen_by(&hooks, c);
            let (attach, why_not) = hook_state(&hooks, hook);
            let seen = match &c.made {
                Ok(found) if found(&records) => "yes".to_owned(),
                Ok(_) => {
                    blind.push(format!("{}: no record within {WAIT:?}{why_not}", c.path));
                    "NO".to_owned()
                }
                Err(reason) => format!("not tested: {reason}"),
            };
            [c.path.to_owned(), format!("{hook} ({attach})"), seen]
        })
        .collect();
    let header = ["PATH", "HOOK", "SEEN"].map(str::to_owned);
    write_table(&mut out, &header, &rows).map_err(Error::from_output)?;
    if verbose {
        writeln!(out, "\nThe canary's records:").map_err(Error::from_output)?;
        for r in &records {
            writeln!(out, "{r}").map_err(Error::from_output)?;
        }
        writeln!(out, "\nThe kernel programs' diagnostics about it:")
            .map_err(Error::from_output)?;
        for d in &diagnostics {
            writeln!(out, "{d}").map_err(Error::from_output)?;
        }
    }
    if blind.is_empty() {
        return Ok(());
    }
    for b in &blind {
        eprintln!("portwatch: doctor: blind: {b}");
    }
    Err(Error::Doctor(blind.len(), checks.len()))
}

/// The hook that sees `c`: io_uring's requests go to the kernel-function hooks where the
/// io_uring hook is not needed (and so skipped); one that failed is the blind one.
fn seen_by(hooks: &[Chosen], c: &Check) -> &'static str {
    let skipped = |name: &str| hooks.iter().any(|h| h.hook == name && h.skipped.is_some());
    match c.path.strip_prefix("io_uring ") {
        Some(kind) if skipped(c.hook) => match kind {
            "bind" => "bind",
            "listen" => "listen",
            _ => "accept",
        },
        _ => c.hook,
    }
}

/// The attach type `hook` got, and (for a hook that is not attached) why, for a blind path.
fn hook_state(hooks: &[Chosen], hook: &str) -> (String, String) {
    let Some(h) = hooks.iter().find(|h| h.hook == hook) else {
        // Not a kernel hook: the inventory reads sock_diag in each namespace.
        return ("sock_diag".into(), String::new());
    };
    match h.attach {
        Some(a) => (a.to_string(), String::new()),
        None => {
            let why = h.missing.or(h.skipped).unwrap_or("");
            let refused: Vec<String> = h
                .refused
                .iter()
                .map(|r| format!("{}: {}", r.attach, r.error))
                .collect();
            (
                "not attached".into(),
                format!(
                    " (hook {hook} is not attached: {why}; {})",
                    refused.join("; ")
                ),
            )
        }
    }
}

/// Attaches, runs the canary and returns the child's records, the listeners the inventory
/// found while the canary held its sockets, the canary's lines and the hooks; with
/// `diagnostics`, the programs' own lines about the canary.
fn observe(args: &WatchArgs, diagnostics: bool) -> Result<Observed> {
    let plan = Plan::plain(args)?;
    let Session {
        mut ebpf,
        hooks,
        mut ring,
        counters,
        tracing,
        mut log,
    } = session::start(args, &plan.filters, diagnostics)?;
    let clock = Clock::now();
    let sink = Memory::default();
    let out = Output::new(Box::new(Native), sink.clone());
    let mut stream = session::snapshot_stream(&mut ebpf, counters, tracing, out, plan, &clock)?;

    let (mut child, lines) = start_canary(log.as_ref())?;
    let pid = child.id();
    // While the canary holds its sockets: the (port, netns) of the TCP listeners the inventory
    // (the snapshot's and `ls`'s) finds held by its process.
    let (now, _) = inventory::snapshot().map_err(|e| Error::io("listing sockets", e))?;
    let snapshot: Vec<(u64, u64)> = now
        .iter()
        .filter(|l| l.owners.contains(&pid) && l.socket.proto == crate::model::net::Proto::Tcp)
        .map(|l| (u64::from(l.socket.local.port()), u64::from(l.socket.netns)))
        .collect();
    drop(child.stdin.take()); // the canary closes its sockets and exits
    let _ = child.wait();

    let expected = checks(&lines, &snapshot);
    let deadline = Instant::now() + WAIT;
    let records = loop {
        stream.drain(ring.get_mut(), &clock)?;
        stream.tick(&clock)?;
        stream.flush()?;
        let records: Vec<Value> = sink
            .lines()
            .iter()
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .filter(|v| v["pid"] == pid)
            .collect();
        let all = expected
            .iter()
            .all(|c| c.made.as_ref().map_or(true, |found| found(&records)));
        if all || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A program logs just after it sends its record: the last records' lines are in by now.
    let kernel_lines = log.as_mut().map(KernelLog::take).unwrap_or_default();
    drop(log);
    drop(ebpf);
    Ok(Observed {
        records,
        snapshot,
        canaries: lines,
        hooks,
        diagnostics: kernel_lines,
    })
}

/// The canary started (its pid kept by the programs' diagnostics, if on), once it holds every
/// socket it makes: the child and the lines it wrote about them.
fn start_canary(log: Option<&KernelLog>) -> Result<(std::process::Child, Vec<String>)> {
    let spawn = |e| Error::io("starting the canary (portwatch canary)", e);
    let mut child = Command::new("/proc/self/exe")
        .arg("canary")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(log) = log {
        log.keep_pid(child.id());
    }
    let mut lines = Vec::new();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| spawn(std::io::Error::other("no stdout")))?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(spawn)?;
        if line == "ready" {
            return Ok((child, lines));
        }
        lines.push(line);
    }
    // A canary that failed proves nothing: no path may pass as "not tested" because of it.
    let status = child.wait().map_err(spawn)?;
    Err(spawn(std::io::Error::other(format!(
        "it ended ({status}) before making every canary"
    ))))
}

fn write_table(
    out: &mut impl Write,
    header: &[String; 3],
    rows: &[[String; 3]],
) -> std::io::Result<()> {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}
