//! portwatch: an eBPF tracer for sockets that bind, listen, accept and close.
//!
//! The folders follow the data, one way:
//! - `kernel`: start-up checks (`preflight`), this kernel's offsets (`btf`, `layout`), loading
//!   (`loader`), the hook table and its attachment (`hooks`), and the kernel's counters;
//! - `pipeline`: ring-buffer bytes to typed records (`decode`), then `stream`, which runs each
//!   record through the stages below in order, and numbers losses (`sequence`);
//! - `enrich`: who did it (process table, /proc, cgroups, users, containers);
//! - `filter`: what the user asked to see (`--pid`, `--exe`, ...);
//! - `state`: the listener table, the snapshot of existing sockets (`inventory`, `sockdiag`),
//!   the firewall's rulesets;
//! - `judge`: every verdict (baseline, detections, reachability), one entry point per situation;
//! - `output`: format-neutral records, an encoder per format (`format`) and sinks (`sink`).
//!
//! `model` holds the plain types they share, `host` the facts about this machine; `cmd` the
//! start-up order of each command. A stage imports only itself and the stages below it
//! (`layering` checks it).
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;

pub mod enrich;
pub mod error;
pub mod files;
pub mod filter;
pub mod host;
pub mod judge;
pub mod kernel;
pub mod metrics;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod state;
pub mod trusted;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod layering;
#[cfg(test)]
mod testkit;
