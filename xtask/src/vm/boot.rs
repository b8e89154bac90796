//! Booting a guest under qemu (TCG) and judging its result.
use super::*;

/// `show_all`: echo the whole serial console, not just the results.
pub(super) fn boot(
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
    let mut child = qemu(image, initramfs)?;
    let mut serial = BufReader::new(child.stdout.take().context("qemu stdout")?);
    let mut log = fs::File::create(&log_path)?;
    let deadline = Instant::now() + BOOT_LIMIT;
    let watchdog = watchdog(child.id(), deadline);
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
        show_serial_tail(kernel, &log_path, &format!("{status} {qemu_err}"));
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

/// qemu booting `image` with `initramfs`, its serial console on stdout.
fn qemu(image: &Path, initramfs: &Path) -> Result<std::process::Child> {
    Command::new("qemu-system-x86_64")
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
        .context("starting qemu-system-x86_64")
}

/// Kills process `pid` if it still runs at `deadline`.
fn watchdog(pid: u32, deadline: Instant) -> std::thread::JoinHandle<()> {
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
}

/// The last 120 lines of a failed guest's serial log on stderr, with how qemu ended.
fn show_serial_tail(kernel: &Kernel, log_path: &Path, qemu_end: &str) {
    let text = fs::read_to_string(log_path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(120).collect();
    // One write, so that the other guest's lines cannot land in the middle of it.
    let mut block = format!(
        "---- serial log of Linux {} (last 120 lines) ----\n",
        kernel.name
    );
    for l in tail.into_iter().rev() {
        block.push_str(l);
        block.push('\n');
    }
    block.push_str(&format!("---- end of serial log; qemu: {qemu_end}\n"));
    let _ = std::io::stderr().lock().write_all(block.as_bytes());
}
