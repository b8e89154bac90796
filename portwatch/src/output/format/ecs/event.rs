//! ECS's `event` object: what kind of event each record is, and how much it asks of a reader.
use super::super::siem;
use crate::{
    model::verdict::Level,
    output::{format::json::Members, record::Record},
};

/// `event.*`: kind (an alert when judged), severity, categories, action, outcome, reason.
pub(super) fn event(e: &mut Members, seq: u64, record: &Record, alert: Option<&str>) {
    let (kind, category, types, action) = categories(record);
    let found = siem::detections(record);
    let alerting = alert.is_some() || !found.is_empty();
    e.plain("kind", if alerting { "alert" } else { kind });
    // ECS's scale is the source's: 47, 73 and 99, as Elastic's own rules use; only a
    // detection has one.
    let severity = match record.level() {
        Level::Medium => Some(47),
        Level::High => Some(73),
        Level::Critical => Some(99),
        Level::Info | Level::Notable => None,
    };
    if let Some(severity) = severity {
        e.int("severity", severity);
    }
    if !category.is_empty() {
        e.strs("category", category.iter().copied());
        e.strs("type", types.iter().copied());
    }
    e.plain("action", action);
    match record {
        Record::Bind(r)
        | Record::Listen(r)
        | Record::Accept(r)
        | Record::Close(r)
        | Record::Exec(r) => {
            let failed = r.success == Some(false);
            e.plain("outcome", if failed { "failure" } else { "success" });
        }
        Record::Stop(r) => e.plain("reason", r.reason),
        _ => {}
    }
    if let Some(reason) = alert.or_else(|| found.first().map(|d| d.reason.as_str())) {
        e.str("reason", reason);
    }
    e.plain("module", "portwatch");
    e.plain("dataset", "portwatch.socket");
    e.int("sequence", seq);
}

/// `event.kind`, `event.category`, `event.type`, `event.action` of each record kind.
fn categories(
    record: &Record,
) -> (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
) {
    const NETWORK: &[&str] = &["network"];
    const PROCESS: &[&str] = &["process"];
    match record {
        Record::Bind(_) => ("event", NETWORK, &["start"], "bind"),
        Record::Listen(_) => ("event", NETWORK, &["start"], "listen"),
        Record::Accept(_) => (
            "event",
            NETWORK,
            &["connection", "start"],
            "connection_accepted",
        ),
        Record::Close(_) => ("event", NETWORK, &["end"], "listener_closed"),
        Record::Exec(_) => (
            "event",
            &["process", "network"],
            &["start"],
            "exec_on_socket",
        ),
        Record::Listener(_) => ("state", NETWORK, &["info"], "listener"),
        Record::ListenerStats(_) => ("metric", NETWORK, &["info"], "listener_stats"),
        Record::Start(_) => ("event", PROCESS, &["start"], "portwatch_started"),
        Record::Stop(_) => ("event", PROCESS, &["end"], "portwatch_stopped"),
        Record::Loss(_) => ("metric", &[], &[], "events_lost"),
        Record::SnapshotComplete(_) => ("event", &[], &[], "snapshot_complete"),
        Record::Flood(_) => ("event", NETWORK, &["info"], "listener_flood"),
    }
}
