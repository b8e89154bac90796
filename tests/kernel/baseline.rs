//! Baselines: `portwatch baseline` writes an allowlist; `watch --baseline` alerts on listeners it
//! does not allow and stays quiet for those it does.
use std::{net::TcpListener, process::Command};

use crate::harness::{BIN, Daemon, ours, proc_self, require_root, run_to_exit, write_baseline};

fn port_of(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

#[test]
fn new_listener_outside_the_baseline_alerts_and_an_approved_one_does_not() {
    require_root();
    let approved = TcpListener::bind("127.0.0.1:0").unwrap();
    let approved_port = port_of(&approved);
    let (code, text, err) = run_to_exit(Command::new(BIN).arg("baseline"));
    assert_eq!(code, 0, "{err}");
    let exe = proc_self().exe;
    let rule = text
        .lines()
        .find(|l| {
            l.split_whitespace()
                .take(2)
                .eq(["tcp", &approved_port.to_string()])
        })
        .unwrap_or_else(|| panic!("no rule for port {approved_port}:\n{text}"));
    assert_eq!(
        rule.split_whitespace().collect::<Vec<_>>(),
        ["tcp", &approved_port.to_string(), "loopback", "root", &exe],
        "{rule}"
    );
    let dir = std::env::temp_dir().join(format!("portwatch-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("baseline.txt");
    write_baseline(&file, text.as_bytes());

    let mut d = Daemon::start(&["--baseline", file.to_str().unwrap()]);
    let snap = d.expect("approved listener in the snapshot", |v| {
        v["event"] == "listener" && v["port"] == approved_port
    });
    assert!(snap.get("alert").is_none(), "{snap}");

    let intruder = TcpListener::bind("127.0.0.1:0").unwrap();
    let intruder_port = port_of(&intruder);
    let alerted = d.expect("listen", |v| {
        ours("listen")(v) && v["port"] == intruder_port
    });
    let alert = alerted["alert"]
        .as_str()
        .unwrap_or_else(|| panic!("no alert: {alerted}"));
    assert_eq!(
        alert,
        format!(
            "not in baseline {}: no rule allows tcp {intruder_port} loopback root {exe}",
            file.display()
        )
    );

    // The approved listener closes and comes back: still approved.
    drop(approved);
    let again = TcpListener::bind(("127.0.0.1", approved_port)).unwrap();
    let reopened = d.expect("re-opened listen", |v| {
        ours("listen")(v) && v["port"] == approved_port
    });
    assert!(reopened.get("alert").is_none(), "{reopened}");
    drop((again, intruder));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_baselines_are_refused_naming_the_line() {
    require_root();
    let dir = std::env::temp_dir().join(format!("portwatch-badbase-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (text, problem) in [
        (
            &b"tcp 22 all root /usr/sbin/sshd\ntcp 22 everywhere root /x\n"[..],
            "line 2: unknown scope `everywhere`",
        ),
        (
            b"# ok\n\nudp 99999 * * *\n",
            "line 3: `99999` is not a port number",
        ),
        (b"tcp 22 all root\n", "line 1: expected 5 fields"),
        (b"tcp 22 all root /x\n\xff\n", "line 2: not UTF-8"),
    ] {
        let file = dir.join("bad.txt");
        write_baseline(&file, text);
        let (code, out, err) =
            run_to_exit(Command::new(BIN).args(["watch", "--baseline", file.to_str().unwrap()]));
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("baseline {}", file.display())),
            "{err}"
        );
        assert!(err.contains(problem), "expected `{problem}` in {err}");
    }
    let (code, _, err) =
        run_to_exit(Command::new(BIN).args(["watch", "--baseline", "/nonexistent/base"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read baseline /nonexistent/base"),
        "{err}"
    );
    // Files that cannot be baselines: refused at once, in one line, before anything is attached
    // (a device would be read for ever, a FIFO waited on; a file others can write lets them
    // silence every alert).
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let loose = dir.join("loose.txt");
    write_baseline(&loose, b"* * * * *\n");
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    for (file, problem) in [
        (std::path::Path::new("/dev/zero"), "not a regular file"),
        (&fifo, "not a regular file"),
        (&loose, "writable by its group or by everyone (mode 0666)"),
    ] {
        let (code, out, err) =
            run_to_exit(Command::new(BIN).args(["watch", "--baseline", file.to_str().unwrap()]));
        assert_eq!((code, out.as_str()), (1, ""), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("baseline {}: {problem}", file.display())),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new TCP listener on loopback, and its `listen` record.
fn new_listener(d: &mut Daemon) -> (TcpListener, serde_json::Value) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = port_of(&l);
    let record = d.expect("listen", |v| ours("listen")(v) && v["port"] == port);
    (l, record)
}

#[test]
fn sighup_reloads_the_baseline_and_a_refused_one_leaves_the_old_in_place() {
    require_root();
    let dir = std::env::temp_dir().join(format!("portwatch-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("baseline.txt");
    let allows_nothing_here = b"tcp 1 all root /nonexistent\n";
    write_baseline(&file, allows_nothing_here);
    let mut d = Daemon::start(&["--baseline", file.to_str().unwrap()]);
    let (_a, before) = new_listener(&mut d);
    assert!(before["alert"].is_string(), "{before}");

    write_baseline(&file, b"tcp * loopback * *\n");
    d.signal(libc::SIGHUP);
    d.expect_stderr("reloaded (1 rules)");
    let (_b, after) = new_listener(&mut d);
    assert!(after.get("alert").is_none(), "{after}");

    // Refused (writable by everyone): the baseline in use stays.
    write_baseline(&file, allows_nothing_here);
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    d.signal(libc::SIGHUP);
    let warning = d.expect_stderr("keeping the baseline in use");
    assert!(warning.contains("(mode 0666)"), "{warning}");
    let (_c, still) = new_listener(&mut d);
    assert!(still.get("alert").is_none(), "{still}");

    // And it kept running: SIGTERM still ends it with its totals.
    let (status, records, _) = d.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0));
    assert_eq!(records.last().unwrap()["event"], "stop");
    let _ = std::fs::remove_dir_all(&dir);
}
