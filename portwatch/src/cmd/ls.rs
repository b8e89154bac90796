//! `portwatch ls`: the current listeners, once, as a table or as JSON lines.
use std::io::{self, Write};

use crate::{
    cli::LsArgs,
    clock::Clock,
    enrich::Enricher,
    error::{Error, Result},
    output::{
        Output,
        format::Native,
        record::{ListenerRecord, Record},
        sink::Writer,
    },
    state::inventory,
};

/// The current listeners, each with its owner's context.
fn current() -> Result<Vec<ListenerRecord>> {
    let listeners =
        inventory::snapshot().map_err(|e| Error::io("listing sockets with sock_diag", e))?;
    let clock = Clock::now();
    let mut enricher = Enricher::new(None);
    enricher.processes.seed_from_proc();
    Ok(listeners
        .iter()
        .map(|l| enricher.listener(l, &clock))
        .collect())
}

/// `portwatch baseline`: the current listeners as an allowlist.
pub fn baseline() -> Result<()> {
    let records = current()?;
    let mut out = io::stdout().lock();
    let text = crate::filter::baseline::render(&records, &Clock::now().format_now());
    out.write_all(text.as_bytes()).map_err(Error::from_output)?;
    out.flush().map_err(Error::from_output)
}

pub fn run(args: &LsArgs) -> Result<()> {
    let records = current()?;
    // SAFETY: isatty on a valid fd number.
    let terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
    if args.json || !terminal {
        let mut out = Output::new(Box::new(Native), Writer(io::stdout().lock()));
        for r in records {
            out.write(&Record::Listener(r))?;
        }
        out.flush()
    } else {
        let mut out = io::stdout().lock();
        write!(out, "{}", table(&records)).map_err(Error::from_output)?;
        out.flush().map_err(Error::from_output)
    }
}

/// The human view: one row per listener.
pub fn table(records: &[ListenerRecord]) -> String {
    let header = [
        "PROTO", "LOCAL", "SCOPE", "PID", "USER", "COMMAND", "EXE", "WHERE",
    ];
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            let local = if r.family == "ipv6" {
                format!("[{}]:{}", r.address, r.port)
            } else {
                format!("{}:{}", r.address, r.port)
            };
            let p = r.process.as_ref();
            let place = p
                .and_then(|p| {
                    p.container
                        .as_ref()
                        .map(|c| format!("{} {}", c.runtime, &c.id[..12]))
                        .or_else(|| p.unit.clone())
                })
                .unwrap_or_default();
            let mut scope = r.scope.name().to_owned();
            if r.shared > 0 {
                scope.push_str(&format!(" +{} shared", r.shared));
            }
            [
                r.protocol.to_owned(),
                local,
                scope,
                r.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                p.and_then(|p| p.user.clone()).unwrap_or_else(|| "-".into()),
                r.comm.clone().unwrap_or_else(|| "-".into()),
                p.and_then(|p| p.exe.as_deref().map(str::to_owned))
                    .unwrap_or_else(|| "-".into()),
                place,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    text
}
