//! Listener health on the real kernel: a listener whose accept queue (backlog 1) is filled and
//! overflows, next to one with room; one whose connections pile up in CLOSE_WAIT, next to one
//! whose CLOSE_WAIT count rises and falls. `ls` shows the queues, states and drops; `watch
//! --stats` gives them per interval with the accept-queue-overflow and close-wait-growing
//! detections on the first ones only.
use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{
    harness::{Daemon, record_kind, require_root},
    inventory::ls_json,
};

/// A loopback TCP listener with `backlog`.
fn listener(backlog: i32) -> (Socket, u16) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    s.listen(backlog).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

/// `n` connection attempts to `port` that do not wait for their handshake.
fn knock(port: u16, n: usize) -> Vec<Socket> {
    (0..n)
        .map(|_| {
            let c = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
            c.set_nonblocking(true).unwrap();
            let _ = c.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into());
            c
        })
        .collect()
}

fn health_of(records: &[Value], port: u16) -> &Value {
    let r = records
        .iter()
        .find(|v| v["event"] == "listener" && v["port"] == port)
        .unwrap_or_else(|| panic!("ls lists no listener on port {port}"));
    &r["health"]
}

/// Waits (bounded) for the kernel to have dropped connection attempts on `port`.
fn wait_drops(port: u16) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ls = ls_json();
        if health_of(&ls, port)["drops"].as_u64() > Some(0) {
            return ls;
        }
        assert!(
            Instant::now() < deadline,
            "no drops on port {port}: {}",
            health_of(&ls, port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ls_shows_a_full_accept_queue_its_drops_and_connections() {
    require_root();
    let (_full, full_port) = listener(1);
    let (_roomy, roomy_port) = listener(128);
    let _clients = (knock(full_port, 6), knock(roomy_port, 2));
    let ls = wait_drops(full_port);
    let full = health_of(&ls, full_port);
    // The kernel queues one beyond the backlog, then drops.
    assert_eq!(full["accept_queue"], 2, "{full}");
    assert_eq!(full["accept_queue_max"], 1, "{full}");
    assert_eq!(full["established"], 2, "{full}");
    assert_eq!(full["close_wait"], 0, "{full}");
    let roomy = health_of(&ls, roomy_port);
    assert_eq!(roomy["accept_queue"], 2, "{roomy}");
    assert_eq!(roomy["accept_queue_max"], 128, "{roomy}");
    assert_eq!(roomy["drops"], 0, "{roomy}");
    assert_eq!(roomy["established"], 2, "{roomy}");
}

/// The next `listener_stats` record of `port` that `pred` accepts.
fn stats(d: &mut Daemon, port: u16, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    d.expect(what, |v| {
        record_kind(v) == "listener_stats" && v["port"] == port && pred(&v["health"])
    })
}

fn detections(v: &Value) -> Vec<&str> {
    v["detections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str())
        .collect()
}

#[test]
fn stats_records_flag_an_overflowing_queue_and_a_close_wait_pile_only() {
    require_root();
    let mut d = Daemon::start(&["--stats", "300ms"]);
    let me = std::process::id();
    // Made while watched: every drop counts as new.
    let (_full, full_port) = listener(1);
    let (_roomy, roomy_port) = listener(128);
    let _clients = (knock(full_port, 6), knock(roomy_port, 2));
    let overflow = stats(&mut d, full_port, "an overflowing queue", |h| {
        h["new_drops"].as_u64() > Some(0)
    });
    assert_eq!(overflow["pid"], me, "{overflow}");
    assert_eq!(
        detections(&overflow),
        ["accept-queue-overflow"],
        "{overflow}"
    );
    let reason = overflow["detections"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("accept queue 2/1"), "{reason}");
    let roomy = stats(&mut d, roomy_port, "a queue with room", |h| {
        h["accept_queue"] == 2
    });
    assert!(detections(&roomy).is_empty(), "{roomy}");

    // CLOSE_WAIT: the peer closes, this side keeps its end. `leak` only gains; `churn` gains
    // twice, loses one, gains again: never three rises in a row.
    let leak = TcpListener::bind("127.0.0.1:0").unwrap();
    let churn = TcpListener::bind("127.0.0.1:0").unwrap();
    let (leak_port, churn_port) = (
        leak.local_addr().unwrap().port(),
        churn.local_addr().unwrap().port(),
    );
    let close_wait = |n: u64| move |h: &Value| h["close_wait"] == n;
    let mut kept = (Vec::new(), Vec::new());
    let half_close = |l: &TcpListener, kept: &mut Vec<TcpStream>| {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        kept.push(l.accept().unwrap().0);
        drop(c);
    };
    stats(&mut d, leak_port, "leak at 0", close_wait(0));
    stats(&mut d, churn_port, "churn at 0", close_wait(0));
    let mut judged = Vec::new();
    for (leak_n, churn_n) in [(1, 1), (2, 2), (3, 1), (4, 2)] {
        half_close(&leak, &mut kept.0);
        if churn_n > kept.1.len() {
            half_close(&churn, &mut kept.1);
        } else {
            kept.1.pop();
        }
        judged.push(stats(&mut d, leak_port, "leak rising", close_wait(leak_n)));
        let c = stats(&mut d, churn_port, "churn", close_wait(churn_n as u64));
        assert!(detections(&c).is_empty(), "{c}");
    }
    // Rises at 1, 2 and 3: the third is the finding, once.
    let found: Vec<Vec<&str>> = judged.iter().map(detections).collect();
    assert_eq!(
        found,
        [vec![], vec![], vec!["close-wait-growing"], vec![]],
        "{judged:?}"
    );
    let reason = judged[2]["detections"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("has 3 connections in CLOSE_WAIT, up from 0"),
        "{reason}"
    );
    assert!(judged[2]["detections"][0]["technique"].is_null());
    let ls = ls_json();
    assert_eq!(health_of(&ls, leak_port)["close_wait"], 4);
}
