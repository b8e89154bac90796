//! Built-in detections on real triggers from Debian's packages (python3, zsh, netcat-openbsd,
//! socat) and on their benign look-alikes, which must stay quiet; and the same findings in the
//! ECS and OCSF lines, checked against their definitions.
use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use crate::harness::{Daemon, findings_but_own_place, hold_sockets_named};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child that is killed when the test is done with it.
pub(crate) struct Running(pub(crate) Child);

impl Running {
    pub(crate) fn spawn(program: &str, args: &[&str]) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (its Debian package): {e}"));
        Self(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The listen record of the process `pid` on `port`.
fn listener(d: &mut Daemon, pid: u32, port: u16) -> Value {
    d.expect("its listen", |v| {
        v["event"] == "listen" && v["pid"] == pid && v["port"] == port
    })
}

/// Debian's python3, whatever else is on PATH.
const PYTHON: &str = "/usr/bin/python3";

fn names(v: &Value) -> Vec<String> {
    v["detections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn detection<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["detections"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no {name} detection: {v}"))
}

#[test]
fn each_detection_fires_on_its_real_trigger_and_not_on_the_look_alike() {
    let mut d = Daemon::start(&[]);

    // An interpreter serving from an inline program, and the same interpreter serving a module.
    let port = free_port();
    let code = format!(
        "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(30)"
    );
    let inline = Running::spawn(PYTHON, &["-c", &code]);
    let v = listener(&mut d, inline.0.id(), port);
    let found = detection(&v, "inline-interpreter-listener");
    assert_eq!(
        (&found["severity"], &found["technique"]),
        (&"high".into(), &"T1059.006".into()),
        "{v}"
    );
    assert!(found["reason"].as_str().unwrap().contains("(-c)"), "{v}");
    let port = free_port();
    let module = Running::spawn(
        PYTHON,
        &[
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ],
    );
    let v = listener(&mut d, module.0.id(), port);
    assert!(
        names(&v).is_empty(),
        "a module a service runs is not flagged: {v}"
    );

    // A shell listening: zsh's own TCP module.
    let port = free_port();
    let zsh = Running::spawn(
        "zsh",
        &[
            "-c",
            &format!("zmodload zsh/net/tcp; ztcp -l {port}; sleep 30"),
        ],
    );
    let v = listener(&mut d, zsh.0.id(), port);
    assert_eq!(
        detection(&v, "shell-listener")["technique"],
        "T1059.004",
        "{v}"
    );

    // netcat listening (high), socat running a command for its peer (critical); netcat as a
    // client makes no listener at all.
    let port = free_port();
    let nc = Running::spawn("nc", &["-l", "127.0.0.1", &port.to_string()]);
    let v = listener(&mut d, nc.0.id(), port);
    assert_eq!(detection(&v, "netcat-listener")["severity"], "high", "{v}");
    let client = Command::new("nc")
        .args(["-z", "127.0.0.1", &port.to_string()])
        .status()
        .unwrap();
    assert!(client.success());
    // Its accept is judged, and a netcat's accept is not flagged again: the listen was.
    let nc_pid = nc.0.id();
    let accept = d.expect("nc's accept of the client", |v| {
        v["event"] == "accept" && v["pid"] == nc_pid && v["port"] == port
    });
    assert!(names(&accept).is_empty(), "{accept}");
    let port = free_port();
    let listen = format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr");
    let socat = Running::spawn("socat", &[&listen, "EXEC:/bin/cat"]);
    let v = listener(&mut d, socat.0.id(), port);
    let found = detection(&v, "netcat-listener");
    assert_eq!(
        (&found["severity"], &found["technique"]),
        (&"critical".into(), &"T1059".into()),
        "{v}"
    );
    assert!(
        found["reason"].as_str().unwrap().contains("EXEC:/bin/cat"),
        "{v}"
    );

    // A program run from memory: python3 copied into a memfd and exec'd through its descriptor.
    let port = free_port();
    let payload = format!(
        "import os\nfd = os.memfd_create('payload', 0)\nos.write(fd, open('{PYTHON}', 'rb').read())\n\
         os.execv(f'/proc/self/fd/{{fd}}', ['payload', '-c', \"import socket,time; s=socket.socket(); \
         s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(30)\"])"
    );
    let _memfd = Running::spawn(PYTHON, &["-c", &payload]);
    // (Not the test's own listen that picked the free port.)
    let me = std::process::id();
    let v = d.expect("the memfd program's listen", |v| {
        v["event"] == "listen" && v["port"] == port && v["pid"] != me
    });
    assert!(
        v["exe"].as_str().unwrap().starts_with("/memfd:payload"),
        "what runs, not the fd path: {v}"
    );
    assert_eq!(
        detection(&v, "fileless-listener")["severity"],
        "critical",
        "{v}"
    );

    // A user process named like a kernel thread.
    let (kworker, tcp, _) = hold_sockets_named(None, b"kworker/0:1");
    let v = listener(&mut d, kworker.id(), tcp);
    assert_eq!(
        detection(&v, "kernel-thread-name")["technique"],
        "T1036.004",
        "{v}"
    );

    // A port backdoors use, by an ordinary program.
    let backdoor = TcpListener::bind("127.0.0.1:31337");
    if let Ok(l) = &backdoor {
        let inode = crate::harness::fd_inode(std::os::fd::AsRawFd::as_raw_fd(l));
        let v = d.expect("the backdoor-port listen", |v| {
            v["event"] == "listen" && v["inode"] == inode
        });
        assert_eq!(findings_but_own_place(&v), ["backdoor-port"], "{v}");
    }
}

#[test]
fn a_detection_turned_off_stays_quiet_and_findings_map_into_ecs_and_ocsf() {
    let mut d = Daemon::start(&["--no-detection", "netcat-listener"]);
    let port = free_port();
    let nc = Running::spawn("nc", &["-l", "127.0.0.1", &port.to_string()]);
    let v = listener(&mut d, nc.0.id(), port);
    assert!(names(&v).is_empty(), "turned off: {v}");
    drop(nc);
    drop(d);

    for format in ["ecs", "ocsf"] {
        let mut d = Daemon::start(&["--format", format]);
        let port = free_port();
        let listen = format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr");
        let socat = Running::spawn("socat", &[&listen, "EXEC:/bin/cat"]);
        let pid = socat.0.id();
        let v = d.expect("socat's listen", |v| {
            crate::harness::record_kind(v) == "listen" && crate::harness::record_pid(v) == pid
        });
        if format == "ecs" {
            assert_eq!(v["event"]["kind"], "alert", "{v}");
            assert_eq!(v["event"]["severity"], 99, "{v}");
            assert_eq!(v["rule"]["name"], "netcat-listener", "{v}");
            assert_eq!(
                v["threat"]["technique"]["id"],
                serde_json::json!(["T1059"]),
                "{v}"
            );
            assert_eq!(
                v["portwatch"]["detections"][0]["severity"], "critical",
                "{v}"
            );
        } else {
            assert_eq!(
                (&v["severity_id"], &v["severity"]),
                (&5.into(), &"Critical".into()),
                "{v}"
            );
            assert_eq!(
                v["unmapped"]["portwatch"]["detections"][0]["name"],
                "netcat-listener"
            );
        }
        drop(socat);
        let (_, records, _) = d.stop_with(libc::SIGINT);
        crate::formats::check(format, &records);
    }
}

/// A port below 1024 nobody on the host listens on now.
fn free_privileged_port() -> u16 {
    (700..1000)
        .find(|&p| TcpListener::bind(("0.0.0.0", p)).is_ok())
        .expect("a free port below 1024")
}

/// Python's http.server as `nobody` on `port`, started through `how` (setpriv and the rest).
fn nobody_serving(how: &[&str], port: u16) -> Running {
    let serve = format!("exec {PYTHON} -m http.server --bind 0.0.0.0 {port}");
    let mut args: Vec<&str> = how.to_vec();
    args.extend(["sh", "-c", &serve]);
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]).current_dir("/");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

#[test]
fn a_privileged_port_without_root_is_flagged_with_how_it_was_allowed() {
    let mut d = Daemon::start(&[]);
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let caps = [
        "--inh-caps=+net_bind_service",
        "--ambient-caps=+net_bind_service",
    ];

    // Granted CAP_NET_BIND_SERVICE.
    let port = free_privileged_port();
    let mut how = vec!["setpriv"];
    how.extend(nobody.iter().chain(&caps));
    let granted = nobody_serving(&how, port);
    let v = listener(&mut d, granted.0.id(), port);
    let found = detection(&v, "privileged-port");
    assert_eq!(v["uid"], 65534, "{v}");
    let reason = found["reason"].as_str().unwrap();
    assert!(reason.contains("through CAP_NET_BIND_SERVICE"), "{v}");
    assert!(reason.contains("uid 65534"), "{v}");

    // No capability: its own network namespace lowered ip_unprivileged_port_start.
    let lowered = format!(
        "echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start && exec setpriv {} \"$0\" \"$@\"",
        nobody.join(" ")
    );
    let sysctl = nobody_serving(&["unshare", "--net", "sh", "-c", &lowered], 80);
    let v = listener(&mut d, sysctl.0.id(), 80);
    let reason = detection(&v, "privileged-port")["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("ip_unprivileged_port_start"), "{v}");

    // The look-alikes: root on a privileged port, nobody on an ordinary one.
    let port = free_privileged_port();
    let root = nobody_serving(&["env"], port);
    let v = listener(&mut d, root.0.id(), port);
    assert!(names(&v).is_empty(), "{v}");
    let port = free_port();
    let mut how = vec!["setpriv"];
    how.extend(nobody);
    let ordinary = nobody_serving(&how, port);
    let v = listener(&mut d, ordinary.0.id(), port);
    assert!(names(&v).is_empty(), "{v}");
}
