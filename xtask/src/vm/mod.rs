//! `cargo xtask vm-test`: the real-kernel tests inside qemu, on the stock Debian kernels users run
//! (6.1 from bookworm, 6.12 from bookworm-backports), where fentry and kprobes are allowed.
//!
//! Kernels come from Debian's archive once (a private apt configuration under the cache directory,
//! leaving the system's alone) and are cached. Each guest boots under TCG (never KVM: stock
//! kernels hang under this machine's PVM `/dev/kvm`) straight into an initramfs holding busybox,
//! the test binary, portwatch, the C helpers and the libraries they link, all at their host
//! paths. The guest's `/init` runs the tests with the kernel's best attach types, then with
//! kprobes forced, then with tracepoints forced, prints the result on the serial console and
//! ends qemu through the `isa-debug-exit` device. The guests boot side by side. A run is judged by that printed result and qemu's exit status; the
//! serial log is shown when it fails, and each boot is bounded in time.
use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::setup::{self, output, run};

mod boot;
mod cpio;
mod kernels;
mod payload;

use boot::boot;
use cpio::Cpio;
use kernels::{fetch_kernel, initramfs_for};
use payload::build_payload;

/// A stock kernel to test on.
struct Kernel {
    name: &'static str,
    /// Debian suite that has it.
    suite: &'static str,
    /// Its unsigned image packages are `linux-image-<prefix>...-amd64-unsigned`.
    prefix: &'static str,
}

const KERNELS: &[Kernel] = &[
    Kernel {
        name: "6.1",
        suite: "bookworm",
        prefix: "6.1.0-",
    },
    Kernel {
        name: "6.12",
        suite: "bookworm-backports",
        prefix: "6.12.",
    },
];

/// Tests run in the guest: every event kind, io_uring, the process context, listener life
/// cycles, the filters, the attach types, what stays attached after SIGKILL, and the flood
/// limit with the listing after it. The others need
/// host tools (ss, script, unshare, a compiler).
const GUEST_TESTS: &[&str] = &[
    "events::",
    "uring::",
    "doctor::",
    "process::",
    "lifecycle::",
    "attach_type",
    "after_sigkill",
    "flood::a_process_past_the_flood_limit",
    "image::a_program_deleted",
    "image::an_exec_through",
    "image::arguments_rewritten",
    "image::a_program_replaced",
];

/// The runs in each guest: `--attach` for every daemon (hook=TYPE,...; empty: the kernel's best)
/// and the attach types the tests then expect. The last forces the tracepoints that locked-down
/// kernels fall back to, so that path is proven on these kernels too (close's classic
/// tracepoint has a test of its own).
const RUNS: &[(&str, &str)] = &[
    (
        "",
        "bind=fentry,listen=fentry,accept=fentry,close=tp_btf,udp_close=cgroup,exec=tracepoint,exit=tracepoint,fork=tracepoint",
    ),
    (
        "bind=kprobe,listen=kprobe,accept=kprobe",
        "bind=kprobe,listen=kprobe,accept=kprobe,close=tp_btf,udp_close=cgroup,exec=tracepoint,exit=tracepoint,fork=tracepoint",
    ),
    (
        "bind=tracepoint,listen=tracepoint,accept=tracepoint",
        "bind=tracepoint,listen=tracepoint,accept=tracepoint,close=tp_btf,io_uring=tp_btf,udp_close=cgroup,exec=tracepoint,exit=tracepoint,fork=tracepoint",
    ),
];

/// qemu's exit status when the guest wrote `value` to isa-debug-exit.
const fn debug_exit_status(value: i32) -> i32 {
    (value << 1) | 1
}

/// A boot that takes longer than this has hung.
const BOOT_LIMIT: Duration = Duration::from_secs(30 * 60);

/// `command`: run this shell command in the guests instead of the tests (a debugging aid, e.g.
/// `PORTWATCH_VERIFIER_LOG=1 /path/to/portwatch watch`); its exit status is the result.
pub fn run_all(root: &Path, only: Option<&str>, command: Option<&str>) -> Result<()> {
    setup::apt_install(&[
        "qemu-system-x86",
        "busybox-static",
        "binutils",
        "xz-utils",
        "zstd",
    ])?;
    let cache = cache_dir()?;
    let payload = build_payload(root, &cache, command.unwrap_or_default())?;
    // Fetched one after the other (one apt cache), then booted side by side: each guest runs on
    // one host thread (see boot), so on two cores both finish in the time of the slower.
    let mut guests = Vec::new();
    for kernel in KERNELS.iter().filter(|k| only.is_none_or(|o| o == k.name)) {
        let image = fetch_kernel(kernel, &cache)?;
        let initramfs = initramfs_for(kernel, &image, &payload, &cache)?;
        guests.push((kernel, image, initramfs));
    }
    let failed: Vec<&str> = std::thread::scope(|scope| {
        let runs: Vec<_> = guests
            .iter()
            .map(|(kernel, image, initramfs)| {
                let cache = &cache;
                scope.spawn(move || {
                    let started = Instant::now();
                    let result = boot(kernel, image, initramfs, cache, command.is_some());
                    match &result {
                        Ok(()) => eprintln!(
                            "xtask: vm-test: Linux {} ({}): passed in {:.0} s",
                            kernel.name,
                            image.file_name().unwrap_or_default().to_string_lossy(),
                            started.elapsed().as_secs_f64()
                        ),
                        Err(e) => eprintln!("xtask: vm-test: Linux {}: FAILED: {e:#}", kernel.name),
                    }
                    result.is_ok()
                })
            })
            .collect();
        runs.into_iter()
            .zip(&guests)
            .filter_map(|(run, (kernel, ..))| (!run.join().unwrap_or(false)).then_some(kernel.name))
            .collect()
    });
    if !failed.is_empty() {
        bail!("the tests failed on Linux {}", failed.join(", "));
    }
    Ok(())
}

fn cache_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    let dir = base.join("portwatch/vm");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

// --- kernels ------------------------------------------------------------------------------------
