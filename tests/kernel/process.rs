//! Who did it, for processes that live a millisecond, for fork children, and across pid reuse.
use std::{
    collections::HashMap,
    ffi::{CString, c_char},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{Daemon, EVENT_TIMEOUT, listen_once_helper, proc_self};

fn listen_of(pid: u32) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["event"] == "listen" && v["pid"] == pid && v["success"] == true
}

#[test]
fn two_hundred_short_lived_children_keep_their_identity() {
    let helper = listen_once_helper();
    let mut d = Daemon::start(&[]);
    let me = std::process::id();
    let nonce = Instant::now().elapsed().as_nanos() ^ u128::from(me);
    let mut children = HashMap::new();
    for i in 0..200 {
        let tag = format!("run-{nonce}-child-{i}");
        let mut child = Command::new(helper)
            .arg(&tag)
            .spawn()
            .expect("spawn helper");
        children.insert(child.id(), tag);
        assert!(child.wait().unwrap().success(), "helper failed");
    }
    let deadline = Instant::now() + EVENT_TIMEOUT;
    for (pid, tag) in &children {
        let ev = d.expect("child listen", listen_of(*pid));
        assert_eq!(ev["ppid"], me, "{ev}");
        assert_eq!(ev["parent"]["pid"], me, "{ev}");
        assert_eq!(ev["parent"]["exe"], proc_self().exe, "{ev}");
        assert_eq!(ev["exe"], helper.to_str().unwrap(), "{ev}");
        assert_eq!(
            ev["args"],
            serde_json::json!([helper.to_str().unwrap(), tag]),
            "{ev}"
        );
        assert_eq!(ev["comm"], "pw-listen-once", "{ev}");
        assert!(ev.get("gaps").is_none(), "{ev}");
        assert!(Instant::now() < deadline, "too slow");
    }
}

#[test]
fn fork_child_without_exec_runs_its_parents_program() {
    let mut d = Daemon::start(&[]);
    // SAFETY: the child only makes async-signal-safe syscalls, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            libc::listen(s, 1);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let me = proc_self();
    let ev = d.expect("forked child's listen", listen_of(pid as u32));
    assert_eq!(ev["ppid"], std::process::id(), "{ev}");
    assert_eq!(ev["exe"], me.exe, "{ev}");
    assert_eq!(ev["args"], serde_json::json!(me.args), "{ev}");
    assert!(ev.get("gaps").is_none(), "{ev}");
}

/// struct clone_args (linux/sched.h), for clone3 with set_tid.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Runs `program arg` as a child with exactly pid `pid` (clone3 set_tid; needs root) and waits
/// for it. Returns false if the pid was taken.
fn run_with_pid(pid: i32, program: &Path, arg: &str) -> bool {
    let path = CString::new(program.to_str().unwrap()).unwrap();
    let arg = CString::new(arg).unwrap();
    let argv: [*const c_char; 3] = [path.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let tids = [pid];
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM; the child only calls execv/_exit.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            size_of::<CloneArgs>(),
        )
    };
    if r == 0 {
        unsafe {
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    if r < 0 {
        return false;
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(r as i32, &mut status, 0) };
    assert_eq!(r, i64::from(pid));
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status}"
    );
    true
}

#[test]
fn a_reused_pid_gets_each_programs_own_identity() {
    let first = listen_once_helper();
    // A second program: the same code under another name and path.
    let second = first.with_file_name("pw-other-prog");
    std::fs::copy(first, &second).unwrap();
    let mut d = Daemon::start(&[]);

    let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A free pid in the upper half of the range, away from where new pids are being handed out.
    let half = pid_max / 2;
    let mut pid = half + (std::process::id() as i32 * 7919) % (half - 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !run_with_pid(pid, first, "first-program") {
        pid = if pid + 1 >= pid_max { half } else { pid + 1 };
        assert!(Instant::now() < deadline, "no free pid found");
    }
    assert!(
        run_with_pid(pid, &second, "second-program"),
        "pid {pid} taken in between"
    );

    let a = d.expect("first program's listen", |v| {
        listen_of(pid as u32)(v) && v["args"][1] == "first-program"
    });
    let b = d.expect("second program's listen", |v| {
        listen_of(pid as u32)(v) && v["args"][1] == "second-program"
    });
    assert_eq!(a["exe"], first.to_str().unwrap(), "{a}");
    assert_eq!(b["exe"], second.to_str().unwrap(), "{b}");
    assert_eq!(a["comm"], "pw-listen-once");
    assert_eq!(b["comm"], "pw-other-prog");
    assert_ne!(a["start_time"], b["start_time"], "one pid, two processes");
}

#[test]
fn non_utf8_arguments_and_paths_stay_valid_json() {
    use std::os::unix::ffi::OsStrExt;
    let helper = listen_once_helper();
    // The same helper under a file name that is not UTF-8.
    let odd = helper.with_file_name(std::ffi::OsStr::from_bytes(b"pw-\xff\xfeodd"));
    std::fs::copy(helper, &odd).unwrap();
    let mut d = Daemon::start(&[]);
    let arg = std::ffi::OsStr::from_bytes(b"bad-\xff-\xfe\"quoted\"\ttag");
    let mut child = Command::new(&odd).arg(arg).spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    // The harness parses every line as JSON and validates it against the schema. Every byte
    // is kept: `\xNN` for one that is not UTF-8 or a control character (`model::text`).
    let ev = d.expect("listen", listen_of(pid));
    assert_eq!(ev["args"][1], "bad-\\xff-\\xfe\"quoted\"\\x09tag", "{ev}");
    let exe = ev["exe"].as_str().unwrap();
    assert!(exe.ends_with("/pw-\\xff\\xfeodd"), "{ev}");
    assert_eq!(ev["comm"], "pw-\\xff\\xfeodd", "{ev}");
}
