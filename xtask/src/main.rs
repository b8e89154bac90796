//! `cargo xtask`: developer and CI tasks.
//!
//! - `setup`: installs what building the kernel programs needs, and the official ECS and OCSF
//!   definitions the tests check output against, if they are missing (idempotent);
//! - `run [ARGS]`: setup, build, then `portwatch ARGS` (default: `watch`);
//! - `test`: setup, then the whole test suite (unit tests and real-kernel tests, here and in the
//!   qemu guests of `vm-test`; needs root);
//! - `vm-test`: the real-kernel tests on stock Debian kernels (6.1, 6.12) in qemu;
//! - `bench`: per-event cost figures of the daemon's userspace path;
//! - `fuzz`: the parsers' property tests, for minutes each.
mod bench;
mod deploy;
mod fuzz;
mod loadgen;
mod memory;
mod schemas;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "portwatch developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the eBPF toolchain if it is missing (Debian's rustc-web + BPF core, bpf-linker),
    /// and fetch the ECS and OCSF definitions the tests check against.
    Setup,
    /// Build portwatch (release) and run it; arguments go to portwatch (default: `watch`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure portwatch: its per-event userspace cost, then loads on loopback with no tracer,
    /// under portwatch and under bpftrace (needs root); prints figures.
    Bench {
        /// Seconds per load run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Run only the loads whose name contains this text (e.g. `accept`, `idle`, `memory`).
        #[arg(long)]
        only: Option<String>,
        /// Runs of each tracer per load, each between two runs without a tracer.
        #[arg(long, default_value_t = 5)]
        pairs: usize,
        /// Also the one-minute loads (300 short-lived processes, 100k binds/s).
        #[arg(long)]
        long: bool,
        /// Only the default configuration, not the `--events KIND` runs.
        #[arg(long)]
        default_only: bool,
    },
    /// Run the property tests of portwatch's parsers (portwatch/src/fuzz.rs) for minutes each,
    /// with fresh seeds, and print how many cases passed.
    Fuzz {
        /// Minutes per target.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Only the targets whose name contains this text.
        #[arg(long)]
        only: Option<String>,
    },
    /// (For bench) run one load generator; waits for a line on stdin.
    #[command(hide = true)]
    Loadgen {
        #[arg(value_enum)]
        load: loadgen::Load,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        rate: Option<u64>,
        /// Stop after this many operations (and at the latest after `--seconds`).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Check the deployment files (systemd unit, Kubernetes manifest); part of `test`.
    DeployCheck,
    /// (For bench) one process of the `processes` load: listen on a loopback port, exit.
    #[command(hide = true)]
    ListenOnce,
    /// (For bench) the flood's hidden listener: listen on a loopback port, print it, hold it.
    #[command(hide = true)]
    ListenHold {
        #[arg(long)]
        seconds: f64,
    },
    /// Run the real-kernel tests inside qemu on stock Debian kernels (6.1, 6.12), where fentry
    /// and kprobes are allowed (as root; downloads the kernels once).
    VmTest {
        /// Only this kernel (6.1 or 6.12).
        #[arg(long)]
        kernel: Option<String>,
        /// Run this shell command in the guest instead of the tests (debugging).
        #[arg(long)]
        run: Option<String>,
    },
    /// Run every test: unit tests, the real-kernel integration tests (as root), then the same
    /// in qemu on stock Debian kernels (`vm-test`).
    Test {
        /// Only on this machine's kernel (skip the qemu guests).
        #[arg(long)]
        host_only: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root();
    match cli.task {
        Task::Setup => {
            setup::ensure()?;
            schemas::ensure(&root)
        }
        Task::Run { args } => run_portwatch(&root, args),
        Task::Bench {
            seconds,
            only,
            pairs,
            long,
            default_only,
        } => {
            let options = bench::Options {
                seconds,
                pairs: pairs.max(1),
                only: only.as_deref(),
                long,
                default_only,
            };
            run_bench(&root, &options)
        }
        Task::Loadgen {
            load,
            seconds,
            rate,
            count,
        } => loadgen::run(load, seconds, rate, count),
        Task::ListenOnce => loadgen::listen_once(),
        Task::ListenHold { seconds } => loadgen::listen_hold(seconds),
        Task::DeployCheck => {
            setup::apt_install(TEST_PACKAGES)?;
            cargo(&root, &["build", "--release", "--package", "portwatch"])?;
            deploy::check(&root, &root.join("target/release/portwatch"))
        }
        Task::Fuzz { minutes, only } => fuzz::run(&root, minutes, only.as_deref()),
        Task::VmTest { kernel, run } => {
            setup::ensure()?;
            setup::require_root("the guests' tests load eBPF programs")?;
            vm::run_all(&root, kernel.as_deref(), run.as_deref())
        }
        Task::Test { host_only, args } => run_tests(&root, host_only, &args),
    }
}

/// `cargo xtask run`: the release daemon, `watch` unless told otherwise.
fn run_portwatch(root: &Path, args: Vec<String>) -> Result<()> {
    setup::ensure()?;
    cargo(root, &["build", "--release", "--package", "portwatch"])?;
    let args = if args.is_empty() {
        vec!["watch".to_owned()]
    } else {
        args
    };
    let bin = root.join("target/release/portwatch");
    eprintln!("xtask: running {} {}", bin.display(), args.join(" "));
    // The daemon handles SIGINT itself; xtask waits and passes its exit status on.
    let status = Command::new(&bin)
        .args(&args)
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    if !status.success() {
        bail!("portwatch exited with {status}");
    }
    Ok(())
}

/// `cargo xtask bench`: the enrichment micro-benchmark, the paired rounds, then memory.
fn run_bench(root: &Path, options: &bench::Options) -> Result<()> {
    setup::ensure()?;
    setup::require_root("the benchmark loads eBPF programs")?;
    if options.only.is_none_or(|o| "enrich".contains(o)) {
        cargo(
            root,
            &["bench", "--package", "portwatch", "--bench", "enrich"],
        )?;
    }
    cargo(root, &["build", "--release", "--package", "portwatch"])?;
    bench::run(root, options)?;
    memory::run(root, options.only)
}

/// `cargo xtask test`: unit and kernel tests on this kernel, the deployment check, the run
/// without privileges, then the guests (unless `host_only`).
fn run_tests(root: &Path, host_only: bool, args: &[String]) -> Result<()> {
    setup::ensure()?;
    setup::require_root("the integration tests load eBPF programs")?;
    schemas::ensure(root)?;
    // The real receivers the sink tests write to.
    setup::apt_install(TEST_PACKAGES)?;
    let mut test = vec!["test", "--workspace", "--exclude", "portwatch-ebpf"];
    test.extend(args.iter().map(String::as_str));
    cargo(root, &test)?;
    // The binary the kernel tests just ran, in the unit that `verify` checks.
    deploy::check(root, &root.join("target/debug/portwatch"))?;
    if args.is_empty() {
        capabilities_run(root)?;
    }
    if host_only {
        return Ok(());
    }
    vm::run_all(root, None, None)
}

/// Debian packages the tests run: logrotate rotates a file sink's files, rsyslog receives the
/// syslog sinks' records; systemd-analyze and yamllint check the deployment files; python3,
/// zsh, netcat and socat are the detections' real triggers; nftables and iptables make the
/// reachability tests' rules; podman (with runc and netavark, as measured), docker.io (its
/// containerd and `ctr` come with it) and busybox-static (the image's one program) are the
/// container tests' runtimes.
const TEST_PACKAGES: &[&str] = &[
    "logrotate",
    "rsyslog",
    "systemd",
    "yamllint",
    "python3",
    "zsh",
    "netcat-openbsd",
    "socat",
    "nftables",
    "iptables",
    "podman",
    "runc",
    "netavark",
    "docker.io",
    "busybox-static",
    // The detections' corpus (tests/kernel/corpus.rs): the tools an intruder uses, and
    // everyday services that must stay quiet.
    "gawk",
    "tcl",
    "nodejs",
    "openssl",
    "openssh-server",
    "nginx-light",
    "redis-server",
    "dnsmasq-base",
    "postgresql",
    "chrony",
    "ruby",
    "php-cli",
    // A FUSE server that stops answering (tests/kernel/fuse.rs).
    "python3-fusepy",
];

/// The capabilities the README documents as enough for everything, and the core cases run with
/// the daemon as uid 65534 holding only those.
pub const DOCUMENTED_CAPS: &str =
    "+bpf,+perfmon,+dac_read_search,+sys_ptrace,+sys_admin,+net_admin";

fn capabilities_run(root: &Path) -> Result<()> {
    eprintln!("xtask: the core cases again, the daemon as uid 65534 with {DOCUMENTED_CAPS} only");
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo_bin)
        .args(["test", "--package", "portwatch", "--test", "kernel", "--"])
        .args([
            "events::",
            "lifecycle::",
            "process::",
            "uring::",
            "reachability::",
            // The state files that name containers are readable with these capabilities.
            "containers::podman_containers_listener",
            "containers::docker_containers_listener",
        ])
        .env("PORTWATCH_TEST_CAPS", DOCUMENTED_CAPS)
        .current_dir(root)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("the core cases failed with the documented capabilities ({status})");
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
