//! How the daemon behaves: start-up report, orderly stop, closed stdout, loss accounting, and one
//! clear line plus a non-zero exit for every start-up failure.
use std::{
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddr},
    os::unix::process::{CommandExt, ExitStatusExt},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};

use crate::harness::{
    BIN, Daemon, EVENT_TIMEOUT, UnprivilegedCopy, expected_attach, kprobes_available, lockdown,
    ours, require_root, run_to_exit,
};

#[test]
fn attach_types_are_the_best_the_kernel_allows() {
    let d = Daemon::start(&[]);
    let start = d.start_record();
    assert_eq!(start["pid"], d_pid(&d));
    let hooks = start["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 8);
    let get = |name: &str| hooks.iter().find(|h| h["hook"] == name).unwrap().clone();
    for (hook, attach) in expected_attach() {
        assert_eq!(get(&hook)["attach"], attach.as_str(), "{hook}: {hooks:?}");
    }
    let targets = |name: &str| get(name)["targets"].clone();
    match d.attach("bind").as_str() {
        Some("tracepoint") => assert_eq!(
            targets("bind"),
            json!(["syscalls/sys_enter_bind", "syscalls/sys_exit_bind"])
        ),
        Some("fentry") => assert_eq!(
            targets("bind"),
            json!([
                "fentry/inet_bind",
                "fexit/inet_bind",
                "fentry/inet6_bind",
                "fexit/inet6_bind"
            ])
        ),
        _ => {}
    }
    if d.attach("listen") == "kprobe" {
        assert_eq!(
            targets("listen"),
            json!([
                "kprobe/inet_csk_listen_start",
                "kretprobe/inet_csk_listen_start"
            ])
        );
    }
    // A hook on the tracepoints says why each better attach type was not used, and the reason
    // is the machine's (read independently of portwatch).
    for hook in ["bind", "listen", "accept"] {
        if get(hook)["attach"] == "tracepoint" && std::env::var("PORTWATCH_TEST_ATTACH").is_err() {
            let refused: Vec<Value> = get(hook)["refused"].as_array().unwrap().clone();
            assert_eq!(refused[0]["attach"], "fentry", "{hook}: {refused:?}");
            assert_eq!(refused[1]["attach"], "kprobe", "{hook}: {refused:?}");
            let error = |i: usize| refused[i]["error"].as_str().unwrap().to_owned();
            if lockdown().is_some_and(|mode| mode != "none") {
                assert!(error(0).contains("lockdown"), "{hook}: {refused:?}");
            }
            if !kprobes_available() {
                assert!(error(1).contains("no kprobes"), "{hook}: {refused:?}");
            }
        }
    }
    assert_eq!(targets("close"), json!(["inet_sock_set_state"]));
}

fn d_pid(d: &Daemon) -> Value {
    d.start_record()["pid"].clone()
}

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

/// A program whose attach the kernel refused is not left loaded for nothing: while a daemon
/// runs, no kernel-function program of an attach type its hook did not get is in the kernel
/// (on this machine, where kprobes load but cannot attach, they were).
#[test]
fn no_program_stays_loaded_that_is_not_attached() {
    let _alone = crate::harness::exclusive();
    let d = Daemon::start_alone(&[]);
    let loaded = crate::harness::loaded_bpf_programs();
    for (hook, programs) in [
        ("bind", ["bind_fentry", "bind_kprobe"]),
        ("listen", ["listen_fentry", "listen_kprobe"]),
        ("accept", ["accept_fentry", "accept_kprobe"]),
    ] {
        let attach = d.attach(hook);
        for p in programs {
            let kind = p.rsplit('_').next().unwrap();
            if attach != kind {
                assert!(
                    !loaded.iter().any(|l| l.starts_with(p)),
                    "{p} is loaded while {hook} is on {attach}: {loaded:?}"
                );
            }
        }
    }
    assert!(loaded.iter().any(|l| l.starts_with("close_")), "{loaded:?}");
}

/// The cgroup programs are attached through BPF links, so they leave the host's cgroup with
/// portwatch, even when it is killed with SIGKILL: the kernel's own list of programs attached
/// to the cgroup v2 root says so.
#[test]
fn nothing_stays_attached_to_the_cgroup_after_sigkill() {
    let _alone = crate::harness::exclusive();
    let before = cgroup_root_programs();
    let d = Daemon::start_alone(&[]);
    assert_eq!(d.attach("udp_close"), "cgroup");
    let during = cgroup_root_programs();
    // Its own: what appeared with it, one program per attach type (the kernel's ids, so a
    // program another process attaches or detaches meanwhile does not count).
    let ours: Vec<Vec<u32>> = during
        .iter()
        .zip(&before)
        .map(|(now, then)| now.difference(then).copied().collect())
        .collect();
    assert!(ours.iter().all(|ids| ids.len() == 1), "{ours:?}");
    let (status, _, _) = d.stop_with(libc::SIGKILL);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let now = cgroup_root_programs();
        let left: Vec<u32> = ours
            .iter()
            .zip(&now)
            .flat_map(|(ids, attached)| ids.iter().filter(|id| attached.contains(id)))
            .copied()
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still attached after SIGKILL: programs {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The ids of the programs attached to the cgroup v2 root for post_bind4, post_bind6 and
/// sock_release (BPF_PROG_QUERY, independent of portwatch).
fn cgroup_root_programs() -> [std::collections::BTreeSet<u32>; 3] {
    const BPF_PROG_QUERY: libc::c_long = 16;
    const ATTACH_TYPES: [u32; 3] = [12, 13, 34];
    let root = std::fs::File::open(crate::harness::cgroup2_root()).expect("cgroup v2 root");
    ATTACH_TYPES.map(|attach_type| {
        let mut ids = [0u32; 64];
        // union bpf_attr, query: target_fd, attach_type, query_flags, attach_flags, prog_ids
        // (a pointer at byte 16), prog_cnt (at byte 24: room in, count out), ...
        let mut attr = [0u32; 16];
        attr[0] = std::os::fd::AsRawFd::as_raw_fd(&root) as u32;
        attr[1] = attach_type;
        let ptr = ids.as_mut_ptr() as u64;
        attr[4] = ptr as u32;
        attr[5] = (ptr >> 32) as u32;
        attr[6] = ids.len() as u32;
        // SAFETY: a zeroed bpf_attr of 64 bytes with the query's fields set; the kernel writes
        // at most prog_cnt ids into `ids`.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_QUERY,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        assert_eq!(
            ret,
            0,
            "BPF_PROG_QUERY: {}",
            std::io::Error::last_os_error()
        );
        ids[..(attr[6] as usize).min(ids.len())]
            .iter()
            .copied()
            .collect()
    })
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
    assert_eq!(seen + lost, BURST, "seen {seen} + lost {lost}");
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
    kinds("ring_buffer_full")
        + kinds("in_flight_table_full")
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

/// Asserts a start-up failure: exit code 1, one stderr line naming the cause.
fn assert_fails(cmd: &mut Command, cause: &str) {
    let (code, out, err) = run_to_exit(cmd);
    assert_eq!(code, 1, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("portwatch: error: "), "{err}");
    assert!(err.contains(cause), "expected `{cause}` in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing on stdout: {out}");
}

/// CAP_BPF and CAP_PERFMON without CAP_DAC_READ_SEARCH: tracefs is mounted but root's (mode
/// 0700), and the error says so rather than "tracefs is not mounted".
#[test]
fn bpf_capabilities_without_tracefs_access_are_said_exactly() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let tracefs = std::path::Path::new("/sys/kernel/tracing");
    let mode = std::fs::metadata(tracefs).map(|m| m.permissions().mode() & 0o777);
    if mode.as_ref().map_or(true, |m| m & 0o005 != 0) {
        eprintln!("skipped: tracefs is not root's alone here ({mode:?})");
        return;
    }
    let bin = UnprivilegedCopy::new("caps");
    assert_fails(
        bin.as_nobody_with("+bpf,+perfmon").arg("watch"),
        "tracefs is mounted at /sys/kernel/tracing but this user cannot read it",
    );
}

/// As uid 65534 with CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH only, portwatch runs, and
/// says what it lacks: the start record and stderr name CAP_SYS_PTRACE and CAP_SYS_ADMIN and
/// what each costs, and a root-owned listener's missing owner is blamed on the missing
/// CAP_SYS_PTRACE, not on a kernel-owned socket.
#[test]
fn missing_privileges_are_said_exactly_and_the_owners_they_hide_too() {
    require_root();
    let _shared = crate::harness::shared();
    let (_held, tcp, _) = crate::harness::hold_sockets(&[], None);
    let bin = UnprivilegedCopy::new("fewcaps");
    let mut child = bin
        .as_nobody_with("+bpf,+perfmon,+dac_read_search")
        .arg("watch")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let records = crate::harness::pump(child.stdout.take().unwrap());
    let deadline = Instant::now() + crate::harness::START_TIMEOUT;
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|v: &Value| v["event"] != "snapshot_complete")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match records.recv_timeout(left) {
            Ok(Ok(v)) => seen.push(v),
            other => {
                let _ = child.kill();
                panic!("no snapshot with few capabilities: {other:?}");
            }
        }
    }
    // A live record of a root process that predates portwatch (this test): its executable
    // comes from /proc/PID/exe, which needs CAP_SYS_PTRACE, and its gap says so.
    let marker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = marker.local_addr().unwrap().port();
    let bind = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match records.recv_timeout(left) {
            Ok(Ok(v)) if ours("bind")(&v) && v["port"] == port => break v,
            Ok(Ok(_)) => {}
            other => {
                let _ = child.kill();
                panic!("no bind record with few capabilities: {other:?}");
            }
        }
    };
    let exe_gap = bind["gaps"]["exe"].as_str().unwrap_or_default();
    assert!(exe_gap.contains("portwatch lacks CAP_SYS_PTRACE"), "{bind}");
    // `ls` says it too, and blames the listener's missing owner on it.
    let (code, out, ls_err) = run_to_exit(
        bin.as_nobody_with("+dac_read_search")
            .args(["ls", "--json"]),
    );
    assert_eq!(code, 0, "{ls_err}");
    assert!(
        ls_err.contains("warning: without CAP_SYS_PTRACE"),
        "{ls_err}"
    );
    let listed: Value = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["port"] == tcp && v["protocol"] == "tcp")
        .unwrap_or_else(|| panic!("port {tcp} not in ls: {out}"));
    assert!(
        listed["gaps"]["pid"]
            .as_str()
            .unwrap_or_default()
            .contains("lacks CAP_SYS_PTRACE"),
        "{listed}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let missing: Vec<&str> = seen[0]["missing_privileges"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", seen[0]))
        .iter()
        .map(|m| m["capability"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"], "{}", seen[0]);
    assert!(
        err.contains(
            "warning: without CAP_SYS_PTRACE, the owners of other users' sockets cannot be named"
        ),
        "{err}"
    );
    let listener = seen
        .iter()
        .find(|v| v["event"] == "listener" && v["port"] == tcp && v["protocol"] == "tcp")
        .unwrap_or_else(|| panic!("port {tcp} not in the snapshot"));
    assert!(listener.get("pid").is_none(), "{listener}");
    let gap = listener["gaps"]["pid"].as_str().unwrap_or_default();
    assert!(gap.contains("portwatch lacks CAP_SYS_PTRACE"), "{listener}");
}

#[test]
fn unprivileged_user_gets_a_clear_error() {
    require_root();
    let bin = UnprivilegedCopy::new("nobody");
    assert_fails(
        Command::new(&bin.path).arg("watch").uid(65534).gid(65534),
        "missing privileges",
    );
}

#[test]
fn missing_btf_gets_a_clear_error() {
    require_root();
    assert_fails(
        Command::new(BIN).args(["watch", "--btf", "/nonexistent/vmlinux"]),
        "no kernel BTF at /nonexistent/vmlinux",
    );
    // A wrong path: a device, or a file far larger than any BTF (sparse, read never).
    assert_fails(
        Command::new(BIN).args(["watch", "--btf", "/dev/zero"]),
        "no kernel BTF at /dev/zero: not a file",
    );
    let big = std::env::temp_dir().join(format!("portwatch-bigbtf-{}", std::process::id()));
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    assert_fails(
        Command::new(BIN).arg("watch").arg("--btf").arg(&big),
        "1073741824 bytes, more than any kernel's BTF",
    );
    let _ = std::fs::remove_file(&big);
}

#[test]
fn unmounted_tracefs_gets_a_clear_error() {
    require_root();
    // A private mount namespace without tracefs: the host's mounts are untouched.
    let script = format!(
        "for m in /sys/kernel/tracing /sys/kernel/debug/tracing /sys/kernel/debug; do \
           while mountpoint -q $m; do umount -l $m || exit 90; done; done; exec {BIN} watch"
    );
    assert_fails(
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
        "tracefs is not mounted",
    );
}

/// Every usage error, from the parser or from checking a value against the host, is one line
/// that names the flag and the value, then where to read more, and exit code 2: a value that
/// can never match starts no watch that silently shows nothing.
#[test]
fn bad_flags_are_usage_errors_in_one_line() {
    for (args, says) in [
        (&["watch", "--ring-buffer-size", "1000"][..], "'1000'"),
        (&["watch", "--ring-buffer-size", "-4096"], "'-4096'"),
        (
            &["watch", "--ring-buffer-size", "4294967296"],
            "largest ring",
        ),
        (
            &["watch", "--ring-buffer-size", "2147483648"],
            "largest ring",
        ),
        (&["watch", "--attach", "bind=tp_btf"], "bind=tp_btf"),
        (&["watch", "--attach", "nonsense"], "nonsense"),
        (&["watch", "--no-such-flag"], "--no-such-flag"),
        (&["watch", "--pid", "abc"], "'abc'"),
        (
            &["watch", "--netns", "/etc/passwd"],
            "--netns `/etc/passwd`: not a namespace",
        ),
        (
            &["watch", "--netns", "/proc/self/ns/pid"],
            "a pid namespace, not a network one",
        ),
        (
            &["watch", "--netns", "12345"],
            "no network namespace on this host",
        ),
        (
            &["watch", "--cgroup", "../../etc"],
            "outside the cgroup v2 hierarchy",
        ),
        (&["watch", "--pid", "0"], "--pid `0`: not a process id"),
        (
            &["watch", "--pid", "4194305"],
            "--pid `4194305`: not a process id",
        ),
        (&["watch", "--uid", "4294967295"], "(uid_t)-1"),
        (
            &["watch", "--exe", "relative"],
            "--exe `relative`: not an absolute path",
        ),
        (&["frobnicate"], "frobnicate"),
    ] {
        let (code, out, err) = run_to_exit(Command::new(BIN).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("portwatch: error: "), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: `{says}` not in {err}");
        let help = if args[0] == "watch" {
            "see `portwatch watch --help`"
        } else {
            "see `portwatch --help`"
        };
        assert!(err.trim_end().ends_with(help), "{args:?}: {err}");
    }
}
