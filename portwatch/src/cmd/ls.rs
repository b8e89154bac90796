//! `portwatch ls`: the current listeners, once, as a table or as JSON lines.
use std::io::{self, Write};

use crate::{
    cli::LsArgs,
    clock::Clock,
    enrich::Enricher,
    error::{Error, Result},
    model::{listener::Listener, process::ListenerOwner},
    output::{
        Output,
        format::Native,
        record::{ListenerRecord, Record},
        sink::Writer,
    },
    state::inventory,
};

/// A listener and its first owner.
type Entry = (Listener, ListenerOwner);

/// The current listeners, each with its owner's context.
fn current(clock: &Clock) -> Result<Vec<Entry>> {
    let listeners =
        inventory::snapshot().map_err(|e| Error::io("listing sockets with sock_diag", e))?;
    let mut enricher = Enricher::new(None);
    enricher.seed_from_proc();
    Ok(listeners
        .into_iter()
        .map(|l| {
            let owner = enricher.listener_owner(&l, clock);
            (l, owner)
        })
        .collect())
}

/// `portwatch baseline`: the current listeners as an allowlist.
pub fn baseline() -> Result<()> {
    let clock = Clock::now();
    let listeners = current(&clock)?;
    let mut out = io::stdout().lock();
    let text = crate::filter::baseline::render(&listeners, &clock.format_now());
    out.write_all(text.as_bytes()).map_err(Error::from_output)?;
    out.flush().map_err(Error::from_output)
}

pub fn run(args: &LsArgs) -> Result<()> {
    let clock = Clock::now();
    let listeners = current(&clock)?;
    // SAFETY: isatty on a valid fd number.
    let terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
    if args.json || !terminal {
        let mut out = Output::new(Box::new(Native), Writer(io::stdout().lock()));
        for (l, owner) in &listeners {
            let r = ListenerRecord::new(l, owner, None, clock.format_now());
            out.write(&Record::Listener(r))?;
        }
        out.flush()
    } else {
        let mut out = io::stdout().lock();
        write!(out, "{}", table(&listeners)).map_err(Error::from_output)?;
        out.flush().map_err(Error::from_output)
    }
}

/// The human view: one row per listener.
pub fn table(listeners: &[Entry]) -> String {
    let header = [
        "PROTO", "LOCAL", "SCOPE", "PID", "USER", "COMMAND", "EXE", "WHERE",
    ];
    let rows: Vec<[String; 8]> = listeners
        .iter()
        .map(|(l, owner)| {
            let p = &owner.process;
            let task = owner.task.as_ref();
            let place = p
                .container
                .as_ref()
                .map(|c| format!("{} {}", c.runtime, c.id.get(..12).unwrap_or(&c.id)))
                .or_else(|| p.unit.clone())
                .unwrap_or_default();
            let mut scope = l.scope.name().to_owned();
            if l.shared > 0 {
                scope.push_str(&format!(" +{} shared", l.shared));
            }
            [
                l.socket.proto.name().to_owned(),
                // SocketAddr's Display brackets IPv6 addresses.
                l.socket.local.to_string(),
                scope,
                task.map_or_else(|| "-".into(), |t| t.pid.to_string()),
                p.user.clone().unwrap_or_else(|| "-".into()),
                task.map_or_else(|| "-".into(), |t| t.comm.text().into_owned()),
                p.exe.as_deref().unwrap_or("-").to_owned(),
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
