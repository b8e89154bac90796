//! Each filter passes what it should and nothing else. Every case makes the event that must be
//! dropped first and the one that must pass last, from processes that have finished by then, so
//! once the passing event is seen the dropped one would have been seen too.
use std::{net::UdpSocket, os::unix::process::CommandExt, process::Command};

use crate::harness::{Daemon, cgroup2_root, hold_sockets, listen_once_helper, ours};

fn run_helper(cmd: &mut Command) -> u32 {
    let mut child = cmd.spawn().expect("spawn helper");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn listen_from(pid: u32) -> impl Fn(&serde_json::Value) -> bool {
    move |v: &serde_json::Value| v["event"] == "listen" && v["pid"] == pid
}

/// Nothing from `pid`, except the close of a socket a passing process made: a socket's last
/// reference can go in another process (this test binary's threads bind sockets while another
/// test forks a helper, which holds copies of them until its exec closes them), and the close
/// is the releasing task's.
fn nothing_from(d: &Daemon, pid: u32) {
    let made_by_others: Vec<&serde_json::Value> = d
        .seen
        .iter()
        .filter(|v| {
            v["pid"] != pid
                && ["bind", "listen", "listener"].contains(&v["event"].as_str().unwrap_or(""))
        })
        .map(|v| &v["inode"])
        .collect();
    let leaked: Vec<_> = d
        .seen
        .iter()
        .filter(|v| v["pid"] == pid && v["event"] != "start")
        .filter(|v| !(v["event"] == "close" && made_by_others.contains(&&v["inode"])))
        .collect();
    assert!(leaked.is_empty(), "filtered out, yet reported: {leaked:#?}");
}

#[test]
fn pid_filter() {
    let me = std::process::id().to_string();
    let mut d = Daemon::start(&["--pid", &me]);
    let other = run_helper(&mut Command::new(listen_once_helper()));
    d.sync(); // a bind of this process: passes
    nothing_from(&d, other);
}

#[test]
fn port_filter() {
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut d = Daemon::start(&["--port", &port.to_string()]);
    let elsewhere = UdpSocket::bind("127.0.0.1:0").unwrap();
    let elsewhere_port = elsewhere.local_addr().unwrap().port();
    let _wanted = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    d.expect("bind on the filtered port", |v| {
        ours("bind")(v) && v["port"] == port
    });
    assert!(
        !d.seen.iter().any(|v| v["port"] == elsewhere_port),
        "port {elsewhere_port} is filtered out"
    );
}

#[test]
fn uid_filter() {
    let mut d = Daemon::start(&["--uid", "65534"]);
    let _mine = UdpSocket::bind("127.0.0.1:0").unwrap(); // root: dropped
    let nobody = run_helper(Command::new(listen_once_helper()).uid(65534).gid(65534));
    let ev = d.expect("nobody's listen", listen_from(nobody));
    assert_eq!(ev["uid"], 65534);
    nothing_from(&d, std::process::id());
}

#[test]
fn netns_filter() {
    let mut d = Daemon::start(&["--netns", "/proc/self/ns/net"]);
    // The helper in a fresh network namespace (its bind fails there: loopback is down).
    let inside = run_helper(Command::new("unshare").arg("-n").arg(listen_once_helper()));
    d.sync(); // this process, in the host namespace: passes
    nothing_from(&d, inside);
}

#[test]
fn cgroup_filter() {
    let root = cgroup2_root();
    let name = format!("portwatch-test-{}", std::process::id());
    let dir = format!("{root}/{name}");
    std::fs::create_dir_all(&dir).unwrap();
    let mut d = Daemon::start(&["--cgroup", &format!("/{name}")]);
    let _mine = UdpSocket::bind("127.0.0.1:0").unwrap(); // another cgroup: dropped
    let script = format!(
        "echo $$ > {dir}/cgroup.procs && exec {}",
        listen_once_helper().display()
    );
    let inside = run_helper(Command::new("sh").args(["-c", &script]));
    let ev = d.expect("listen inside the cgroup", listen_from(inside));
    assert_eq!(ev["cgroup"], format!("/{name}"), "{ev}");
    nothing_from(&d, std::process::id());
    drop(d);
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn event_kind_filter() {
    let mut d = Daemon::start(&["--events", "listen,close"]);
    let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // bind dropped, listen passes
    let port = s.local_addr().unwrap().port();
    d.expect("listen", |v| ours("listen")(v) && v["port"] == port);
    assert!(
        !d.seen.iter().any(|v| ours("bind")(v)),
        "binds are filtered out"
    );
    // Hooks that no selected kind needs are not attached at all; listen and accept serve close.
    let hooks = d.start_record()["hooks"].as_array().unwrap().clone();
    let hook = |name: &str| hooks.iter().find(|h| h["hook"] == name).unwrap().clone();
    assert!(hook("bind")["attach"].is_null(), "{hooks:?}");
    assert!(hook("bind")["skipped"].is_string(), "{hooks:?}");
    for needed in ["listen", "accept", "close", "exec"] {
        assert!(hook(needed)["attach"].is_string(), "{needed}: {hooks:?}");
    }
}

#[test]
fn executable_filter() {
    let helper = listen_once_helper();
    let mut d = Daemon::start(&["--exe", helper.to_str().unwrap()]);
    let _mine = UdpSocket::bind("127.0.0.1:0").unwrap(); // the test binary: dropped
    let child = run_helper(&mut Command::new(helper));
    d.expect("the helper's listen", listen_from(child));
    nothing_from(&d, std::process::id());
}

#[test]
fn snapshot_listeners_are_filtered_too() {
    let _mine = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Sockets of another user that were open before portwatch started: in the snapshot.
    let (mut nobody, tcp, udp) = hold_sockets(&[], Some(65534));
    let mut d = Daemon::start(&["--uid", "65534"]);
    let done = d.expect("snapshot marker", |v| v["event"] == "snapshot_complete");
    for (proto, port) in [("tcp", tcp), ("udp", udp)] {
        let l = d.expect("nobody's listener", |v| {
            v["event"] == "listener" && v["protocol"] == proto && v["port"] == port
        });
        assert_eq!(l["uid"], 65534, "{l}");
    }
    nothing_from(&d, std::process::id());
    let listed: Vec<_> = d.seen.iter().filter(|v| v["event"] == "listener").collect();
    assert!(listed.iter().all(|l| l["uid"] == 65534), "{listed:#?}");
    assert_eq!(done["listeners"], listed.len(), "{done}");
    nobody.kill();
}

/// A UDP socket that was bound before portwatch started, by a process the filters leave out:
/// its close is left out too (the kernel reports the release of every socket in its table of
/// bound UDP sockets, so only the snapshot's sockets that pass may enter it).
#[test]
fn the_close_of_a_filtered_out_snapshot_socket_is_not_reported() {
    let (mut other, _, udp) = hold_sockets(&[], None);
    let other_pid = other.id();
    let me = std::process::id().to_string();
    let mut d = Daemon::start(&["--pid", &me]);
    other.kill(); // and reaped: its sockets were released before
    // A bind of our own, after the other's release: once it is seen, that close would have
    // been. (Not our close: a child another test spawns may release our socket, and the pid
    // filter would leave that out.)
    let mine = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = mine.local_addr().unwrap().port();
    let is_mine = ours("bind");
    d.expect("our bind", |v| is_mine(v) && v["port"] == port);
    let leaked: Vec<_> = d
        .seen
        .iter()
        .filter(|v| v["event"] == "close" && (v["pid"] == other_pid || v["port"] == udp))
        .collect();
    assert!(leaked.is_empty(), "filtered out, yet reported: {leaked:#?}");
}
