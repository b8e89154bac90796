//! A program on a FUSE mount whose server stops answering, with the mount detached
//! (`umount -l`) so that no mount table lists it any more: the daemon must never ask that
//! server anything, or its one thread waits for ever and every record after it is lost. An
//! attacker needs nothing but an unprivileged FUSE mount to try it.
use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    detections::free_port,
    harness::{Daemon, Helper, listen_on_line_helper, require_root},
};

/// Waits (bounded) until `ready` holds.
fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within 15 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The flag that makes the server hold every request about the program: removed when
/// dropped, so that nothing stays stuck on it.
struct Flag(PathBuf);

impl Drop for Flag {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn a_program_on_a_detached_fuse_mount_that_stops_answering_does_not_stall_the_daemon() {
    require_root();
    let dir = Path::new("/var/lib/portwatch-tests").join(format!("fuse-{}", std::process::id()));
    let mount = dir.join("mnt");
    fs::create_dir_all(&mount).unwrap();
    let flag = Flag(dir.join("hold"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/kernel/fuse_hang.py");
    let server = Helper(
        Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&mount)
            .arg(listen_on_line_helper())
            .arg(&flag.0)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 (with Debian's python3-fusepy)"),
    );
    let prog = mount.join("prog");
    until("the FUSE server's file", || prog.exists());
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let mut child = Command::new(&prog)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Helper(child);
    let exe = format!("/proc/{}/exe", child.id());
    until("the program's exec", || {
        fs::read_link(&exe).is_ok_and(|p| p.ends_with("prog"))
    });
    // No mount table names the mount now, and its server holds every open and lookup.
    let detached = Command::new("umount")
        .arg("-l")
        .arg(&mount)
        .status()
        .unwrap();
    assert!(detached.success());
    fs::write(&flag.0, "").unwrap();
    writeln!(stdin, "go").unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n");
    let pid = child.id();
    let listen = d.wait_for(|v| v["event"] == "listen" && v["port"] == port && v["pid"] == pid);
    // The daemon goes on: a listen after it is reported too.
    let after = TcpListener::bind("127.0.0.1:0").unwrap();
    let after_port = after.local_addr().unwrap().port();
    let next = d.wait_for(|v| v["event"] == "listen" && v["port"] == after_port);
    drop(flag);
    let listen = listen.expect("the listen of a program on a stalled FUSE mount, reported");
    assert!(
        listen["exe"]
            .as_str()
            .is_some_and(|e| e.ends_with("/mnt/prog")),
        "{listen}"
    );
    assert!(next.is_some(), "a listen after it, reported");
    drop(child);
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}
