//! Command-line interface.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    kernel::hooks::{self, Forced},
    model::socket::socket_kind_names,
    output::{format::Format, spec::OutputSpec},
};

#[derive(Debug, Parser)]
#[command(
    name = "portwatch",
    version,
    about = "Watch the kernel for sockets that bind, listen, accept and close; one JSON line per event",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "built once per run")]
pub enum Command {
    /// Stream socket events from the whole host as JSON lines on stdout (needs root).
    ///
    /// Every bind(2) (TCP and UDP, IPv4 and IPv6, successes and failures), every TCP socket that
    /// starts listening, every accepted connection and every listener that closes, with the pid,
    /// thread id, uid, gid and command of the process that did it. The first line is a `start`
    /// record saying which kernel attach type each hook got; losses are reported as `loss`
    /// records, and a `stop` record with totals ends the stream on SIGINT or SIGTERM.
    /// The record format is documented in the README and in schema/portwatch.schema.json.
    Watch(WatchArgs),

    /// List the host's listening TCP sockets and bound UDP sockets, with the process, user,
    /// executable, container and exposure of each (like `ss -ltnup`, with context).
    ///
    /// A readable table on a terminal; `--json` (or a pipe) gives one `listener` record per line,
    /// the same records `watch` starts with. Needs root to see every process's sockets.
    Ls(LsArgs),

    /// Print the current listeners as a baseline (an allowlist to review and edit) for
    /// `watch --baseline FILE`: one rule per line, PROTOCOL PORT SCOPE USER EXECUTABLE.
    Baseline,

    /// Check that portwatch sees every path a listener can be made on this host: it attaches
    /// the hooks, makes canary sockets through each (bind, listen and accept syscalls, a failed
    /// bind, io_uring where the kernel has it, a listener in a fresh network namespace, a UDP
    /// close) and prints which hook saw which. Exits 1 if a path is blind, naming why. Run it
    /// after a kernel upgrade. Needs root.
    Doctor(DoctorArgs),

    /// Tell what happened from portwatch's own files (native format; each FILE's rotations
    /// FILE.N ... FILE.1 are read first): per port (or --by-process), who bound and listened
    /// when, the connections accepted and from where, the close, with each process and the
    /// chain that started it. Says whether any record of the runs read is missing.
    Timeline(TimelineArgs),

    /// (For doctor) make the canary sockets; waits for stdin to close.
    #[command(hide = true)]
    Canary,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Also print every record the canaries produced.
    #[arg(long)]
    pub verbose: bool,

    /// As for `watch`: check the paths with this attach type for HOOK.
    #[arg(long, value_name = "HOOK=TYPE", help = hooks::attach_help())]
    pub attach: Vec<Forced>,
}

#[derive(Debug, clap::Args)]
pub struct TimelineArgs {
    /// portwatch's output files (`--output file:PATH`), native format.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Group by process (pid and start time) instead of by port.
    #[arg(long)]
    pub by_process: bool,

    /// Only these ports (repeatable).
    #[arg(long, value_name = "PORT")]
    pub port: Vec<u16>,

    /// Only records of these processes (repeatable).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,

    /// Only records of this executable: a path, or a file name (repeatable).
    #[arg(long, value_name = "EXE")]
    pub exe: Vec<String>,

    /// Only records from this time on (RFC 3339 UTC, e.g. 2026-12-03T11:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only records up to this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// One JSON object per group, then one that says what is missing.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,

    /// The JSON records' format (implies --json unless native).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,

    /// Do not judge listeners against the firewall (no `nft` is run; REACH shows `-`).
    #[arg(long)]
    pub no_reachability: bool,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Read the flags' values from this TOML file (e.g. /etc/portwatch/portwatch.toml); a flag
    /// given here wins over the file. See the README's "Configuration file".
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format: portwatch's own records, Elastic Common Schema 9.4, or OCSF 1.8.0 (for
    /// every output that names none).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,

    /// Where records go (repeatable; default stdout): `stdout`; `file:PATH` (mode 0600,
    /// rotated at 100 MiB with 5 backups, reopened on SIGHUP); `syslog` (/dev/log),
    /// `syslog:unix:PATH`, `syslog:udp://HOST:PORT`, `syslog:tcp://HOST:PORT` (RFC 5424; TCP
    /// octet-counted). Options after commas: `format=native|ecs|ocsf`; for files
    /// `max-size=SIZE` (e.g. 10M, 0 for never) and `backups=N`; for syslog `facility=NAME`
    /// (default daemon) and `max-line=BYTES` (default 8192).
    #[arg(long, value_name = "SINK[,OPTION=VALUE...]")]
    pub output: Vec<OutputSpec>,

    /// Serve Prometheus metrics on http://ADDR/metrics: a port alone is 127.0.0.1's; another
    /// address is bound only when written (e.g. 0.0.0.0:9464). Off by default.
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,

    /// Turn a built-in detection off (repeatable).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(
        crate::judge::rules::RULES.map(|r| r.name)
    ))]
    pub no_detection: Vec<String>,

    /// The ports the backdoor-port detection names (repeatable; default: 1337, 4444, 5555,
    /// 6666, 6667, 6697, 12345, 12346, 20034, 27374, 31337, 54320, 54321).
    #[arg(long, value_name = "PORT")]
    pub backdoor_port: Vec<u16>,

    /// Every INTERVAL (e.g. 10s, 500ms, 1m), a `listener_stats` record per listener: accept
    /// queue, connections by state, drops (new since the last), with the accept-queue-overflow
    /// and close-wait-growing detections. Off by default.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_interval)]
    pub stats: Option<std::time::Duration>,

    /// Add to each record its process's ancestry: parent, grandparent, ... up to init (pid,
    /// start time, exe, args), exact for ancestors that have exited.
    #[arg(long)]
    pub ancestry: bool,

    /// Leave out `reachability` (whether the namespace's nftables rules let a new connection
    /// reach the listener) from listener, listen and UDP bind records: no `nft` is run.
    #[arg(long)]
    pub no_reachability: bool,

    /// A program allowed to listen and accept through io_uring, quiet for the io-uring-listener
    /// detection (repeatable): an executable's path, or a file name for any path.
    #[arg(long, value_name = "EXE")]
    pub uring_allow: Vec<String>,

    /// Kernel ring buffer size in bytes: a power of two from 4096 to 268435456 (256 MiB).
    /// Bigger absorbs longer bursts before events are lost (and counted).
    #[arg(
        long,
        default_value_t = 1 << 20,
        value_parser = parse_ring_size,
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub ring_buffer_size: u32,

    /// Listener births (successful listens, UDP binds) one process may make per second on each
    /// CPU before the kernel sheds the rest into counts: a `flood` record names the process,
    /// and the listeners are listed again. 0: no limit; at most 1000000. Default 100.
    #[arg(long, value_name = "PER_SECOND", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub flood_rate: Option<u32>,

    /// Listener births one process may make at once on each CPU before `--flood-rate` applies.
    /// Default 500.
    #[arg(long, value_name = "COUNT")]
    pub flood_burst: Option<u32>,

    /// Read kernel types from this BTF file instead of /sys/kernel/btf/vmlinux.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,

    #[arg(long, value_name = "HOOK=TYPE", help = hooks::attach_help())]
    pub attach: Vec<Forced>,

    /// Mark every listener (pre-existing or new) that no rule of this baseline allows with an
    /// `alert` field saying why. Write one with `portwatch baseline > FILE`.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    #[arg(
        long,
        help = format!("Only events of these kinds (comma-separated): {}", socket_kind_names()),
        value_delimiter = ',',
        value_name = "KINDS",
        help_heading = "Filters (in the kernel)"
    )]
    pub events: Vec<String>,

    /// Only events from these processes (thread-group ids). Repeatable.
    #[arg(long, value_name = "PID", help_heading = "Filters (in the kernel)")]
    pub pid: Vec<u32>,

    /// Only events on these local ports. Repeatable.
    #[arg(long, value_name = "PORT", help_heading = "Filters (in the kernel)")]
    pub port: Vec<u16>,

    /// Only events from processes with these real uids. Repeatable.
    #[arg(long, value_name = "UID", help_heading = "Filters (in the kernel)")]
    pub uid: Vec<u32>,

    /// Only events from processes in these cgroups (v2): an id, or a path in the hierarchy
    /// such as /system.slice/nginx.service. Repeatable.
    #[arg(long, value_name = "CGROUP", help_heading = "Filters (in the kernel)")]
    pub cgroup: Vec<String>,

    /// Only events in these network namespaces: an inode number or a path such as
    /// /proc/PID/ns/net or /run/netns/NAME. Repeatable.
    #[arg(long, value_name = "NETNS", help_heading = "Filters (in the kernel)")]
    pub netns: Vec<String>,

    /// Only events from processes running this executable (absolute path). Repeatable.
    #[arg(long, value_name = "PATH", help_heading = "Filters (after enrichment)")]
    pub exe: Vec<PathBuf>,

    /// Only events from containers whose id starts with this. Repeatable.
    #[arg(long, value_name = "ID", help_heading = "Filters (after enrichment)")]
    pub container: Vec<String>,
}

/// `--flood-rate` and `--flood-burst` when neither the flags nor the configuration set them.
pub const FLOOD_RATE: u32 = 100;
pub const FLOOD_BURST: u32 = 500;

impl WatchArgs {
    /// The filter flags, for `filter::Filters::new`.
    pub fn asked(&self) -> crate::filter::Asked<'_> {
        crate::filter::Asked {
            events: &self.events,
            pid: &self.pid,
            uid: &self.uid,
            port: &self.port,
            cgroup: &self.cgroup,
            netns: &self.netns,
            exe: &self.exe,
            container: &self.container,
        }
    }

    /// The flood limit the kernel applies (`portwatch_common::flood`).
    pub fn flood_limit(&self) -> portwatch_common::FloodLimit {
        portwatch_common::FloodLimit::new(
            u64::from(self.flood_rate.unwrap_or(FLOOD_RATE)),
            u64::from(self.flood_burst.unwrap_or(FLOOD_BURST)),
        )
    }
}

/// The largest ring buffer: 256 MiB of locked kernel memory holds about a million records.
pub const MAX_RING_BYTES: u32 = 1 << 28;

pub fn parse_ring_size(s: &str) -> Result<u32, String> {
    let range = format!("a power of two from 4096 to {MAX_RING_BYTES}");
    let n: u64 = s
        .parse()
        .map_err(|_| format!("not a number of bytes ({range})"))?;
    if n > u64::from(MAX_RING_BYTES) {
        return Err(format!(
            "more than the largest ring, {MAX_RING_BYTES} bytes (256 MiB)"
        ));
    }
    if n < 4096 || !n.is_power_of_two() {
        return Err(format!("not {range}"));
    }
    Ok(n as u32)
}

/// `--stats`'s interval: a number with `ms`, `s` (the default) or `m`, from 100 ms to a day.
pub fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (number, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else {
        (t, 1000)
    };
    let n: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an interval: write e.g. 10s, 500ms or 1m"))?;
    let ms = n.saturating_mul(unit_ms);
    if !(100..=86_400_000).contains(&ms) {
        return Err(format!(
            "`{text}`: the interval must be from 100ms to 1440m (a day)"
        ));
    }
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_intervals_take_units_and_refuse_the_absurd() {
        let ms = |t| parse_interval(t).map(|d| d.as_millis());
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("5"), Ok(5_000));
        assert!(ms("10ms").unwrap_err().contains("from 100ms"));
        assert!(ms("soon").unwrap_err().contains("not an interval"));
    }

    #[test]
    fn ring_size_must_be_a_power_of_two() {
        assert_eq!(parse_ring_size("65536"), Ok(65536));
        assert!(parse_ring_size("1000").is_err());
        assert!(parse_ring_size("2048").is_err());
        assert!(parse_ring_size("lots").is_err());
        assert_eq!(
            parse_ring_size(&MAX_RING_BYTES.to_string()),
            Ok(MAX_RING_BYTES)
        );
        assert!(
            parse_ring_size("-4096")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_ring_size("4294967296")
                .unwrap_err()
                .contains("largest ring")
        );
        assert!(
            parse_ring_size("536870912")
                .unwrap_err()
                .contains("largest ring")
        );
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
