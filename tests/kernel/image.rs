//! What a process really runs at its socket events (issue 26, item 2): the executable file the
//! kernel holds, whatever name it was exec'd by, a deleted one said so (and flagged
//! fileless-listener while it listens), and arguments rewritten after exec kept beside the ones
//! it started with. `ls` says the same of the listener.
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::{
    detections::free_port,
    harness::{Daemon, Helper, image_tricks_helper},
    inventory::ls_json,
};

fn listen_of(pid: u32, port: u16) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["event"] == "listen" && v["pid"] == pid && v["port"] == port
}

/// The listener `ls --json` lists on `port`.
fn ls_listener(port: u16) -> Value {
    ls_json()
        .into_iter()
        .find(|v| v["port"] == port && v["protocol"] == "tcp")
        .unwrap_or_else(|| panic!("ls lists nothing on port {port}"))
}

/// `ls` names the same owner, executable and container as the live record.
fn assert_ls_agrees(live: &Value, port: u16) {
    let l = ls_listener(port);
    for key in ["pid", "exe", "exe_deleted", "container", "args"] {
        assert_eq!(l[key], live[key], "{key}: ls {l}\nlive {live}");
    }
}

/// tests/helpers/image_tricks run as `exe MODE PORT`, once it listens.
fn trick(exe: &std::path::Path, mode: &str, port: u16, before_listen: impl FnOnce()) -> Helper {
    let mut child = Command::new(exe)
        .args([mode, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    before_listen();
    let _ = child.stdin.take().unwrap().write_all(b"go\n");
    let mut ok = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ok)
        .unwrap();
    assert_eq!(ok, "ok\n", "{exe:?} {mode}");
    Helper(child)
}

/// A copy of tests/helpers/image_tricks as `x` in a directory of its own (removed by the test).
fn copy_of_helper(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("portwatch-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("x");
    std::fs::copy(image_tricks_helper(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

/// `cp prog /tmp/x; /tmp/x &; rm /tmp/x`, the listen after the rm.
#[test]
fn a_program_deleted_before_it_listens_is_named_deleted_and_flagged() {
    let (dir, copy) = copy_of_helper("deleted");
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let child = trick(&copy, "wait", port, || std::fs::remove_file(&copy).unwrap());
    let v = d.expect("the deleted program's listen", listen_of(child.id(), port));
    assert_eq!(v["exe"], copy.to_str().unwrap(), "{v}");
    assert_eq!(v["exe_deleted"], true, "{v}");
    let found = v["detections"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "fileless-listener"))
        .unwrap_or_else(|| panic!("no fileless-listener: {v}"));
    assert_eq!(found["severity"], "critical", "{v}");
    assert!(found["reason"].as_str().unwrap().contains("deleted"), "{v}");
    assert_ls_agrees(&v, port);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A program re-exec'd through /proc/self/exe (as busybox runs its applets) from another mount
/// namespace, where the daemon cannot resolve that name: named by the file it runs.
#[test]
fn an_exec_through_proc_self_exe_is_named_by_the_file_it_runs() {
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let helper = image_tricks_helper();
    let child = trick(helper, "reexec", port, || {});
    let v = d.expect(
        "the re-exec'd program's listen",
        listen_of(child.id(), port),
    );
    let file = std::fs::canonicalize(helper).unwrap();
    assert_eq!(v["exe"], file.to_str().unwrap(), "not the name exec'd: {v}");
    assert!(v.get("exe_deleted").is_none(), "{v}");
    assert_eq!(
        v["args"][1], "wait",
        "the image exec'd the second time: {v}"
    );
    assert_ls_agrees(&v, port);
}

/// A process that rewrites its argument area after exec (perl's `$0 = ...`, setproctitle):
/// the record says what the process shows now, and what it was started with.
#[test]
fn arguments_rewritten_after_exec_are_reported_beside_the_original_ones() {
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let helper = image_tricks_helper();
    let child = trick(helper, "rewrite", port, || {});
    let v = d.expect(
        "the rewritten program's listen",
        listen_of(child.id(), port),
    );
    assert_eq!(v["args"], serde_json::json!(["sshd: root@pts/0"]), "{v}");
    let started = serde_json::json!([helper.to_str().unwrap(), "rewrite", port.to_string()]);
    assert_eq!(v["exec_args"], started, "{v}");
    assert_ls_agrees(&v, port);
}

/// An interpreter running an inline program that then disguises itself (`$0`): judged on what
/// it was started with too, so the rewrite hides no finding. (Host only: the guests have no
/// perl.)
#[test]
fn rewriting_its_arguments_hides_no_finding() {
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let script = format!(
        "$0 = 'sshd: root@pts/0'; use IO::Socket::INET; \
         my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:{port}') or die; \
         $| = 1; print \"ok\\n\"; sleep 30"
    );
    let mut child = Command::new("perl")
        .args(["-e", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ok = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ok)
        .unwrap();
    let child = Helper(child);
    let v = d.expect("perl's listen", listen_of(child.id(), port));
    assert_eq!(v["args"], serde_json::json!(["sshd: root@pts/0"]), "{v}");
    assert_eq!(v["exec_args"][1], "-e", "{v}");
    let found = v["detections"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .find(|d| d["name"] == "inline-interpreter-listener")
        })
        .unwrap_or_else(|| panic!("the inline program went unjudged: {v}"));
    assert!(found["reason"].as_str().unwrap().contains("-e"), "{v}");
    // And the disguise itself is a finding.
    let masquerade = v["detections"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "masquerade"))
        .unwrap_or_else(|| panic!("the disguise went unjudged: {v}"));
    assert!(
        masquerade["reason"]
            .as_str()
            .unwrap()
            .contains("the program is perl"),
        "{v}"
    );
}

/// A service whose binary an upgrade replaced (a new file at its path, the old one running):
/// said in a gap, not flagged as a program hiding its file on every accept.
#[test]
fn a_program_replaced_on_disk_is_said_not_flagged() {
    let (dir, copy) = copy_of_helper("replaced");
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let child = trick(&copy, "wait", port, || {
        std::fs::remove_file(&copy).unwrap();
        std::fs::copy(image_tricks_helper(), &copy).unwrap();
    });
    let v = d.expect("the replaced program's listen", listen_of(child.id(), port));
    assert_eq!(v["exe"], copy.to_str().unwrap(), "{v}");
    assert!(v.get("exe_deleted").is_none(), "{v}");
    assert!(
        v["gaps"]["exe"].as_str().unwrap().contains("replaced"),
        "{v}"
    );
    let names: Vec<&Value> = v["detections"].as_array().into_iter().flatten().collect();
    assert!(
        names.iter().all(|d| d["name"] != "fileless-listener"),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
