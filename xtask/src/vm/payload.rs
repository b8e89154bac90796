//! The guest's payload: busybox, the test binary, portwatch, the C helpers and their libraries,
//! and the `/init` that runs the tests.
use super::*;

/// Builds what the guest runs and packs it as an initramfs (cpio, newc).
pub(super) fn build_payload(root: &Path, cache: &Path, command: &str) -> Result<PathBuf> {
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
pub(super) fn test_binary(root: &Path) -> Result<PathBuf> {
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
pub(super) fn build_helpers(root: &Path, cache: &Path) -> Result<Vec<(String, PathBuf)>> {
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
pub(super) fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
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
pub(super) fn stripped(binary: &Path, cache: &Path) -> Result<PathBuf> {
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
pub(super) const INIT: &str = r#"#!/bin/busybox sh
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
