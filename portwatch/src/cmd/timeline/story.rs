//! The timeline's model: records grouped per port or per process in the order they were
//! written, runs of accepts folded into one entry, and each run's missing records counted.
use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::{Value, json};

#[derive(Clone, Copy)]
pub enum Key {
    Port,
    Process,
}

enum Item {
    Record(Value),
    /// Consecutive accepts by one process: how many, when, from where.
    Accepts {
        pid: Value,
        comm: Value,
        count: u64,
        first: String,
        last: String,
        peers: BTreeMap<String, u64>,
    },
}

/// One portwatch run as far as the files hold it.
struct Run {
    /// Its start record's time (None: it began before the oldest file).
    started: Option<String>,
    next_seq: u64,
    missing: u64,
    /// The largest `lost_total` its loss and stop records gave.
    lost: u64,
}

pub struct Story {
    key: Key,
    groups: BTreeMap<(String, String), Group>,
    runs: Vec<Run>,
}

struct Group {
    /// The ports it touches (to select with --port).
    ports: Vec<u64>,
    items: Vec<Item>,
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

impl Story {
    pub fn new(key: Key) -> Self {
        Self {
            key,
            groups: BTreeMap::new(),
            runs: Vec::new(),
        }
    }

    /// Counts the gaps in each run's numbering (every record, filtered or not).
    pub fn sequence(&mut self, v: &Value) {
        let seq = v["seq"].as_u64().unwrap_or(0);
        if v["event"] == "start" || self.runs.is_empty() {
            let started = (v["event"] == "start").then(|| text(&v["time"]).to_owned());
            // A run the files join midway: what was numbered before is not here.
            let missing = if started.is_some() { 0 } else { seq };
            self.runs.push(Run {
                started,
                next_seq: seq,
                missing,
                lost: 0,
            });
        }
        let run = self.runs.last_mut().expect("a run");
        run.missing += seq.saturating_sub(run.next_seq);
        run.next_seq = run.next_seq.max(seq + 1);
        if let Some(lost) = v["lost_total"].as_u64() {
            run.lost = run.lost.max(lost);
        }
    }

    pub fn add(&mut self, v: &Value) {
        let event = text(&v["event"]);
        // Of the --stats records, those with a finding (an overflow, a CLOSE_WAIT pile).
        let finding = event == "listener_stats" && v["detections"].is_array();
        if !finding
            && !matches!(
                event,
                "listener" | "bind" | "listen" | "accept" | "close" | "exec"
            )
        {
            return;
        }
        let Some(port) = v["port"].as_u64() else {
            return;
        };
        let key = match self.key {
            Key::Port => (text(&v["protocol"]).to_owned(), format!("{port:05}")),
            Key::Process => (
                format!("{:010}", v["pid"].as_u64().unwrap_or(0)),
                v["start_time"].as_str().unwrap_or("").to_owned(),
            ),
        };
        let group = self.groups.entry(key).or_insert_with(|| Group {
            ports: Vec::new(),
            items: Vec::new(),
        });
        if !group.ports.contains(&port) {
            group.ports.push(port);
        }
        if event != "accept" {
            group.items.push(Item::Record(v.clone()));
            return;
        }
        let time = text(&v["time"]).to_owned();
        let peer = text(&v["remote_address"]).to_owned();
        if let Some(Item::Accepts {
            pid,
            count,
            last,
            peers,
            ..
        }) = group.items.last_mut()
        {
            if *pid == v["pid"] {
                *count += 1;
                *last = time;
                *peers.entry(peer).or_default() += 1;
                return;
            }
        }
        group.items.push(Item::Accepts {
            pid: v["pid"].clone(),
            comm: v["comm"].clone(),
            count: 1,
            first: time.clone(),
            last: time,
            peers: BTreeMap::from([(peer, 1)]),
        });
    }

    fn selected<'a>(
        &'a self,
        ports: &'a [u16],
    ) -> impl Iterator<Item = (&'a (String, String), &'a Group)> {
        self.groups.iter().filter(move |(_, g)| {
            ports.is_empty()
                || g.ports
                    .iter()
                    .any(|p| ports.iter().any(|q| u64::from(*q) == *p))
        })
    }

    /// Runs whose records are not all here: "run started T: N missing (M counted lost)".
    fn holes(&self) -> Vec<String> {
        self.runs
            .iter()
            .filter(|r| r.missing > 0)
            .map(|r| {
                format!(
                    "run started {}: {} records missing ({} counted lost by the run itself; the rest were in rotations no longer here)",
                    r.started.as_deref().unwrap_or("before the oldest file"),
                    r.missing,
                    r.lost.min(r.missing)
                )
            })
            .collect()
    }

    pub fn text(&self, ports: &[u16]) -> String {
        let mut out = String::new();
        for ((a, b), g) in self.selected(ports) {
            let _ = match self.key {
                Key::Port => writeln!(out, "{a} port {}", b.trim_start_matches('0')),
                Key::Process => writeln!(out, "pid {} started {b}", a.trim_start_matches('0')),
            };
            for item in &g.items {
                match item {
                    Item::Record(v) => describe(v, &mut out),
                    Item::Accepts {
                        pid,
                        comm,
                        count,
                        first,
                        last,
                        peers,
                    } => {
                        let from: Vec<String> =
                            peers.iter().map(|(p, n)| format!("{p} ({n})")).collect();
                        let _ = writeln!(
                            out,
                            "  {first}  accepted {count} connection{} until {last}, from {}  {}[{pid}]",
                            if *count == 1 { "" } else { "s" },
                            from.join(", "),
                            text(comm)
                        );
                    }
                }
            }
            out.push('\n');
        }
        let holes = self.holes();
        if holes.is_empty() {
            let _ = writeln!(
                out,
                "complete: no record of the {} run(s) read is missing",
                self.runs.len()
            );
        }
        for h in holes {
            let _ = writeln!(out, "incomplete: {h}");
        }
        out
    }

    pub fn json(&self, ports: &[u16]) -> String {
        let mut out = String::new();
        for ((a, b), g) in self.selected(ports) {
            let items: Vec<Value> = g
                .items
                .iter()
                .map(|i| match i {
                    Item::Record(v) => v.clone(),
                    Item::Accepts {
                        pid,
                        comm,
                        count,
                        first,
                        last,
                        peers,
                    } => json!({
                        "event": "accepts", "pid": pid, "comm": comm, "count": count,
                        "first": first, "last": last, "peers": peers,
                    }),
                })
                .collect();
            let group = match self.key {
                Key::Port => json!({"protocol": a, "port": b.parse::<u64>().ok(), "events": items}),
                Key::Process => {
                    json!({"pid": a.parse::<u64>().ok(), "start_time": b, "events": items})
                }
            };
            let _ = writeln!(out, "{group}");
        }
        let _ = writeln!(
            out,
            "{}",
            json!({"runs": self.runs.len(), "incomplete": self.holes()})
        );
        out
    }
}

/// One line for a record, then its process chain and findings.
fn describe(v: &Value, out: &mut String) {
    let args: Vec<&str> = v["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {}  {}  {}[{}] {} {} (uid {})",
        text(&v["time"]),
        what(v),
        text(&v["comm"]),
        v["pid"],
        v["exe"].as_str().unwrap_or("?"),
        args.iter().skip(1).copied().collect::<Vec<_>>().join(" "),
        v["uid"]
    );
    let chain: Vec<String> = match v["ancestry"].as_array() {
        Some(a) => a
            .iter()
            .map(|p| {
                format!(
                    "{}[{}] {}",
                    text(&p["comm"]),
                    p["pid"],
                    p["exe"].as_str().unwrap_or("?")
                )
            })
            .collect(),
        None if v["parent"].is_object() => vec![format!(
            "{}[{}] {}",
            v["parent"]["comm"].as_str().unwrap_or("?"),
            v["parent"]["pid"],
            v["parent"]["exe"].as_str().unwrap_or("?")
        )],
        None => Vec::new(),
    };
    if !chain.is_empty() {
        let _ = writeln!(out, "      started by {}", chain.join(" <- "));
    }
    verdicts(v, out);
}

/// What happened, in a few words: "listen on 0.0.0.0:22 (backlog 128)".
fn what(v: &Value) -> String {
    let at = format!(
        "{}:{}",
        text(&v["address"]),
        v["port"].as_u64().unwrap_or(0)
    );
    let failed = v["success"] == false;
    match text(&v["event"]) {
        "listener" => format!("listening on {at} when portwatch started"),
        "listener_stats" => {
            let h = &v["health"];
            format!(
                "health of {at}: accept queue {}/{}, {} established, {} in CLOSE_WAIT, {} new drops",
                h["accept_queue"],
                h["accept_queue_max"],
                h["established"],
                h["close_wait"],
                h["new_drops"]
            )
        }
        "bind" if failed => format!("bind {at} failed: {}", text(&v["errno"])),
        "bind" => format!("bound {at}"),
        "listen" if failed => format!("listen on {at} failed: {}", text(&v["errno"])),
        "listen" => format!("listen on {at} (backlog {})", v["backlog"]),
        "close" => {
            let mut s = format!("closed {at}");
            if let Some(l) = v["lifetime_s"].as_f64() {
                let _ = write!(s, " after {l:.1} s");
            }
            if let Some(n) = v["accepted"].as_u64() {
                let _ = write!(s, ", {n} accepted");
            }
            if let Some(r) = v["reason"].as_str() {
                let _ = write!(s, " ({r})");
            }
            s
        }
        _ => {
            let peer = v["remote_address"].as_str().map(|r| {
                format!(
                    " connected to {r}:{}",
                    v["remote_port"].as_u64().unwrap_or(0)
                )
            });
            format!("started on a socket {at}{}", peer.unwrap_or_default())
        }
    }
}

/// The firewall's verdict, the detections and the baseline's alert, a line each.
fn verdicts(v: &Value, out: &mut String) {
    let reach = &v["reachability"];
    if let Some(status) = reach["status"].as_str() {
        let by = reach["rule"]
            .as_str()
            .map(|r| format!(" by `{r}`"))
            .unwrap_or_default();
        let why = text(&reach["reason"]);
        let _ = writeln!(out, "      firewall: {status}{by}: {why}");
    }
    for d in v["detections"].as_array().into_iter().flatten() {
        let technique = d["technique"]
            .as_str()
            .map(|t| format!(", {t}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "      detection {} ({}{technique}): {}",
            text(&d["name"]),
            text(&d["severity"]),
            text(&d["reason"])
        );
    }
    if let Some(a) = v["alert"].as_str() {
        let _ = writeln!(out, "      baseline: {a}");
    }
}
