//! `--metrics`: Prometheus text served on loopback only, with the stream's own figures.
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::harness::{Daemon, ours};

fn get(port: u16, path: &str) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    write!(c, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text
}

/// The value of the sample `name` (with its labels, as written) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Whether a socket listens on `port` at 127.0.0.1 only (/proc/net/tcp, state 0A).
fn listens_on_loopback_only(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let suffix = format!(":{port:04X}");
    let local: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"0A") && f[1].ends_with(&suffix)).then(|| f[1].to_owned())
        })
        .collect();
    !local.is_empty() && local.iter().all(|a| a == &format!("0100007F{suffix}"))
}

#[test]
fn metrics_are_served_on_loopback_with_the_streams_figures() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut d = Daemon::start(&["--metrics", &port.to_string()]);
    crate::harness::binds(10);
    d.sync();
    let binds = d.seen.iter().filter(|v| ours("bind")(v)).count() as f64;
    // The figures follow the stream's counter checks: wait (bounded) for ours to show.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = get(port, "/metrics");
        if sample(&text, "portwatch_records_total{kind=\"bind\"}").is_some_and(|n| n >= binds) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no bind count of {binds} or more:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: application/openmetrics-text"),
        "{text}"
    );
    let attach = d.attach("bind");
    let hook = format!(
        "portwatch_hook{{hook=\"bind\",attach=\"{}\"}}",
        attach.as_str().unwrap()
    );
    assert_eq!(sample(&text, &hook), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "portwatch_ring_buffer_bytes"),
        Some(1_048_576.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "portwatch_output_dropped_records_total{output=\"stdout\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample(&text, "portwatch_output_queued_bytes{output=\"stdout\"}").is_some(),
        "{text}"
    );
    let lost = "portwatch_lost_events_total{kind=\"bind\",cause=\"ring_buffer_full\"}";
    assert_eq!(sample(&text, lost), Some(0.0), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert!(get(port, "/").starts_with("HTTP/1.1 404"), "only /metrics");
    assert!(
        listens_on_loopback_only(port),
        "a bare port must be 127.0.0.1's alone"
    );
}
