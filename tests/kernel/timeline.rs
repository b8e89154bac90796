//! `portwatch timeline`: a listener's story read back from a run's rotated files: bound,
//! listening, five connections accepted from loopback, closed with that count, the process
//! chain named, and nothing missing.
use std::{
    io::Read as _,
    net::{TcpListener, TcpStream},
    process::Command,
};

use serde_json::Value;

use crate::{
    detections::free_port,
    harness::{BIN, Daemon, our_close},
};

#[test]
fn a_listeners_story_comes_back_whole_from_rotated_files() {
    let dir = std::env::temp_dir().join(format!("portwatch-timeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.json");
    let port = free_port();
    let spec = format!("file:{},max-size=4K,backups=100", path.display());
    let mut d = Daemon::start(&[
        "--ancestry",
        "--port",
        &port.to_string(),
        "--output",
        "stdout",
        "--output",
        &spec,
    ]);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    for _ in 0..5 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        drop(listener.accept().unwrap());
        let _ = c.read(&mut [0; 1]);
    }
    drop(listener);
    d.expect("the close", |v| our_close()(v) && v["port"] == port);
    let (status, _, _) = d.stop_with(libc::SIGTERM);
    assert!(status.success());
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    assert!(
        std::path::Path::new(&rotated).exists(),
        "the run rotated its file"
    );

    let out = Command::new(BIN)
        .arg("timeline")
        .arg(&path)
        .args(["--port", &port.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let group = &lines[0];
    assert_eq!(
        (&group["protocol"], &group["port"]),
        (&"tcp".into(), &port.into())
    );
    let kinds: Vec<&str> = group["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bind", "listen", "accepts", "close"], "{group}");
    let events = &group["events"];
    assert_eq!(events[2]["count"], 5, "{group}");
    assert_eq!(events[2]["peers"]["127.0.0.1"], 5, "{group}");
    assert_eq!(events[3]["accepted"], 5, "{group}");
    let me = u64::from(std::process::id());
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] != "accepts")
            .all(|e| e["pid"] == me)
    );
    assert_eq!(
        events[1]["ancestry"][0]["pid"],
        u64::from(std::os::unix::process::parent_id())
    );
    assert_eq!(lines[1]["incomplete"], serde_json::json!([]), "{lines:?}");

    // The text form says the same to a person.
    let out = Command::new(BIN)
        .arg("timeline")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("tcp port {port}")), "{text}");
    assert!(text.contains("accepted 5 connections"), "{text}");
    // Under the listen, its firewall verdict (whatever this host's rules make it).
    let rows: Vec<&str> = text.lines().collect();
    let listen = rows
        .iter()
        .position(|l| l.contains(&format!(":{port} (backlog")))
        .unwrap_or_else(|| panic!("no listen row: {text}"));
    assert!(
        rows[listen + 1..]
            .iter()
            .take(2)
            .any(|l| l.starts_with("      firewall: ")),
        "{text}"
    );
    assert!(text.contains("complete: no record"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
