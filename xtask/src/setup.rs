//! Toolchain set-up for the kernel programs, idempotent and saying what it does.
//!
//! Two toolchains can build them (portwatch/build.rs picks one):
//! - the usual aya set-up: rustup nightly with `rust-src`, plus bpf-linker. Used as found.
//! - Debian's: `rustc-web` with `libstd-rust-web-dev-bpf` (a prebuilt `core` for the BPF target,
//!   so no `-Z build-std`), linked into rustup as `portwatch-bpf`, plus bpf-linker built against
//!   Debian's LLVM 22. Installed here when neither is present, on Debian/Ubuntu as root.
use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

pub const TOOLCHAIN: &str = "portwatch-bpf";
const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub fn ensure() -> Result<()> {
    mount_tracefs();
    if debian_toolchain_ready() && bpf_linker_matches() {
        return Ok(());
    }
    if !debian_toolchain_ready() && nightly_with_rust_src() && bpf_linker().is_some() {
        eprintln!("xtask: using rustup nightly with rust-src and bpf-linker");
        return Ok(());
    }
    install_debian_toolchain()
}

pub fn require_root(why: &str) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("{why}: run as root (e.g. `sudo -E cargo xtask ...`)");
    }
    Ok(())
}

fn install_debian_toolchain() -> Result<()> {
    require_root("installing the eBPF toolchain (Debian packages)")?;
    if !Path::new("/usr/bin/apt-get").exists() {
        bail!(
            "no eBPF toolchain and no apt-get: install rustup nightly with rust-src \
             (`rustup toolchain install nightly --component rust-src`) and \
             `cargo install bpf-linker`"
        );
    }
    apt_install(DEBIAN_PACKAGES)?;
    if !bpf_linker_matches() {
        eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} built against LLVM 22");
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(Command::new(cargo)
            .args([
                "install",
                "--locked",
                "--force",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
            // Without it, llvm-sys finds an older llvm-config first and fails to link.
            .env("LLVM_PREFIX", LLVM_PREFIX))?;
    }
    if !debian_toolchain_ready() {
        eprintln!("xtask: linking Debian's Rust (/usr) into rustup as `{TOOLCHAIN}`");
        run(Command::new("rustup").args(["toolchain", "link", TOOLCHAIN, "/usr"]))?;
    }
    if !debian_toolchain_ready() {
        bail!("the `{TOOLCHAIN}` toolchain still has no BPF core library after set-up");
    }
    Ok(())
}

/// Installs the Debian packages of `packages` that are missing (as root), saying which.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        require_root("installing Debian packages")?;
        eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        // Services are installed, not started: the tests run their own (sshd, nginx, redis).
        let policy = Path::new("/usr/sbin/policy-rc.d");
        let deny = !policy.exists();
        if deny {
            std::fs::write(policy, "#!/bin/sh\nexit 101\n")?;
            std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        let installed = run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"));
        if deny {
            let _ = std::fs::remove_file(policy);
        }
        installed?;
    }
    Ok(())
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", cmd.get_program());
    }
    Ok(())
}

pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn dpkg_installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|s| s.ends_with("installed") && !s.contains("not-installed"))
}

fn sysroot(toolchain: &str) -> Option<PathBuf> {
    output(Command::new("rustup").args(["run", toolchain, "rustc", "--print", "sysroot"]))
        .map(PathBuf::from)
}

fn debian_toolchain_ready() -> bool {
    sysroot(TOOLCHAIN).is_some_and(|s| s.join("lib/rustlib/bpfel-unknown-none").is_dir())
}

fn nightly_with_rust_src() -> bool {
    sysroot("nightly").is_some_and(|s| s.join("lib/rustlib/src/rust/library/core").is_dir())
}

fn bpf_linker() -> Option<String> {
    output(Command::new("bpf-linker").arg("--version")).or_else(|| {
        let home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
        output(Command::new(home.join("bin/bpf-linker")).arg("--version"))
    })
}

fn bpf_linker_matches() -> bool {
    bpf_linker().is_some_and(|v| v.contains(BPF_LINKER_VERSION))
}

/// The tracepoint hooks need tracefs; as root, mount it when it is not (a fresh VM often
/// has it unmounted). portwatch itself only reports the problem.
fn mount_tracefs() {
    let path = Path::new("/sys/kernel/tracing");
    if path.join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    eprintln!("xtask: mounting tracefs on {}", path.display());
    if let Err(e) = run(Command::new("mount")
        .args(["-t", "tracefs", "tracefs"])
        .arg(path))
    {
        eprintln!("xtask: warning: could not mount tracefs: {e:#}");
    }
}
