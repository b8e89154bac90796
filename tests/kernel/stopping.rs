//! How the daemon stops and counts: every signal that ends it leaves its totals, a signal
//! during start-up ends it at once, a closed or stuck stdout, and loss accounting under load.
use std::{
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddr},
    os::unix::process::ExitStatusExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

use crate::harness::{BIN, Daemon, EVENT_TIMEOUT, ours, require_root};

fn orderly_stop(signal: i32, name: &str) {
    let mut d = Daemon::start(&[]);
    d.sync();
    // Events still in the ring when the signal arrives come out before the stop record: made
    // right before the signal, they are not drained yet (the daemon drains every 50 ms), so
    // only the final drain can deliver them.
    const BINDS: usize = 200;
    let sockets: Vec<Socket> = (0..BINDS)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
                .unwrap();
            s
        })
        .collect();
    let (status, records, took) = d.stop_with(signal);
    assert_eq!(status.code(), Some(0), "exit status after {name}");
    let stop = records.last().unwrap();
    assert_eq!(stop["event"], "stop", "last record: {stop}");
    assert_eq!(stop["reason"], name);
    let ports: std::collections::HashSet<u64> = sockets
        .iter()
        .map(|s| u64::from(s.local_addr().unwrap().as_socket().unwrap().port()))
        .collect();
    let is_ours = ours("bind");
    let delivered = records
        .iter()
        .filter(|v| is_ours(v) && v["port"].as_u64().is_some_and(|p| ports.contains(&p)))
        .count();
    assert_eq!(delivered, BINDS, "binds made just before {name}");
    assert_eq!(stop["lost_total"], 0, "{stop}");
    assert!(stop["events"].as_u64().unwrap() >= BINDS as u64, "{stop}");
    // The requirement is one second; the bound here leaves room for a loaded CI machine.
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
}

#[test]
fn sigterm_stops_cleanly_with_totals() {
    orderly_stop(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_cleanly_with_totals() {
    orderly_stop(libc::SIGINT, "SIGINT");
}

/// Until start-up is done a signal keeps its default action: SIGINT ends portwatch there and
/// then, whatever step it is in (BTF, load, attach, snapshot), instead of after start-up has
/// run its course. Signalled at growing delays after spawn, each run either died of SIGINT with
/// nothing written, or (once start-up was over) stopped in order with its totals.
#[test]
fn a_signal_during_start_up_ends_it_at_once() {
    use std::io::Read;
    require_root();
    let _shared = crate::harness::shared();
    let mut during_start_up = 0;
    for delay_ms in (0..3000).step_by(50) {
        let mut child = Command::new(BIN)
            .arg("watch")
            .args(crate::harness::forced_attach_args())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The delay is what the test varies, not a wait for a result.
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit {delay_ms} ms in");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        if status.signal() == Some(libc::SIGINT) {
            assert!(out.is_empty(), "{delay_ms} ms: wrote {out}");
            during_start_up += 1;
            continue;
        }
        // Start-up was over: an orderly stop, then no later delay can land in start-up.
        assert_eq!(status.code(), Some(0), "{delay_ms} ms: {status}");
        let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "stop", "{delay_ms} ms: {out}");
        break;
    }
    assert!(
        during_start_up >= 2,
        "{during_start_up} runs signalled during start-up"
    );
}

/// Signals whose default action would end portwatch without its totals.
#[test]
fn every_other_signal_that_would_end_it_stops_it_with_totals() {
    for (signal, name) in [
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
    ] {
        orderly_stop(signal, name);
    }
}

#[test]
fn closed_stdout_ends_it_quietly() {
    require_root();
    let _shared = crate::harness::shared();
    // `portwatch watch | head -1`: read the first line, then close the pipe.
    let mut child = Command::new(BIN)
        .arg("watch")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"event\":\"start\""), "{first}");
    // The reader was dropped with the BufReader: the pipe has no reader any more.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "portwatch kept running with stdout closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(
        !err.contains("error") && !err.contains("panicked"),
        "stderr: {err}"
    );
}

#[test]
fn full_ring_buffer_is_counted_and_reported() {
    // The smallest ring against a burst of binds from this thread.
    let _flood = crate::harness::exclusive();
    let mut d = Daemon::start_alone(&["--ring-buffer-size", "4096"]);
    const BURST: usize = 20_000;
    for _ in 0..BURST {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
    }
    let loss = d.expect("loss record", |v| {
        v["event"] == "loss" && v["ring_buffer_full"]["bind"].as_u64().unwrap_or(0) > 0
    });
    let (status, records, _) = d.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0));
    let stop = records.last().unwrap();
    let lost = stop["ring_buffer_full"]["bind"].as_u64().unwrap();
    assert!(lost >= loss["ring_buffer_full"]["bind"].as_u64().unwrap());
    assert_eq!(stop["lost_total"].as_u64().unwrap(), lost_total(stop));
    // Every bind of the burst was either delivered or counted lost (the counter also holds
    // other processes' binds, so it can only be more).
    let seen = records.iter().filter(|v| ours("bind")(v)).count() as u64;
    assert!(
        seen + lost >= BURST as u64,
        "seen {seen} + lost {lost} < {BURST}"
    );
    assert!(
        seen < BURST as u64,
        "a 4 KiB ring cannot have held the whole burst"
    );
}

#[test]
fn under_overload_events_seen_plus_lost_equal_events_generated_exactly() {
    use std::io::Write;
    const BURST: u64 = 20_000;
    let _flood = crate::harness::exclusive();
    // A child that binds only when told: the kernel filter can then be set to its pid alone.
    let mut child = Command::new(crate::harness::bind_burst_helper())
        .arg(BURST.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let d = Daemon::start_alone(&[
        "--ring-buffer-size",
        "4096",
        "--pid",
        &pid.to_string(),
        "--events",
        "bind",
    ]);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
    let (status, records, _) = d.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0));
    let stop = records.last().unwrap();
    let seen = records
        .iter()
        .filter(|v| v["event"] == "bind" && v["pid"] == pid)
        .count() as u64;
    let lost = stop["ring_buffer_full"]["bind"].as_u64().unwrap();
    assert!(
        lost > 0,
        "a 4 KiB ring must overflow under a burst of {BURST}"
    );
    // A reader slower than the burst (the suite loads the machine) costs records at the output
    // queue: counted there, and here nothing else comes through but these binds.
    let dropped = stop["output_dropped"].as_u64().unwrap();
    assert_eq!(
        seen + lost + dropped,
        BURST,
        "seen {seen} + lost {lost} + dropped at the output {dropped}"
    );
    assert_eq!(stop["in_flight_table_full"]["bind"], 0);
    // The stream's sequence numbers skip exactly the lost records.
    let seqs: Vec<u64> = records.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers increase"
    );
    let gaps: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum::<u64>() + seqs[0];
    assert_eq!(
        gaps,
        stop["lost_total"].as_u64().unwrap(),
        "gaps are the losses"
    );
}

fn lost_total(v: &Value) -> u64 {
    let kinds = |k: &str| -> u64 {
        let counts = v[k].as_object().unwrap();
        assert_eq!(counts.len(), 6, "one count per record kind: {counts:?}");
        counts.values().map(|n| n.as_u64().unwrap()).sum()
    };
    let shed = v["shed"].as_object().unwrap();
    assert_eq!(shed.len(), 2, "listen and bind: {shed:?}");
    kinds("ring_buffer_full")
        + kinds("in_flight_table_full")
        + shed.values().map(|n| n.as_u64().unwrap()).sum::<u64>()
        + v["decode_errors"].as_u64().unwrap()
        + v["output_dropped"].as_u64().unwrap()
}

/// A reader that stops reading (`portwatch watch | sleep 60`) blocks neither the ring buffer
/// nor a stop: SIGTERM still ends portwatch, the records the output could not take are
/// counted (`output_dropped`), and the stop record goes to stderr when stdout does not take
/// it. Exactly: every number below the stop record's `seq` was delivered on stdout, whole, or
/// is counted lost.
#[test]
fn a_reader_that_stops_reading_blocks_nothing_and_loses_nothing_silently() {
    use std::{
        io::{Read, Write},
        os::fd::{FromRawFd, OwnedFd},
    };
    const BURST: u64 = 60_000;
    let _flood = crate::harness::exclusive();
    let mut burst = Command::new(crate::harness::bind_burst_helper())
        .arg(BURST.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) just opened both; each is owned once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut child = Command::new(BIN)
        .args([
            "watch",
            "--events",
            "bind",
            "--pid",
            &burst.id().to_string(),
            // The burst is one process's: no flood limit to shed it, the pipe must fill.
            "--flood-rate",
            "0",
        ])
        .args(crate::harness::forced_attach_args())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read until live events flow, then never again.
    let mut stdout = BufReader::new(std::fs::File::from(read));
    let mut delivered = Vec::new();
    for line in stdout.by_ref().lines() {
        let line = line.unwrap();
        let last = line.contains("\"event\":\"snapshot_complete\"");
        delivered.push(line);
        if last {
            break;
        }
    }
    burst.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(burst.wait().unwrap().success());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within {EVENT_TIMEOUT:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let stop = err
        .lines()
        .find_map(|l| l.split_once("counting what could not be written: "))
        .map(|(_, json)| serde_json::from_str::<Value>(json).unwrap())
        .unwrap_or_else(|| panic!("no stop record on stderr: {err}"));
    // What the pipe holds now: whole lines, every one valid JSON.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.is_empty() || rest.ends_with('\n'), "a half line");
    delivered.extend(rest.lines().map(str::to_owned));
    for line in &delivered {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let dropped = stop["output_dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{stop}");
    assert_eq!(
        lost_total(&stop),
        stop["lost_total"].as_u64().unwrap(),
        "{stop}"
    );
    assert_eq!(
        delivered.len() as u64 + stop["lost_total"].as_u64().unwrap(),
        stop["seq"].as_u64().unwrap(),
        "delivered + counted lost = numbered: {stop}"
    );
}
