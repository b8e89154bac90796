//! `watch --metrics ADDR`: Prometheus (OpenMetrics) text on `http://ADDR/metrics`, off by
//! default. Only the address written is bound: a bare port is 127.0.0.1's. Records written by
//! kind, events lost by kind and cause, each output's drops, truncations and queued bytes, the
//! ring's size and each hook's attach type; the figures are the stream's, updated at each of
//! its counter checks (every 200 ms while records come, and when a burst ends).
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    time::Duration,
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    error::{Error, Result},
    model::{attach::Chosen, loss::LossCounts},
    output::SinkDrops,
};

type Labels = Vec<(&'static str, String)>;

/// `--metrics`: `HOST:PORT`, or a port alone for 127.0.0.1.
pub fn parse_addr(s: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| {
        format!("`{s}`: a port (for 127.0.0.1) or an address and port, e.g. 127.0.0.1:9464 or [::1]:9464")
    })
}

pub struct Metrics {
    events: Family<Labels, Counter>,
    lost: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    sink_dropped: Family<Labels, Counter>,
    sink_truncated: Family<Labels, Counter>,
    sink_queued: Family<Labels, Gauge>,
}

/// A counter brought up to `total` (the stream keeps totals).
fn set(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

impl Metrics {
    /// Binds `addr` (a start-up error if it cannot) and serves the figures from a thread.
    pub fn serve(addr: SocketAddr, hooks: &[Chosen], ring_bytes: u32) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| Error::io(format!("--metrics {addr}: cannot listen there"), e))?;
        let mut registry = Registry::with_prefix("portwatch");
        let m = Self {
            events: Family::default(),
            lost: Family::default(),
            errors: Family::default(),
            sink_dropped: Family::default(),
            sink_truncated: Family::default(),
            sink_queued: Family::default(),
        };
        registry.register("records", "Records written, by kind", m.events.clone());
        registry.register(
            "lost_events",
            "Events lost before the output, by kind and cause",
            m.lost.clone(),
        );
        registry.register("errors", "Damaged records, by cause", m.errors.clone());
        registry.register(
            "output_dropped_records",
            "Records an output dropped (queue full, destination failing)",
            m.sink_dropped.clone(),
        );
        registry.register(
            "output_truncated_records",
            "Records an output wrote shortened to fit its receiver",
            m.sink_truncated.clone(),
        );
        registry.register(
            "output_queued_bytes",
            "Memory waiting for an output",
            m.sink_queued.clone(),
        );
        let ring = Gauge::<i64>::default();
        ring.set(i64::from(ring_bytes));
        registry.register("ring_buffer_bytes", "The kernel ring buffer's size", ring);
        let attach = Family::<Labels, Gauge>::default();
        for h in hooks {
            let how = h.attach.map_or("none".to_owned(), |a| a.name().to_owned());
            attach
                .get_or_create(&vec![("hook", h.hook.to_owned()), ("attach", how)])
                .set(1);
        }
        registry.register(
            "hook",
            "Each hook's attach type (none: not attached)",
            attach,
        );
        let registry = Arc::new(registry);
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let _ = respond(conn, &registry);
                }
            })
            .map_err(|e| Error::io("starting the metrics thread", e))?;
        Ok(m)
    }

    /// The stream's totals now.
    pub fn update(
        &self,
        written: &[(&'static str, u64)],
        counts: &LossCounts,
        sinks: &[(SinkDrops, usize)],
    ) {
        for &(kind, n) in written {
            set(
                &self.events.get_or_create(&vec![("kind", kind.to_owned())]),
                n,
            );
        }
        let kinds = |k: &crate::model::loss::KindCounts| {
            [
                ("bind", k.bind),
                ("listen", k.listen),
                ("accept", k.accept),
                ("close", k.close),
                ("exec", k.exec),
                ("exit", k.exit),
            ]
        };
        for (cause, per_kind) in [
            ("ring_buffer_full", &counts.ring_buffer_full),
            ("in_flight_table_full", &counts.in_flight_table_full),
        ] {
            for (kind, n) in kinds(per_kind) {
                let labels = vec![("kind", kind.to_owned()), ("cause", cause.to_owned())];
                set(&self.lost.get_or_create(&labels), n);
            }
        }
        for (kind, n) in [("bind", counts.shed.bind), ("listen", counts.shed.listen)] {
            let labels = vec![("kind", kind.to_owned()), ("cause", "shed".to_owned())];
            set(&self.lost.get_or_create(&labels), n);
        }
        for (cause, n) in [
            ("decode", counts.decode_errors),
            ("socket_read", counts.socket_read_errors),
            ("task_read", counts.task_read_errors),
            ("fork_table_full", counts.fork_table_full),
        ] {
            set(
                &self
                    .errors
                    .get_or_create(&vec![("cause", cause.to_owned())]),
                n,
            );
        }
        for (drops, queued) in sinks {
            let labels = vec![("output", drops.sink.clone())];
            set(&self.sink_dropped.get_or_create(&labels), drops.dropped);
            set(&self.sink_truncated.get_or_create(&labels), drops.truncated);
            self.sink_queued
                .get_or_create(&labels)
                .set(i64::try_from(*queued).unwrap_or(i64::MAX));
        }
    }
}

/// One HTTP request: the figures for `GET /metrics`, 404 for anything else.
fn respond(mut conn: TcpStream, registry: &Registry) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    // The request line, however the client splits it into segments (at most 1 KiB is read).
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        let n = conn.read(&mut chunk[..1024 - head.len()])?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let request = String::from_utf8_lossy(&head);
    let (status, kind, body) =
        if request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?") {
            let mut text = String::new();
            let _ = encode(&mut text, registry);
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            )
        } else {
            (
                "404 Not Found",
                "text/plain",
                "portwatch serves /metrics only\n".to_owned(),
            )
        };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_is_loopback_and_other_addresses_are_as_written() {
        assert_eq!(parse_addr("9464"), Ok("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(parse_addr("[::1]:9464"), Ok("[::1]:9464".parse().unwrap()));
        assert_eq!(
            parse_addr("0.0.0.0:9464"),
            Ok("0.0.0.0:9464".parse().unwrap())
        );
        assert!(parse_addr("localhost:9464").unwrap_err().contains("a port"));
    }
}
