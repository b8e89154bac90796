//! io_uring: a program that binds, listens and accepts through io_uring only (no bind(2),
//! listen(2) or accept(2)) gets the same records as the syscall path, with the ring's process as
//! pid and `via` saying io_uring and which thread ran each request: here at io_uring's own
//! tracepoints, on fentry/kprobe kernels at the kernel functions.
use std::{
    io::{BufRead, BufReader},
    net::TcpStream,
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::harness::{Daemon, Helper, uring_listen_helper};

/// Runs tests/helpers/uring_listen in `mode` and checks each of its records.
fn through_io_uring(mode: &str, thread: &str) {
    run_helper(mode, thread, &[]);
}

/// The io-uring-listener detection on the helper's accept (and listen, where io_uring made it):
/// there unless the daemon runs with `daemon_args` allowing it.
fn run_helper(mode: &str, thread: &str, daemon_args: &[&str]) {
    let allowed = !daemon_args.is_empty();
    let mut d = Daemon::start(daemon_args);
    let mut child = Command::new(uring_listen_helper())
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let helper = Helper(child);
    let pid = helper.id();
    let mut line = || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    let first = line();
    assert_eq!(first[0], "PORT", "{first:?}");
    let port: u16 = first[1].parse().unwrap();
    // Before 6.11 there is no IORING_OP_BIND or IORING_OP_LISTEN: the helper used the syscalls.
    let bind_and_listen = first[2] == "io_uring";
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let accepted = line();
    assert_eq!(accepted[0], "ACCEPT", "{accepted:?}");
    let tracepoints = d.attach("bind") == "tracepoint";
    let by = |kind: &'static str| {
        move |v: &Value| v["event"] == kind && v["pid"] == pid && v["port"] == port
    };
    let exe = uring_listen_helper().to_str().unwrap();
    let flagged = |v: &Value| {
        let found = v["detections"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["name"] == "io-uring-listener"));
        if allowed {
            assert!(found.is_none(), "on the allowlist: {v}");
        } else {
            let found = found.unwrap_or_else(|| panic!("no io-uring-listener: {v}"));
            assert_eq!(found["technique"], "T1562.006", "{v}");
            assert!(found["reason"].as_str().unwrap().contains(exe), "{v}");
        }
    };
    let check = |v: &Value| {
        assert_eq!(v["via"], "io_uring", "{v}");
        assert_eq!(v["io_uring_thread"], thread, "{v}");
        assert_eq!(v["protocol"], "tcp", "{v}");
        assert_eq!(v["address"], "127.0.0.1", "{v}");
    };
    let accept = d.expect("io_uring accept", by("accept"));
    if mode == "async" {
        // A worker may arm a poll instead of waiting (6.1 does): the accept then runs as task
        // work of the submitting thread once the connection is there, and says so.
        assert!(
            accept["io_uring_thread"] == "worker" || accept["io_uring_thread"] == "submitter",
            "{accept}"
        );
        assert_eq!(accept["via"], "io_uring", "{accept}");
        assert_eq!(accept["protocol"], "tcp", "{accept}");
        assert_eq!(accept["address"], "127.0.0.1", "{accept}");
    } else {
        check(&accept);
    }
    flagged(&accept);
    assert_eq!(accept["remote_port"], client_port, "{accept}");
    assert!(accept["listener_inode"].as_u64().is_some(), "{accept}");
    if !bind_and_listen {
        return;
    }
    let bind = d.expect("io_uring bind", |v| by("bind")(v) && v["success"] == true);
    check(&bind);
    assert_eq!(bind["requested_port"], 0, "{bind}");
    let listen = d.expect("io_uring listen", by("listen"));
    check(&listen);
    flagged(&listen);
    assert_eq!(listen["backlog"], 7, "{listen}");
    assert_eq!(listen["success"], true, "{listen}");
    if tracepoints {
        // The descriptor the request named (kernel-function hooks know it only from a syscall).
        assert_eq!(bind["fd"], listen["fd"], "{listen}");
        assert!(bind["fd"].as_i64().is_some(), "{bind}");
    }
    let second = line();
    assert_eq!(
        second,
        ["BIND2", "-98"],
        "the second bind fails with EADDRINUSE"
    );
    let failed = d.expect("failed io_uring bind", |v| {
        by("bind")(v) && v["success"] == false
    });
    check(&failed);
    assert_eq!(failed["errno"], "EADDRINUSE", "{failed}");
    assert_eq!(failed["requested_port"], port, "{failed}");
    assert_eq!(failed["requested_address"], "127.0.0.1", "{failed}");
}

#[test]
fn bind_listen_accept_run_by_the_submitting_thread() {
    through_io_uring("inline", "submitter");
}

#[test]
fn bind_listen_accept_run_by_the_sqpoll_thread() {
    through_io_uring("sqpoll", "sqpoll");
}

#[test]
fn bind_listen_accept_run_by_io_uring_workers() {
    through_io_uring("async", "worker");
}

#[test]
fn a_program_on_the_io_uring_allowlist_is_not_flagged() {
    let name = uring_listen_helper().file_name().unwrap().to_str().unwrap();
    run_helper("inline", "submitter", &["--uring-allow", name]);
}
