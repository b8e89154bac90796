//! Start-up failures and missing privileges: one clear line and a non-zero exit for every
//! failure, or a warning that says what is lost, and one-line usage errors.
use std::{
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::Instant,
};

use serde_json::Value;

use crate::harness::{BIN, UnprivilegedCopy, ours, require_root, run_to_exit};

/// Asserts a start-up failure: exit code 1, one stderr line naming the cause.
fn assert_fails(cmd: &mut Command, cause: &str) {
    let (code, out, err) = run_to_exit(cmd);
    assert_eq!(code, 1, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("portwatch: error: "), "{err}");
    assert!(err.contains(cause), "expected `{cause}` in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing on stdout: {out}");
}

/// CAP_BPF and CAP_PERFMON without CAP_DAC_READ_SEARCH: tracefs is mounted but root's (mode
/// 0700), and the error says so rather than "tracefs is not mounted".
#[test]
fn bpf_capabilities_without_tracefs_access_are_said_exactly() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let tracefs = std::path::Path::new("/sys/kernel/tracing");
    let mode = std::fs::metadata(tracefs).map(|m| m.permissions().mode() & 0o777);
    if mode.as_ref().map_or(true, |m| m & 0o005 != 0) {
        eprintln!("skipped: tracefs is not root's alone here ({mode:?})");
        return;
    }
    let bin = UnprivilegedCopy::new("caps");
    assert_fails(
        bin.as_nobody_with("+bpf,+perfmon").arg("watch"),
        "tracefs is mounted at /sys/kernel/tracing but this user cannot read it",
    );
}

/// As uid 65534 with CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH only, portwatch runs, and
/// says what it lacks: the start record and stderr name CAP_SYS_PTRACE and CAP_SYS_ADMIN and
/// what each costs, and a root-owned listener's missing owner is blamed on the missing
/// CAP_SYS_PTRACE, not on a kernel-owned socket.
#[test]
fn missing_privileges_are_said_exactly_and_the_owners_they_hide_too() {
    require_root();
    let _shared = crate::harness::shared();
    let (_held, tcp, _) = crate::harness::hold_sockets(&[], None);
    let bin = UnprivilegedCopy::new("fewcaps");
    let mut child = bin
        .as_nobody_with("+bpf,+perfmon,+dac_read_search")
        .arg("watch")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let records = crate::harness::pump(child.stdout.take().unwrap());
    let deadline = Instant::now() + crate::harness::START_TIMEOUT;
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|v: &Value| v["event"] != "snapshot_complete")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match records.recv_timeout(left) {
            Ok(Ok(v)) => seen.push(v),
            other => {
                let _ = child.kill();
                panic!("no snapshot with few capabilities: {other:?}");
            }
        }
    }
    // A live record of a root process that predates portwatch (this test): its executable
    // comes from /proc/PID/exe, which needs CAP_SYS_PTRACE, and its gap says so.
    let marker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = marker.local_addr().unwrap().port();
    let bind = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match records.recv_timeout(left) {
            Ok(Ok(v)) if ours("bind")(&v) && v["port"] == port => break v,
            Ok(Ok(_)) => {}
            other => {
                let _ = child.kill();
                panic!("no bind record with few capabilities: {other:?}");
            }
        }
    };
    let exe_gap = bind["gaps"]["exe"].as_str().unwrap_or_default();
    assert!(exe_gap.contains("portwatch lacks CAP_SYS_PTRACE"), "{bind}");
    // `ls` says it too, and blames the listener's missing owner on it.
    let (code, out, ls_err) = run_to_exit(
        bin.as_nobody_with("+dac_read_search")
            .args(["ls", "--json"]),
    );
    assert_eq!(code, 0, "{ls_err}");
    assert!(
        ls_err.contains("warning: without CAP_SYS_PTRACE"),
        "{ls_err}"
    );
    let listed: Value = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["port"] == tcp && v["protocol"] == "tcp")
        .unwrap_or_else(|| panic!("port {tcp} not in ls: {out}"));
    assert!(
        listed["gaps"]["pid"]
            .as_str()
            .unwrap_or_default()
            .contains("lacks CAP_SYS_PTRACE"),
        "{listed}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let missing: Vec<&str> = seen[0]["missing_privileges"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", seen[0]))
        .iter()
        .map(|m| m["capability"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"], "{}", seen[0]);
    assert!(
        err.contains(
            "warning: without CAP_SYS_PTRACE, the owners of other users' sockets cannot be named"
        ),
        "{err}"
    );
    let listener = seen
        .iter()
        .find(|v| v["event"] == "listener" && v["port"] == tcp && v["protocol"] == "tcp")
        .unwrap_or_else(|| panic!("port {tcp} not in the snapshot"));
    assert!(listener.get("pid").is_none(), "{listener}");
    let gap = listener["gaps"]["pid"].as_str().unwrap_or_default();
    assert!(gap.contains("portwatch lacks CAP_SYS_PTRACE"), "{listener}");
}

#[test]
fn unprivileged_user_gets_a_clear_error() {
    require_root();
    let bin = UnprivilegedCopy::new("nobody");
    assert_fails(
        Command::new(&bin.path).arg("watch").uid(65534).gid(65534),
        "missing privileges",
    );
}

#[test]
fn missing_btf_gets_a_clear_error() {
    require_root();
    assert_fails(
        Command::new(BIN).args(["watch", "--btf", "/nonexistent/vmlinux"]),
        "no kernel BTF at /nonexistent/vmlinux",
    );
    // A wrong path: a device, or a file far larger than any BTF (sparse, read never).
    assert_fails(
        Command::new(BIN).args(["watch", "--btf", "/dev/zero"]),
        "no kernel BTF at /dev/zero: not a file",
    );
    let big = std::env::temp_dir().join(format!("portwatch-bigbtf-{}", std::process::id()));
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    assert_fails(
        Command::new(BIN).arg("watch").arg("--btf").arg(&big),
        "1073741824 bytes, more than any kernel's BTF",
    );
    let _ = std::fs::remove_file(&big);
}

#[test]
fn unmounted_tracefs_gets_a_clear_error() {
    require_root();
    // A private mount namespace without tracefs: the host's mounts are untouched.
    let script = format!(
        "for m in /sys/kernel/tracing /sys/kernel/debug/tracing /sys/kernel/debug; do \
           while mountpoint -q $m; do umount -l $m || exit 90; done; done; exec {BIN} watch"
    );
    assert_fails(
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
        "tracefs is not mounted",
    );
}

/// Every usage error, from the parser or from checking a value against the host, is one line
/// that names the flag and the value, then where to read more, and exit code 2: a value that
/// can never match starts no watch that silently shows nothing.
#[test]
fn bad_flags_are_usage_errors_in_one_line() {
    for (args, says) in [
        (&["watch", "--ring-buffer-size", "1000"][..], "'1000'"),
        (&["watch", "--ring-buffer-size", "-4096"], "'-4096'"),
        (
            &["watch", "--ring-buffer-size", "4294967296"],
            "largest ring",
        ),
        (
            &["watch", "--ring-buffer-size", "2147483648"],
            "largest ring",
        ),
        (&["watch", "--attach", "bind=tp_btf"], "bind=tp_btf"),
        (&["watch", "--attach", "nonsense"], "nonsense"),
        (&["watch", "--no-such-flag"], "--no-such-flag"),
        (&["watch", "--pid", "abc"], "'abc'"),
        (
            &["watch", "--netns", "/etc/passwd"],
            "--netns `/etc/passwd`: not a namespace",
        ),
        (
            &["watch", "--netns", "/proc/self/ns/pid"],
            "a pid namespace, not a network one",
        ),
        (
            &["watch", "--netns", "12345"],
            "no network namespace on this host",
        ),
        (
            &["watch", "--cgroup", "../../etc"],
            "outside the cgroup v2 hierarchy",
        ),
        (&["watch", "--pid", "0"], "--pid `0`: not a process id"),
        (
            &["watch", "--pid", "4194305"],
            "--pid `4194305`: not a process id",
        ),
        (&["watch", "--uid", "4294967295"], "(uid_t)-1"),
        (
            &["watch", "--exe", "relative"],
            "--exe `relative`: not an absolute path",
        ),
        (&["frobnicate"], "frobnicate"),
    ] {
        let (code, out, err) = run_to_exit(Command::new(BIN).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("portwatch: error: "), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: `{says}` not in {err}");
        let help = if args[0] == "watch" {
            "see `portwatch watch --help`"
        } else {
            "see `portwatch --help`"
        };
        assert!(err.trim_end().ends_with(help), "{args:?}: {err}");
    }
}
