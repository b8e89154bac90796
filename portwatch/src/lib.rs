//! portwatch: an eBPF tracer for sockets that bind, listen, accept and close.
//!
//! Start-up: `preflight` checks privileges, BTF and tracefs; `kernel_layout` reads this kernel's
//! struct and tracepoint offsets; `loader` loads the kernel programs with them; `hooks` attaches
//! each hook with the best attach type available. Then `watch` reads records from the ring buffer,
//! `decode` checks and types them, `enrich` adds who did it (with `proctable`, `procfs`, `users`
//! and `cgroup`), `record` shapes them for output (socket records member by member with `json`) and
//! `output` writes JSON lines.
pub mod baseline;
pub mod btf;
pub mod cgroup;
pub mod cli;
pub mod clock;
pub mod counters;
pub mod decode;
pub mod enrich;
pub mod error;
pub mod filters;
pub mod hooks;
pub mod inventory;
pub mod json;
pub mod kernel_layout;
pub mod listeners;
pub mod loader;
pub mod ls;
pub mod output;
pub mod preflight;
pub mod procfs;
pub mod proctable;
pub mod record;
pub mod sockdiag;
pub mod source;
pub mod stream;
pub mod users;
pub mod watch;

#[cfg(test)]
mod golden;
