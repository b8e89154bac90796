//! `cargo xtask vm-test`: the real-kernel tests inside qemu, on the stock Debian kernels users run
//! (6.1 from bookworm, 6.12 from bookworm-backports), where fentry and kprobes are allowed.
//!
//! Kernels come from Debian's archive once (a private apt configuration under the cache directory,
//! leaving the system's alone) and are cached. Each guest boots under TCG (never KVM: stock
//! kernels hang under this machine's PVM `/dev/kvm`) straight into an initramfs holding busybox,
//! the test binary, portwatch, the C helpers and the libraries they link, all at their host
//! paths. The guest's `/init` runs the tests with the kernel's best attach types, then with
//! kprobes forced, then with tracepoints forced, prints the result on the serial console and
//! ends qemu through the `isa-debug-exit` device. A run is judged by that printed result and qemu's exit status; the
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

/// Tests run in the guest: every event kind, the process context, listener life cycles, the
/// filters and the attach types. The others need host tools (ss, script, unshare, a compiler).
const GUEST_TESTS: &[&str] = &["events::", "process::", "lifecycle::", "attach_type"];

/// The runs in each guest: `--attach` for every daemon (hook=TYPE,...; empty: the kernel's best)
/// and the attach types the tests then expect. The last forces the tracepoints that locked-down
/// kernels fall back to, so that path is proven on these kernels too (close's classic
/// tracepoint has a test of its own).
const RUNS: &[(&str, &str)] = &[
    (
        "",
        "bind=fentry,listen=fentry,accept=fentry,close=tp_btf,exec=tracepoint,exit=tracepoint",
    ),
    (
        "bind=kprobe,listen=kprobe,accept=kprobe",
        "bind=kprobe,listen=kprobe,accept=kprobe,close=tp_btf,exec=tracepoint,exit=tracepoint",
    ),
    (
        "bind=tracepoint,listen=tracepoint,accept=tracepoint",
        "bind=tracepoint,listen=tracepoint,accept=tracepoint,close=tp_btf,exec=tracepoint,exit=tracepoint",
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
    let mut failed = Vec::new();
    for kernel in KERNELS.iter().filter(|k| only.is_none_or(|o| o == k.name)) {
        let image = fetch_kernel(kernel, &cache)?;
        let initramfs = initramfs_for(kernel, &image, &payload, &cache)?;
        let started = Instant::now();
        match boot(kernel, &image, &initramfs, &cache, command.is_some()) {
            Ok(()) => eprintln!(
                "xtask: vm-test: Linux {} ({}): passed in {:.0} s",
                kernel.name,
                image.file_name().unwrap_or_default().to_string_lossy(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("xtask: vm-test: Linux {}: FAILED: {e:#}", kernel.name);
                failed.push(kernel.name);
            }
        }
    }
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

/// apt with its own sources, lists and cache under `dir`: the system's configuration stays as is.
fn private_apt(dir: &Path) -> Result<Vec<String>> {
    let sources = dir.join("sources.list.d");
    fs::create_dir_all(&sources)?;
    fs::create_dir_all(dir.join("lists/partial"))?;
    fs::create_dir_all(dir.join("cache/archives/partial"))?;
    fs::write(
        sources.join("debian.list"),
        KERNELS
            .iter()
            .map(|k| format!("deb http://deb.debian.org/debian {} main\n", k.suite))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<String>(),
    )?;
    let d = dir.display();
    Ok(vec![
        "-o".into(),
        "Dir::Etc::SourceList=/dev/null".into(),
        "-o".into(),
        format!("Dir::Etc::SourceParts={d}/sources.list.d"),
        "-o".into(),
        format!("Dir::State::Lists={d}/lists"),
        "-o".into(),
        format!("Dir::Cache={d}/cache"),
        "-o".into(),
        "APT::Architecture=amd64".into(),
        // Its files are root's (the `_apt` sandbox user could not write them).
        "-o".into(),
        "APT::Sandbox::User=root".into(),
    ])
}

/// Modules the guest loads: Debian builds socket diagnostics (sock_diag for TCP and UDP, which
/// portwatch's start-up snapshot uses) as modules, which a host loads on demand.
const MODULES: &[&str] = &["inet_diag", "tcp_diag", "udp_diag"];

/// The kernel's bzImage and the modules in `MODULES`, downloaded and unpacked once.
fn fetch_kernel(kernel: &Kernel, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("linux-{}", kernel.name));
    if let Some(found) = find_vmlinuz(&dir).filter(|_| dir.join("modules/done").exists()) {
        return Ok(found);
    }
    eprintln!(
        "xtask: vm-test: downloading Debian's Linux {} ({})",
        kernel.name, kernel.suite
    );
    let apt_dir = cache.join("apt");
    let opts = private_apt(&apt_dir)?;
    run(Command::new("apt-get").args(&opts).args(["update", "-q"]))?;
    let names = output(
        Command::new("apt-cache")
            .args(&opts)
            .args(["pkgnames", "linux-image-"]),
    )
    .unwrap_or_default();
    let package = names
        .lines()
        .filter_map(|n| n.strip_prefix("linux-image-"))
        // The generic flavour, not -rt- (PREEMPT_RT) or -cloud-.
        .filter(|n| n.starts_with(kernel.prefix) && n.ends_with("-amd64-unsigned"))
        .filter(|n| !n.contains("-rt-") && !n.contains("-cloud-"))
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .map(|n| format!("linux-image-{n}"))
        .with_context(|| format!("no linux-image-{}*-amd64-unsigned package", kernel.prefix))?;
    let download = cache.join("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)?;
    run(Command::new("apt-get")
        .args(&opts)
        .args(["download", "-q", &package])
        .current_dir(&download))?;
    let deb = fs::read_dir(&download)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let unpacked = download.join("unpacked");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let image = find_vmlinuz(&unpacked.join("boot")).context("the package has no vmlinuz")?;
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("modules"))?;
    let target = dir.join(image.file_name().context("vmlinuz name")?);
    fs::copy(&image, &target)?;
    for module in MODULES {
        let found = find_file(&unpacked.join("lib/modules"), &|name| {
            name == format!("{module}.ko") || name.starts_with(&format!("{module}.ko."))
        })
        .with_context(|| format!("the package has no {module} module"))?;
        let out = dir.join(format!("modules/{module}.ko"));
        // busybox insmod takes uncompressed modules only.
        let name = found.to_string_lossy();
        if name.ends_with(".xz") || name.ends_with(".zst") {
            let tool = if name.ends_with(".xz") { "xz" } else { "zstd" };
            let data = Command::new(tool)
                .args(["-d", "-c"])
                .arg(&found)
                .output()
                .with_context(|| format!("starting {tool}"))?;
            if !data.status.success() {
                bail!("{tool} could not decompress {name}");
            }
            fs::write(&out, data.stdout)?;
        } else {
            fs::copy(&found, &out)?;
        }
    }
    fs::write(dir.join("modules/done"), "")?;
    fs::remove_dir_all(&download)?;
    Ok(target)
}

/// The first file under `dir` (recursively) whose name `wanted` accepts.
fn find_file(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, wanted) {
                return Some(found);
            }
        } else if wanted(&entry.file_name().to_string_lossy()) {
            return Some(path);
        }
    }
    None
}

/// The initramfs for `kernel`: the shared payload and, appended as a second archive (the
/// kernel unpacks them in turn), that kernel's modules.
fn initramfs_for(kernel: &Kernel, image: &Path, payload: &Path, cache: &Path) -> Result<PathBuf> {
    let mut cpio = Cpio::default();
    cpio.dir("modules");
    let dir = image.parent().context("kernel directory")?;
    for module in MODULES {
        let data = fs::read(dir.join(format!("modules/{module}.ko")))?;
        cpio.file(&format!("modules/{module}.ko"), &data, 0o644);
    }
    let mut bytes = fs::read(payload)?;
    bytes.extend(cpio.finish());
    let path = cache.join(format!("initramfs-{}.cpio", kernel.name));
    fs::write(&path, bytes)?;
    Ok(path)
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// Orders `6.1.0-41-amd64-unsigned` after `6.1.0-9-...`: numbers compare as numbers.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

// --- the guest's files --------------------------------------------------------------------------

/// Builds what the guest runs and packs it as an initramfs (cpio, newc).
fn build_payload(root: &Path, cache: &Path, command: &str) -> Result<PathBuf> {
    let tests = test_binary(root)?;
    let portwatch = root.join("target/debug/portwatch");
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "proc", "sys", "tmp", "etc", "helpers", "root"] {
        cpio.dir(dir);
    }
    cpio.file("bin/busybox", &fs::read("/bin/busybox")?, 0o755);
    cpio.file("init", INIT.as_bytes(), 0o755);
    cpio.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    cpio.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644);
    cpio.file(
        "etc/portwatch-vm.env",
        format!(
            "TESTS='{}'\nFILTERS='{}'\nRUNS='{}'\nCOMMAND='{}'\n",
            tests.display(),
            GUEST_TESTS.join(" "),
            RUNS.iter()
                .map(|(attach, expect)| format!("{attach}:{expect}"))
                .collect::<Vec<_>>()
                .join(" "),
            command.replace('\'', "'\\''"),
        )
        .as_bytes(),
        0o644,
    );
    // The test binary finds portwatch and the schema at their build-time paths.
    let schema = root.join("schema/portwatch.schema.json");
    let helpers = build_helpers(root, cache)?;
    let mut libraries = BTreeSet::new();
    for binary in [&tests, &portwatch]
        .into_iter()
        .chain(helpers.iter().map(|(_, p)| p))
    {
        libraries.extend(linked_libraries(binary)?);
    }
    for binary in [&tests, &portwatch] {
        cpio.host_file(&stripped(binary, cache)?, binary, 0o755)?;
    }
    cpio.host_file(&schema, &schema, 0o644)?;
    cpio.dir_for(&root.join("portwatch/src"));
    for (name, path) in &helpers {
        cpio.file(&format!("helpers/{name}"), &fs::read(path)?, 0o755);
    }
    for lib in &libraries {
        // Libraries under their link paths (ld.so finds them there), whatever symlinks lead.
        cpio.host_file(&fs::canonicalize(lib)?, lib, 0o755)?;
    }
    let path = cache.join("payload.cpio");
    fs::write(&path, cpio.finish())?;
    Ok(path)
}

/// Builds the kernel test binary (debug, like `cargo xtask test`) and returns its path.
fn test_binary(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "test",
            "--package",
            "portwatch",
            "--test",
            "kernel",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("starting cargo")?;
    if !out.status.success() {
        bail!("building the tests failed");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"executable\":\"") && l.contains("\"name\":\"kernel\""))
        .filter_map(|l| {
            let rest = l.split("\"executable\":\"").nth(1)?;
            Some(PathBuf::from(rest.split('"').next()?))
        })
        .next_back()
        .context("cargo named no test executable")
}

/// tests/helpers/*.c, compiled for the guest (it has no compiler). The harness takes them from
/// `PORTWATCH_TEST_HELPERS` under the names it would give them.
fn build_helpers(root: &Path, cache: &Path) -> Result<Vec<(String, PathBuf)>> {
    let out = cache.join("helpers");
    fs::create_dir_all(&out)?;
    let mut built = Vec::new();
    for entry in fs::read_dir(root.join("tests/helpers"))? {
        let src = entry?.path();
        if src.extension().is_none_or(|e| e != "c") {
            continue;
        }
        let stem = src.file_stem().context("helper name")?.to_string_lossy();
        let name = format!("pw-{}", stem.replace('_', "-"));
        let bin = out.join(&name);
        run(Command::new("cc").args(["-O2", "-o"]).arg(&bin).arg(&src))?;
        built.push((name, bin));
    }
    Ok(built)
}

/// The shared libraries `binary` loads, with the dynamic loader, as `ldd` resolves them.
fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let text = output(Command::new("ldd").arg(binary))
        .with_context(|| format!("ldd {}", binary.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// A copy of `binary` without debug information: the guest keeps its initramfs in memory.
fn stripped(binary: &Path, cache: &Path) -> Result<PathBuf> {
    let out = cache.join(format!(
        "stripped-{}",
        binary.file_name().context("binary name")?.to_string_lossy()
    ));
    run(Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(binary))?;
    Ok(out)
}

/// The guest's init: mounts what portwatch needs, runs the tests once per entry of `RUNS`, prints
/// the result and powers off through isa-debug-exit. The root file system is the unpacked
/// initramfs, in memory and writable; nothing is mounted over /tmp, where a checkout may live.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
for m in /modules/*.ko; do insmod "$m"; done
. /etc/portwatch-vm.env
cd /tmp
echo "portwatch-vm: Linux $(uname -r)"
rc=0
if [ -n "$COMMAND" ]; then
    sh -c "$COMMAND"
    rc=$?
else
    for r in $RUNS; do
        echo "portwatch-vm: running the tests, attach types expected: ${r#*:}"
        PORTWATCH_TEST_ATTACH="${r%%:*}" PORTWATCH_EXPECT_ATTACH="${r#*:}" \
            PORTWATCH_TEST_HELPERS=/helpers "$TESTS" --test-threads=2 $FILTERS || { rc=$?; break; }
    done
fi
echo "portwatch-vm: result $rc"
printf "\\$(printf %o $((rc & 127)))" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
"#;

// --- booting ------------------------------------------------------------------------------------

/// `show_all`: echo the whole serial console, not just the results.
fn boot(
    kernel: &Kernel,
    image: &Path,
    initramfs: &Path,
    cache: &Path,
    show_all: bool,
) -> Result<()> {
    let log_path = cache.join(format!("serial-{}.log", kernel.name));
    eprintln!(
        "xtask: vm-test: booting Linux {} under qemu (TCG); serial log: {}",
        kernel.name,
        log_path.display()
    );
    let mut child = Command::new("qemu-system-x86_64")
        // Two vCPUs, so per-CPU code runs for real, but on one host thread: with multi-threaded
        // TCG a vCPU can still run code another one has just patched (jump labels), which
        // panicked 6.12 at boot with "Oops: int3" in one CI run out of several.
        .args([
            "-accel",
            "tcg,thread=single",
            "-cpu",
            "max",
            "-m",
            "2048",
            "-smp",
            "2",
        ])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut serial = BufReader::new(child.stdout.take().context("qemu stdout")?);
    let mut log = fs::File::create(&log_path)?;
    let deadline = Instant::now() + BOOT_LIMIT;
    let watchdog = {
        let pid = child.id();
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_secs(1));
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    return;
                }
            }
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        })
    };
    let mut result = None;
    let mut line = Vec::new();
    while serial.read_until(b'\n', &mut line)? > 0 {
        log.write_all(&line)?;
        let text = String::from_utf8_lossy(&line);
        if let Some(rc) = text.trim().strip_prefix("portwatch-vm: result ") {
            result = rc.trim().parse::<i32>().ok();
        }
        if show_all || text.starts_with("portwatch-vm:") || text.starts_with("test result") {
            eprint!("  [{}] {text}", kernel.name);
        }
        line.clear();
    }
    let status = child.wait()?;
    let _ = watchdog.join();
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut qemu_err);
    }
    let passed = result == Some(0) && status.code() == Some(debug_exit_status(0));
    if !passed {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(120).collect();
        eprintln!(
            "---- serial log of Linux {} (last 120 lines) ----",
            kernel.name
        );
        for l in tail.into_iter().rev() {
            eprintln!("{l}");
        }
        eprintln!("---- end of serial log; qemu: {status} {qemu_err}");
        if Instant::now() >= deadline {
            bail!("the guest did not finish within {BOOT_LIMIT:?}");
        }
        match result {
            Some(rc) => bail!("the tests exited with {rc}"),
            None => bail!("the guest ended without a result (qemu {status})"),
        }
    }
    Ok(())
}

// --- initramfs ----------------------------------------------------------------------------------

/// A cpio archive in the "newc" format the kernel unpacks as its initramfs.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len(),
            0,
            0, // dev major, minor
            0,
            0, // rdev major, minor
            name.len() + 1,
            0, // checksum
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        if self.dirs.insert(name.to_owned()) {
            self.entry(name, 0o040_755, &[]);
        }
    }

    /// Every directory leading to `path` (absolute, on the host).
    fn dir_for(&mut self, path: &Path) {
        let mut at = String::new();
        for part in path.iter().skip(1) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(&part.to_string_lossy());
            self.dir(&at.clone());
        }
    }

    fn file(&mut self, name: &str, data: &[u8], mode: u32) {
        self.entry(name, 0o100_000 | mode, data);
    }

    /// The host file `from` at the guest path `at` (absolute).
    fn host_file(&mut self, from: &Path, at: &Path, mode: u32) -> Result<()> {
        if let Some(parent) = at.parent() {
            self.dir_for(parent);
        }
        let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        let name = at.to_string_lossy();
        self.file(name.trim_start_matches('/'), &data, mode);
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_kernel_packages_sort_last() {
        let mut names = ["6.1.0-9-amd64-unsigned", "6.1.0-41-amd64-unsigned"];
        names.sort_by_key(|n| version_key(n));
        assert_eq!(names[1], "6.1.0-41-amd64-unsigned");
    }

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("bin/x", b"abc", 0o755);
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
