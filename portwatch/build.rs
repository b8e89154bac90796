//! Builds the kernel programs (portwatch-ebpf) for the BPF target and embeds them.
//!
//! Two toolchains can do it (see README "Building"):
//! - `portwatch-bpf`: Debian's rustc-web linked into rustup by `cargo xtask setup`; it ships a
//!   prebuilt `core` for bpfel-unknown-none, so no `-Z build-std` is needed;
//! - `nightly` with the `rust-src` component (the usual aya set-up), which builds `core` itself.
//!
//! `PORTWATCH_BPF_TOOLCHAIN` names another rustup toolchain.
use std::{env, path::Path, process::Command};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

const SETUP_HINT: &str = "run `cargo xtask setup` (installs Debian's rustc-web with the BPF core \
library and bpf-linker), or install rustup nightly with the rust-src component and bpf-linker";

fn sysroot(toolchain: &str) -> Option<String> {
    let out = Command::new("rustup")
        .args(["run", toolchain, "rustc", "--print", "sysroot"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// (toolchain, has a prebuilt BPF `core`)
fn pick_toolchain() -> anyhow::Result<(String, bool)> {
    println!("cargo:rerun-if-env-changed=PORTWATCH_BPF_TOOLCHAIN");
    let prebuilt = |root: &str| {
        Path::new(root)
            .join("lib/rustlib/bpfel-unknown-none")
            .is_dir()
    };
    if let Ok(name) = env::var("PORTWATCH_BPF_TOOLCHAIN") {
        let root = sysroot(&name).ok_or_else(|| {
            anyhow!("rustup toolchain `{name}` (PORTWATCH_BPF_TOOLCHAIN) does not run")
        })?;
        return Ok((name, prebuilt(&root)));
    }
    if sysroot("portwatch-bpf").is_some_and(|root| prebuilt(&root)) {
        return Ok(("portwatch-bpf".into(), true));
    }
    if let Some(root) = sysroot("nightly") {
        if Path::new(&root)
            .join("lib/rustlib/src/rust/library/core")
            .is_dir()
        {
            return Ok(("nightly".into(), false));
        }
    }
    Err(anyhow!(
        "no toolchain here can build portwatch's eBPF programs: {SETUP_HINT}"
    ))
}

fn main() -> anyhow::Result<()> {
    let (toolchain, prebuilt_core) = pick_toolchain()?;
    if which_bpf_linker().is_none() {
        return Err(anyhow!("bpf-linker is not installed: {SETUP_HINT}"));
    }
    if prebuilt_core {
        // A stable rustc with a prebuilt core: unlock only aya-ebpf's nightly features. "1" would
        // make aya-build ask for -Z build-std, which needs rust-src.
        // SAFETY: build scripts are single-threaded.
        unsafe { env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf") };
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../portwatch-ebpf");
    let root = root.to_str().context("non-UTF-8 path to portwatch-ebpf")?;
    aya_build::build_ebpf(
        [Package {
            name: "portwatch-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
}

fn which_bpf_linker() -> Option<()> {
    let path = env::var_os("PATH")?;
    let mut dirs: Vec<_> = env::split_paths(&path).collect();
    if let Some(home) = env::var_os("CARGO_HOME")
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into()))
    {
        dirs.push(Path::new(&home).join("bin"));
    }
    dirs.iter()
        .any(|d| d.join("bpf-linker").is_file())
        .then_some(())
}
