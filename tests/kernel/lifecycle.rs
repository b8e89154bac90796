//! Listener lifecycle: closes carry lifetime and accepted connections; sockets that go with
//! their owner are reported; a different program joining a served port is named.
use std::{
    net::{TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
};

use socket2::{Domain, Socket, Type};

use crate::harness::{
    Daemon, fd_inode, findings_but_own_place, hold_sockets, hold_sockets_helper, our_close, ours,
    parse_time, proc_self, released_here,
};

#[test]
fn killing_the_owner_closes_its_listeners_with_their_lifetime() {
    let (mut child, tcp_port, udp_port) = hold_sockets(&[], None);
    let pid = child.id();
    let mut d = Daemon::start(&[]);
    d.expect("snapshot marker", |v| v["event"] == "snapshot_complete");
    let mut listed = Vec::new();
    for (proto, port) in [("tcp", tcp_port), ("udp", udp_port)] {
        let l = d.expect("listener", |v| {
            v["event"] == "listener" && v["protocol"] == proto && v["port"] == port
        });
        assert_eq!(l["pid"], pid, "{l}");
        listed.push(parse_time(l["time"].as_str().unwrap()));
    }
    // The sockets live on for a while under portwatch's watch: at least this long.
    let held = std::time::Duration::from_millis(300);
    std::thread::sleep(held);
    child.kill();
    for ((proto, port), listed_ns) in [("tcp", tcp_port), ("udp", udp_port)]
        .into_iter()
        .zip(listed)
    {
        let c = d.expect("close", |v| {
            v["event"] == "close" && v["protocol"] == proto && v["port"] == port
        });
        assert_eq!(c["pid"], pid, "{c}");
        assert_eq!(
            c["lifetime_since_start"], true,
            "it predates portwatch: {c}"
        );
        // Counted from the snapshot (the listener record's time) to the close record's time.
        let lifetime = c["lifetime_s"].as_f64().unwrap();
        let between = (parse_time(c["time"].as_str().unwrap()) - listed_ns) as f64 / 1e9;
        assert!(lifetime >= held.as_secs_f64(), "held {held:?}: {c}");
        assert!(
            (lifetime - between).abs() < 0.01,
            "{between} s between the records: {c}"
        );
        assert_eq!(c["exe"], hold_sockets_helper().to_str().unwrap(), "{c}");
        if proto == "udp" && d.attach("udp_close").is_null() {
            assert_eq!(c["reason"], "owner exited", "{c}");
        } else if proto == "udp" {
            // The kernel saw the release, in the dying owner's context.
            assert!(c.get("reason").is_none(), "{c}");
            assert_eq!(c["tid"], pid, "{c}");
        } else {
            assert_eq!(c["accepted"], 0, "{c}");
        }
    }
}

/// A UDP socket closed by a process that keeps running is reported closed by that thread, with
/// its lifetime; a client's socket that was never bound explicitly is not reported at all.
#[test]
fn a_udp_socket_closed_by_a_running_process_is_reported() {
    let mut d = Daemon::start(&[]);
    assert_eq!(d.attach("udp_close"), "cgroup");
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let s = UdpSocket::bind(addr).unwrap();
        let port = s.local_addr().unwrap().port();
        let inode = fd_inode(s.as_raw_fd());
        d.expect("bind", |v| ours("bind")(v) && v["inode"] == inode);
        drop(s);
        let c = d.expect("close", |v| our_close()(v) && v["inode"] == inode);
        assert_eq!(c["protocol"], "udp", "{c}");
        assert_eq!(c["port"], port, "{c}");
        if released_here(&c) {
            assert_eq!(c["exe"], proc_self().exe, "{c}");
        }
        assert!(c.get("reason").is_none(), "{c}");
        let lifetime = c["lifetime_s"].as_f64().expect("lifetime");
        assert!((0.0..5.0).contains(&lifetime), "{c}");
    }
    // A client: its port is picked when it sends, it never called bind(2).
    let client = socket2::Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    let to: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    client.send_to(b"x", &to.into()).unwrap();
    let client_port = client.local_addr().unwrap().as_socket().unwrap().port();
    drop(client);
    d.sync();
    assert!(
        !d.seen
            .iter()
            .any(|v| v["pid"] == std::process::id() && v["port"] == client_port),
        "the client socket was reported"
    );
}

#[test]
fn close_counts_the_connections_the_listener_accepted() {
    let mut d = Daemon::start(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inode = fd_inode(listener.as_raw_fd());
    let mut conns = Vec::new();
    for _ in 0..3 {
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (conn, _) = listener.accept().unwrap();
        conns.push((client, conn));
    }
    let accept = d.expect("accept", |v| ours("accept")(v) && v["port"] == port);
    assert_eq!(accept["listener_inode"], inode, "{accept}");
    drop(listener);
    // Matched by inode, not by thread: a child another test is spawning may hold a copy of the
    // descriptor until its exec, and the last reference's release is then the child's close.
    let close = d.expect("close", |v| v["event"] == "close" && v["inode"] == inode);
    assert_eq!(close["accepted"], 3, "{close}");
    assert_eq!(close["inode"], inode, "{close}");
    assert!(close.get("lifetime_since_start").is_none(), "{close}");
    let lifetime = close["lifetime_s"].as_f64().unwrap();
    assert!(lifetime > 0.0 && lifetime < 60.0, "{close}");
}

#[test]
fn a_different_program_joining_a_served_port_is_named() {
    let mut d = Daemon::start(&[]);
    // This test process serves a port with SO_REUSEPORT...
    let mine = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    mine.set_reuse_port(true).unwrap();
    mine.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    mine.listen(8).unwrap();
    let port = mine.local_addr().unwrap().as_socket().unwrap().port();
    let first = d.expect("our listen", |v| ours("listen")(v) && v["port"] == port);
    // A second socket of the same program joining (one server's workers) is not a hijack.
    let worker = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    worker.set_reuse_port(true).unwrap();
    worker.bind(&mine.local_addr().unwrap()).unwrap();
    worker.listen(8).unwrap();
    let first_inode = first["inode"].clone();
    let second = d.expect("our second listen", |v| {
        ours("listen")(v) && v["port"] == port && v["inode"] != first_inode
    });
    assert!(second.get("shared_with").is_none(), "{second}");
    assert!(findings_but_own_place(&second).is_empty(), "{second}");
    // ...and another executable joins it.
    let (mut child, tcp_port, _) = hold_sockets(&[port.to_string()], None);
    assert_eq!(tcp_port, port);
    let pid = child.id();
    let joined = d.expect("the other program's listen", |v| {
        v["event"] == "listen" && v["pid"] == pid && v["port"] == port
    });
    child.kill();
    assert_eq!(
        joined["shared_with"],
        serde_json::json!([{"pid": std::process::id(), "exe": proc_self().exe, "uid": 0}]),
        "{joined}"
    );
    let found = &joined["detections"][0];
    assert_eq!(found["name"], "reuseport-hijack", "{joined}");
    assert_eq!(found["technique"], "T1557", "{joined}");
    let ours_named = format!("pid {} ({}, uid 0)", std::process::id(), proc_self().exe);
    assert!(
        found["reason"].as_str().unwrap().contains(&ours_named),
        "{joined}"
    );
    // Our own listen had nobody to share with.
    let own = d.expect("our listen", |v| ours("listen")(v) && v["port"] == port);
    assert!(own.get("shared_with").is_none(), "{own}");
}
