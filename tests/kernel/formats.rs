//! The SIEM formats from the real kernel: every line of an ECS and an OCSF run, covering every
//! record kind (a snapshot listener, each socket event, a failed bind, an exec on a socket, a
//! loss, start and stop),
//! is checked against the official definitions by tests/schemas/check.py, and the fields that
//! carry the event against what this test did.
use std::{
    io::Write as _,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::PathBuf,
    process::Command,
};

use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

use crate::harness::{
    Daemon, gettid, hold_sockets, proc_self, record_kind, record_pid, record_seq as sequence,
};

/// Where `cargo xtask setup` put the official definitions and their checker's Python.
fn schemas() -> PathBuf {
    let dir = std::env::var_os("PORTWATCH_SCHEMAS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/schemas")),
        PathBuf::from,
    );
    assert!(
        dir.join("venv/bin/python").exists(),
        "no ECS/OCSF definitions in {}: run `cargo xtask setup` (or set PORTWATCH_SCHEMAS)",
        dir.display()
    );
    dir
}

/// Runs the checker on `lines`; fails the test with its report unless every line passes.
pub fn check(format: &str, lines: &[Value]) {
    let dir = schemas();
    static CHECKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("lines-{format}-{}-{n}.ndjson", std::process::id()));
    let mut f = std::fs::File::create(&file).unwrap();
    for line in lines {
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    let out = Command::new(dir.join("venv/bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/schemas/check.py"
        ))
        .arg(format)
        .arg(&file)
        .arg(dir.join("ecs-9.4.0-fields.json"))
        .output()
        .expect("run tests/schemas/check.py");
    let _ = std::fs::remove_file(&file);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{format} lines fail the official definitions:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("{} lines, 0 problems", lines.len())),
        "{report}"
    );
}

/// The first non-null of `paths` (JSON pointers) in `v`: one field named differently by format.
fn field<'a>(v: &'a Value, paths: &[&str]) -> &'a Value {
    paths
        .iter()
        .map(|p| v.pointer(p).unwrap_or(&Value::Null))
        .find(|x| !x.is_null())
        .unwrap_or(&Value::Null)
}

fn tid(v: &Value) -> &Value {
    field(v, &["/process/thread/id", "/actor/process/tid"])
}

fn local_port(v: &Value) -> &Value {
    field(v, &["/destination/port", "/dst_endpoint/port"])
}

fn extras(v: &Value) -> &Value {
    field(v, &["/portwatch", "/unmapped/portwatch"])
}

/// A socket event of `kind` from this thread.
fn ours(kind: &'static str) -> impl Fn(&Value) -> bool {
    let (pid, tid_now) = (std::process::id(), gettid());
    move |v| record_kind(v) == kind && record_pid(v) == pid && tid(v) == tid_now
}

/// The close of a socket this thread made, released here or by a child another test spawned
/// meanwhile (see `harness::our_close`), in any format.
fn our_close(v: &Value) -> bool {
    let pid = std::process::id();
    let parent = field(
        v,
        &[
            "/ppid",
            "/process/parent/pid",
            "/actor/process/parent_process/pid",
        ],
    );
    ours("close")(v) || (record_kind(v) == "close" && *parent == pid)
}

/// The stream's numbers skip one per lost event: at the stop record, the records received
/// plus those counted lost are all that were numbered.
fn assert_every_record_delivered_or_counted(records: &[Value]) {
    let stop = records.last().unwrap();
    assert_eq!(record_kind(stop), "stop", "{stop}");
    let lost = extras(stop)["lost_total"].as_u64().unwrap();
    assert_eq!(
        sequence(stop) + 1,
        records.len() as u64 + lost,
        "numbered vs received + lost: {stop}"
    );
}

/// A run with every record kind but loss: returns its records.
fn every_event(format: &str) -> Vec<Value> {
    let (mut holder, held_tcp, _) = hold_sockets(&[], None);
    let mut d = Daemon::start(&["--format", format, "--ancestry", "--stats", "1s"]);
    let held = d.expect("snapshot listener", |v| {
        record_kind(v) == "listener" && local_port(v) == held_tcp
    });
    assert_eq!(record_pid(&held), holder.id(), "{held}");
    // --stats: its health, with its owner from the listener table.
    let stats = d.expect("listener_stats", |v| {
        record_kind(v) == "listener_stats" && local_port(v) == held_tcp
    });
    assert_eq!(record_pid(&stats), holder.id(), "{stats}");
    assert_eq!(extras(&stats)["health"]["accept_queue"], 0, "{stats}");
    assert_eq!(extras(&stats)["health"]["new_drops"], 0, "{stats}");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let peer = client.local_addr().unwrap().port();
    let (accepted, _) = listener.accept().unwrap();
    let taken = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let refused = taken.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into());
    assert!(refused.is_err());
    let udp = UdpSocket::bind("[::1]:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    // A program started with the client's socket as stdin: an exec record (medium).
    let on_socket = std::os::fd::OwnedFd::from(client.try_clone().unwrap());
    let started = Command::new("/bin/true").stdin(on_socket).spawn().unwrap();
    let started_pid = started.id();
    assert!(started.wait_with_output().unwrap().status.success());
    drop((accepted, client, udp));
    drop(listener);

    let me = proc_self();
    let bind = d.expect("bind", |v| ours("bind")(v) && local_port(v) == port);
    let failed = d.expect("failed bind", |v| {
        ours("bind")(v) && local_port(v) == port && extras(v)["errno_code"] == 98
    });
    let listen = d.expect("listen", |v| ours("listen")(v) && local_port(v) == port);
    // The firewall's verdict, under portwatch's own fields (what it is depends on the host).
    for r in [&held, &listen] {
        let reach = &extras(r)["reachability"];
        let status = reach["status"].as_str().unwrap_or_default();
        assert!(
            ["reachable", "filtered", "unknown"].contains(&status),
            "{r}"
        );
        assert!(
            !reach["reason"].as_str().unwrap_or_default().is_empty(),
            "{r}"
        );
    }
    let accept = d.expect("accept", |v| ours("accept")(v) && local_port(v) == port);
    d.expect("udp bind", |v| ours("bind")(v) && local_port(v) == udp_port);
    d.expect("udp close", |v| our_close(v) && local_port(v) == udp_port);
    let close = d.expect("close", |v| our_close(v) && local_port(v) == port);
    let exec = d.expect("exec on a socket", |v| {
        record_kind(v) == "exec" && record_pid(v) == started_pid
    });
    assert_eq!(
        extras(&exec)["stdio"],
        serde_json::json!(["stdin"]),
        "{exec}"
    );
    assert_eq!(
        field(
            &exec,
            &["/destination/port", "/unmapped/portwatch/remote_port"]
        ),
        port,
        "{exec}"
    );
    let released_here = *record_pid(&close) == std::process::id();
    let close_here = released_here.then_some(&close);
    for v in [&bind, &listen, &accept].into_iter().chain(close_here) {
        assert_eq!(
            field(v, &["/process/executable", "/actor/process/file/path"]),
            me.exe.as_str(),
            "{v}"
        );
        assert_eq!(field(v, &["/user/id", "/actor/user/uid"]), "0", "{v}");
    }
    assert_eq!(
        field(&accept, &["/source/port", "/src_endpoint/port"]),
        peer,
        "{accept}"
    );
    assert_eq!(
        field(&failed, &["/error/code", "/status_code"]),
        "EADDRINUSE",
        "{failed}"
    );
    // --ancestry: this test's parent (cargo's test runner, or the guest's init) comes first.
    let parent = u64::from(std::os::unix::process::parent_id());
    let first = field(
        &bind,
        &["/actor/process/ancestry/0/pid", "/portwatch/ancestry/0/pid"],
    );
    assert_eq!(*first, parent, "{bind}");
    if format == "ocsf" {
        assert_eq!(bind["status_id"], 1, "{bind}");
        assert_eq!(failed["status_id"], 2, "{failed}");
        assert_eq!(accept["type_uid"], 400_101, "{accept}");
        assert_eq!(listen["connection_info"]["protocol_num"], 6, "{listen}");
        assert_eq!(held["activity_id"], 7, "{held}");
        assert_eq!(exec["type_uid"], 100_701, "{exec}");
        assert_eq!(exec["launch_type_id"], 3, "{exec}");
        assert_eq!(exec["severity"], "Medium", "{exec}");
    } else {
        assert_eq!(bind["event"]["outcome"], "success", "{bind}");
        assert_eq!(failed["event"]["outcome"], "failure", "{failed}");
        assert_eq!(
            accept["event"]["type"],
            serde_json::json!(["connection", "start"])
        );
        assert_eq!(listen["network"]["transport"], "tcp", "{listen}");
        assert_eq!(held["event"]["kind"], "state", "{held}");
        assert_eq!(exec["event"]["kind"], "alert", "{exec}");
        assert_eq!(exec["source"]["port"], peer, "{exec}");
        assert_eq!(exec["event"]["severity"], 47, "{exec}");
    }
    let (status, records, _) = d.stop_with(libc::SIGINT);
    assert!(status.success(), "{status}");
    holder.kill();
    records
}

/// A run whose smallest ring overflows under a burst of binds: a loss record, and a stop
/// that counts the loss.
fn overflowing(format: &str) -> Vec<Value> {
    let _flood = crate::harness::exclusive();
    let mut d = Daemon::start_alone(&["--format", format, "--ring-buffer-size", "4096"]);
    for _ in 0..20_000 {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
    }
    d.expect("loss record", |v| {
        record_kind(v) == "loss" && extras(v)["ring_buffer_full"]["bind"].as_u64() > Some(0)
    });
    let (status, records, _) = d.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status}");
    let stop = records.last().unwrap();
    assert!(extras(stop)["lost_total"].as_u64() > Some(0), "{stop}");
    records
}

/// A run where this process binds past the flood limit and keeps its sockets: `flood`
/// records, and the listing that finds the shed ones (`listener`, `listen not seen`).
fn flooding(format: &str) -> Vec<Value> {
    let _flood = crate::harness::exclusive();
    let mut d = Daemon::start_alone(&["--format", format, "--flood-rate", "100"]);
    let held: Vec<std::net::UdpSocket> = (0..2000)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: std::collections::HashSet<u64> = held
        .iter()
        .map(|s| u64::from(s.local_addr().unwrap().port()))
        .collect();
    d.expect("flood record", |v| record_kind(v) == "flood");
    // Which of them were shed depends on the CPUs the loop ran on (each has its own
    // allowance), so not on the last one: any of them, found by the listing.
    d.expect("a shed socket, listed", |v| {
        record_kind(v) == "listener" && local_port(v).as_u64().is_some_and(|p| ports.contains(&p))
    });
    let (status, records, _) = d.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status}");
    records
}

fn every_kind_validates(format: &str) {
    let mut records = every_event(format);
    assert_every_record_delivered_or_counted(&records);
    let overflow = overflowing(format);
    assert_every_record_delivered_or_counted(&overflow);
    records.extend(overflow);
    let flood = flooding(format);
    assert_every_record_delivered_or_counted(&flood);
    records.extend(flood);
    for kind in [
        "start",
        "listener",
        "listener_stats",
        "snapshot_complete",
        "bind",
        "listen",
        "accept",
        "close",
        "exec",
        "flood",
        "loss",
        "stop",
    ] {
        assert!(
            records.iter().any(|v| record_kind(v) == kind),
            "no {kind} record in the {format} runs"
        );
    }
    check(format, &records);
}

#[test]
fn ocsf_lines_of_every_kind_validate_against_ocsf_1_8_0() {
    every_kind_validates("ocsf");
}

#[test]
fn ecs_lines_of_every_kind_validate_against_ecs_9_4() {
    every_kind_validates("ecs");
}
