//! `--ancestry`: a listener's chain of ancestors, exact for a parent that was killed before the
//! listen (the listener is then init's child) and for one that exited before its child ran
//! anything (the fork hook); and the webshell sign it gives the detections: a
//! shell listening under a program named like a web server, where a service under it is quiet.
use serde_json::Value;

use crate::{
    detections::{Running, free_port},
    harness::Daemon,
};

const PYTHON: &str = "/usr/bin/python3";

fn names(v: &Value) -> Vec<&str> {
    v["detections"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The listen on `port` of another process than this one (free_port's probe listens too).
fn listen_on(d: &mut Daemon, port: u16) -> Value {
    let me = std::process::id();
    d.expect("the listen", |v| {
        v["event"] == "listen" && v["port"] == port && v["pid"] != me
    })
}

#[test]
fn ancestry_keeps_a_killed_parent_and_a_shell_under_a_web_server_is_a_webshell() {
    let mut d = Daemon::start(&["--ancestry"]);

    // sh starts python, which kills sh, waits to be reparented, then listens.
    let port = free_port();
    let code = format!(
        "import os,signal,socket,time\n\
         sh=os.getppid(); os.kill(sh, signal.SIGKILL)\n\
         while os.getppid()==sh: time.sleep(0.01)\n\
         s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(30)"
    );
    let marker = format!("ancestry-{port}");
    let sh = Running::spawn(
        "sh",
        &["-c", &format!("{PYTHON} -c \"$0\"; : {marker}"), &code],
    );
    let sh_pid = sh.0.id();
    let v = listen_on(&mut d, port);
    // python was reparented; the record names the parent that forked it.
    assert_eq!(v["ppid"], sh_pid, "{v}");
    let chain = v["ancestry"].as_array().expect("ancestry");
    assert_eq!(chain[0]["pid"], sh_pid, "{v}");
    let args: Vec<&str> = chain[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.iter().any(|a| a.contains(&marker)), "{v}");
    // This test's own process is further up, and the chain ends at init.
    let me = u64::from(std::process::id());
    assert!(chain.iter().any(|a| a["pid"] == me), "{v}");
    assert_eq!(chain.last().unwrap()["pid"], 1, "{v}");
    drop(sh);

    // A program named nginx (a copy of dash) starting zsh, which listens: a webshell.
    let dir = std::env::temp_dir().join(format!("portwatch-webshell-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let nginx = dir.join("nginx");
    std::fs::copy("/usr/bin/dash", &nginx).unwrap();
    let nginx = nginx.to_str().unwrap();
    let port = free_port();
    let shell = Running::spawn(
        nginx,
        &[
            "-c",
            &format!("zsh -c 'zmodload zsh/net/tcp; ztcp -l {port}; sleep 30'"),
        ],
    );
    let v = listen_on(&mut d, port);
    assert_eq!(v["comm"], "zsh", "{v}");
    let found = v["detections"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == "webshell"))
        .unwrap_or_else(|| panic!("no webshell finding: {v}"));
    assert_eq!(found["severity"], "critical", "{v}");
    assert_eq!(found["technique"], "T1505.003", "{v}");
    let reason = found["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{nginx} (pid {})", shell.0.id())),
        "{v}"
    );
    // The look-alike: a service the web server runs is no webshell.
    let port = free_port();
    let service = Running::spawn(
        nginx,
        &[
            "-c",
            &format!("{PYTHON} -m http.server --bind 127.0.0.1 {port}"),
        ],
    );
    let v = listen_on(&mut d, port);
    assert!(!names(&v).contains(&"webshell"), "{v}");
    drop((shell, service));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A process whose parent exits before it runs anything: sh forks a subshell and exits; the
/// subshell, reparented, then becomes python, which listens. Its record still names sh, from
/// the kernel's memory of the fork, and the chain goes on through this test's process.
#[test]
fn a_process_reparented_before_its_exec_names_the_parent_that_forked_it() {
    let mut d = Daemon::start(&["--ancestry"]);
    let port = free_port();
    let code = format!(
        "import socket,time\n\
         s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(30)"
    );
    let marker = format!("reparented-{port}");
    // `$$` is sh's pid: the subshell waits for sh to be gone (reaped below), then execs.
    let script = format!(
        "( while kill -0 $$ 2>/dev/null; do sleep 0.05; done; exec {PYTHON} -c \"$0\" ) & : {marker}"
    );
    let mut sh = std::process::Command::new("sh")
        .args(["-c", &script, &code])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sh_pid = sh.id();
    assert!(sh.wait().unwrap().success());
    let v = listen_on(&mut d, port);
    let pid = v["pid"].as_u64().unwrap() as i32;
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the python this test started.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _python = Kill(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let now = status.lines().find(|l| l.starts_with("PPid:")).unwrap();
    assert_ne!(
        now,
        format!("PPid:\t{sh_pid}"),
        "python was reparented: {v}"
    );
    assert_eq!(v["ppid"], sh_pid, "the parent at fork: {v}");
    assert_eq!(v["parent"]["pid"], sh_pid, "{v}");
    let chain = v["ancestry"].as_array().expect("ancestry");
    assert_eq!(chain[0]["pid"], sh_pid, "{v}");
    let args = chain[0]["args"].to_string();
    assert!(args.contains(&marker), "{v}");
    let me = u64::from(std::process::id());
    assert!(chain.iter().any(|a| a["pid"] == me), "{v}");
}
