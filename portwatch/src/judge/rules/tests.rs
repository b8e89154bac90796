use super::*;
use crate::model::process::{Ancestor, Loaded, Location};

fn subject<'a>(comm: &'a str, exe: Option<&'a str>, args: &'a [String], port: u16) -> Subject<'a> {
    Subject {
        doing: "listening on tcp 0.0.0.0:8080",
        comm,
        exe,
        args: Some(args),
        uid: Some(0),
        port: Some(port),
        ..Subject::default()
    }
}

fn names(found: &[Detection]) -> Vec<&str> {
    found.iter().map(|d| d.name).collect()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn each_rule_fires_on_its_case_and_not_on_the_look_alike() {
    let r = Rules::default();
    let inline = args(&["python3", "-c", "import socket"]);
    let module = args(&["python3", "-m", "http.server"]);
    let script = args(&["python3", "/srv/app.py", "-c", "conf"]);
    assert_eq!(
        names(&r.judge(&subject(
            "python3",
            Some("/usr/bin/python3.11"),
            &inline,
            8080
        ))),
        ["inline-interpreter-listener"]
    );
    assert!(
        r.judge(&subject(
            "python3",
            Some("/usr/bin/python3.11"),
            &module,
            8080
        ))
        .is_empty()
    );
    assert!(
        r.judge(&subject(
            "python3",
            Some("/usr/bin/python3.11"),
            &script,
            8080
        ))
        .is_empty(),
        "-c after a script is the script's"
    );
    assert_eq!(
        names(&r.judge(&subject("zsh", Some("/usr/bin/zsh"), &[], 8080))),
        ["shell-listener"]
    );
    let nc = r.judge(&subject(
        "nc",
        Some("/usr/bin/nc.openbsd"),
        &args(&["nc", "-l", "8080"]),
        8080,
    ));
    assert_eq!(
        (nc[0].name, nc[0].severity),
        ("netcat-listener", Severity::High)
    );
    let socat = r.judge(&subject(
        "socat",
        Some("/usr/bin/socat"),
        &args(&["socat", "TCP-LISTEN:8080", "EXEC:/bin/sh"]),
        8080,
    ));
    assert_eq!(socat[0].severity, Severity::Critical, "{socat:?}");
    assert!(socat[0].reason.contains("EXEC:/bin/sh"));
    assert_eq!(
        names(&r.judge(&subject("x", Some("/memfd:x (deleted)"), &[], 8080))),
        ["fileless-listener"]
    );
    assert_eq!(
        names(&r.judge(&subject("x", Some("/tmp/x (deleted)"), &[], 8080))),
        ["fileless-listener"]
    );
    assert_eq!(
        names(&r.judge(&subject("kworker/0:1", Some("/tmp/x"), &[], 8080))),
        ["kernel-thread-name"]
    );
    assert!(
        r.judge(&subject("kworker/0:1", None, &[], 8080)).is_empty(),
        "a real kernel thread has no executable"
    );
    assert_eq!(
        names(&r.judge(&subject("nginx", Some("/usr/sbin/nginx"), &[], 31337))),
        ["backdoor-port"]
    );
    assert!(
        r.judge(&subject("nginx", Some("/usr/sbin/nginx"), &[], 443))
            .is_empty()
    );
}

#[test]
fn rules_can_be_turned_off_and_unknown_names_are_refused() {
    let r = Rules::new(vec!["backdoor-port".into()], None, vec![]).unwrap();
    assert!(
        r.judge(&subject("nginx", Some("/usr/sbin/nginx"), &[], 4444))
            .is_empty()
    );
    let e = Rules::new(vec!["nope".into()], None, vec![]).unwrap_err();
    assert!(
        e.contains("unknown detection `nope`") && e.contains("shell-listener"),
        "{e}"
    );
    let custom = Rules::new(vec![], Some(vec![8443]), vec![]).unwrap();
    assert_eq!(
        names(&custom.judge(&subject("x", Some("/usr/bin/x"), &[], 8443))),
        ["backdoor-port"]
    );
}

#[test]
fn a_privileged_port_without_root_says_how_it_got_it() {
    let r = Rules::default();
    let none = args(&[]);
    let mut s = subject("web", Some("/usr/bin/web"), &none, 80);
    assert!(r.judge(&s).is_empty(), "root on port 80");
    s.uid = Some(33);
    let found = r.judge(&s);
    assert_eq!(names(&found), ["privileged-port"]);
    assert!(found[0].reason.contains("uid 33"), "{found:?}");
    assert!(
        found[0].reason.contains("how is unknown"),
        "pid 0 is not in /proc: {found:?}"
    );
    s.port = Some(8080);
    assert!(r.judge(&s).is_empty(), "not a privileged port");
}

#[test]
fn a_tcp_port_joined_by_another_program_or_user_is_a_hijack() {
    let r = Rules::default();
    let none = args(&[]);
    let owner = |exe: &str, uid| Neighbour {
        pid: 10,
        exe: Some(exe.into()),
        uid,
    };
    let mut s = subject("evil", Some("/tmp/evil"), &none, 8080);
    let nginx = [owner("/usr/sbin/nginx", 0)];
    s.joined = Some(&nginx);
    let found = r.judge(&s);
    assert_eq!(names(&found), ["reuseport-hijack"]);
    assert!(
        found[0].reason.contains("pid 10 (/usr/sbin/nginx, uid 0)"),
        "{found:?}"
    );
    s.exe = Some("/usr/sbin/nginx");
    assert!(r.judge(&s).is_empty(), "another worker of the same server");
    let other_user = [owner("/usr/sbin/nginx", 33)];
    s.joined = Some(&other_user);
    assert_eq!(names(&r.judge(&s)), ["reuseport-hijack"]);
}

#[test]
fn io_uring_listeners_are_flagged_unless_allowed() {
    let none = args(&[]);
    let mut s = subject("srv", Some("/opt/srv/bin/srv"), &none, 8080);
    s.io_uring = true;
    assert_eq!(names(&Rules::default().judge(&s)), ["io-uring-listener"]);
    for allowed in ["/opt/srv/bin/srv", "srv"] {
        let r = Rules::new(vec![], None, vec![allowed.into()]).unwrap();
        assert!(r.judge(&s).is_empty(), "{allowed}");
    }
    let r = Rules::new(vec![], None, vec!["/usr/bin/srv".into()]).unwrap();
    assert_eq!(names(&r.judge(&s)), ["io-uring-listener"], "another path");
}

#[test]
fn a_program_on_sockets_is_critical_for_a_shell_high_for_an_interpreter_else_medium() {
    let r = Rules::default();
    let on = |comm, exe| {
        let a = args(&[comm]);
        let found = r.judge_stdio(&Subject {
            doing: "started with stdin on tcp 10.0.0.5:40000",
            ..subject(comm, Some(exe), &a, 0)
        });
        assert_eq!(names(&found), ["socket-stdio"]);
        (found[0].severity, found[0].technique.unwrap_or_default())
    };
    assert_eq!(
        on("bash", "/usr/bin/bash"),
        (Severity::Critical, "T1059.004")
    );
    assert_eq!(
        on("python3", "/usr/bin/python3.11"),
        (Severity::High, "T1059.006")
    );
    assert_eq!(
        on("in.tftpd", "/usr/sbin/in.tftpd"),
        (Severity::Medium, "T1059")
    );
    // Off, it neither judges nor reports.
    let off = Rules::new(vec!["socket-stdio".into()], None, Vec::new()).unwrap();
    assert!(!off.judges_stdio());
    assert!(r.judges_stdio());
}

/// Detections on `s`, by name.
fn found(s: &Subject) -> Vec<&'static str> {
    Rules::default().judge(s).iter().map(|d| d.name).collect()
}

#[test]
fn a_copy_is_judged_as_what_it_is_whatever_its_name() {
    let nc = args(&["httpd", "-l", "-p", "8080"]);
    let copy = Subject {
        known_as: Some("/usr/bin/nc.openbsd"),
        ..subject("httpd", Some("/root/srv/httpd"), &nc, 8080)
    };
    // Named like a web server it is not: a disguise too.
    assert_eq!(found(&copy), ["netcat-listener", "masquerade"]);
    let reason = &Rules::default().judge(&copy)[0].reason;
    assert!(reason.contains("a copy of /usr/bin/nc.openbsd"), "{reason}");
    // The same name and arguments, an executable that is no tool: quiet.
    assert!(found(&subject("httpd", Some("/usr/sbin/httpd"), &nc, 8080)).is_empty());
    // A renamed dash behind nc -e is still a shell.
    let dash = Subject {
        known_as: Some("/usr/bin/dash"),
        ..subject("kthelper", Some("/usr/local/bin/kthelper"), &[], 8080)
    };
    assert_eq!(found(&dash), ["shell-listener"]);
}

#[test]
fn busybox_is_judged_by_its_applet() {
    let httpd = args(&["httpd", "-f", "-p", "8080"]);
    assert!(found(&subject("httpd", Some("/bin/busybox"), &httpd, 8080)).is_empty());
    let sh = args(&["sh", "-c", "x"]);
    assert_eq!(
        found(&subject("sh", Some("/bin/busybox"), &sh, 8080)),
        ["shell-listener"]
    );
    let nc = args(&["busybox", "nc", "-lp", "8080", "-e", "/bin/sh"]);
    let v = Rules::default().judge(&subject("busybox", Some("/bin/busybox"), &nc, 8080));
    assert_eq!(names(&v), ["netcat-listener"]);
    assert_eq!(v[0].severity, Severity::Critical);
}

#[test]
fn a_socat_relay_is_a_proxy_and_exec_is_still_critical() {
    let relay = args(&["socat", "TCP-LISTEN:8080,fork,reuseaddr", "TCP:10.0.0.5:80"]);
    let v = Rules::default().judge(&subject("socat", Some("/usr/bin/socat"), &relay, 8080));
    assert_eq!(names(&v), ["relay-listener"]);
    assert_eq!(v[0].severity, Severity::Medium);
    let shell = args(&["socat", "tcp-listen:8080", "exec:/bin/sh"]);
    let v = Rules::default().judge(&subject("socat", Some("/usr/bin/socat"), &shell, 8080));
    assert_eq!(
        (names(&v), v[0].severity),
        (vec!["netcat-listener"], Severity::Critical)
    );
    let console = args(&["socat", "TCP-LISTEN:8080", "-"]);
    let v = Rules::default().judge(&subject("socat", Some("/usr/bin/socat"), &console, 8080));
    assert_eq!(
        (names(&v), v[0].severity),
        (vec!["netcat-listener"], Severity::High)
    );
}

#[test]
fn names_that_claim_another_program_are_disguises() {
    let kworker = args(&["[kworker/1:2]", "/srv/x.py"]);
    assert_eq!(
        found(&subject(
            "python3",
            Some("/usr/bin/python3.11"),
            &kworker,
            8080
        )),
        ["kernel-thread-name"]
    );
    let sshd = args(&["sshd: root@pts/0", "/srv/x.py"]);
    assert_eq!(
        found(&subject(
            "python3",
            Some("/usr/bin/python3.11"),
            &sshd,
            8080
        )),
        ["masquerade"]
    );
    // The daemons themselves, their versions and parts, and busybox's applets: quiet.
    for (comm, exe, argv0) in [
        ("sshd", "/usr/sbin/sshd", "sshd: root@pts/0"),
        (
            "sshd-session",
            "/usr/lib/openssh/sshd-session",
            "sshd-session: root [priv]",
        ),
        ("nginx", "/usr/sbin/nginx", "nginx: worker process"),
        ("php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: pool www"),
        (
            "postgres",
            "/usr/lib/postgresql/15/bin/postgres",
            "postgres: 15/main: walwriter",
        ),
        ("httpd", "/bin/busybox", "httpd"),
        ("bash", "/usr/bin/bash", "-bash"),
    ] {
        let argv = args(&[argv0]);
        let s = subject(comm, Some(exe), &argv, 8080);
        assert!(
            !found(&s).contains(&"masquerade") && !found(&s).contains(&"kernel-thread-name"),
            "{exe} as {argv0}: {:?}",
            found(&s)
        );
    }
    // Named after a daemon, no program of the host's, where packages do not install: a
    // disguise; a copy of the host's daemon, or the daemon where packages put it, is itself.
    let own = Location {
        path: "/root/.local/bin/sshd".into(),
        world_writable: false,
    };
    let argv = args(&["/root/.local/bin/sshd", "-D"]);
    let fake = Subject {
        exe_at: Some(&own),
        ..subject("sshd", Some("/root/.local/bin/sshd"), &argv, 8080)
    };
    assert_eq!(found(&fake), ["masquerade"]);
    let reason = &Rules::default().judge(&fake)[0].reason;
    assert!(
        reason.contains("named after sshd") && reason.contains("/root/.local/bin"),
        "{reason}"
    );
    let copy = Subject {
        known_as: Some("/usr/sbin/sshd"),
        ..fake
    };
    assert!(found(&copy).is_empty(), "{:?}", found(&copy));
    let container = Location {
        path: "/usr/sbin/sshd".into(),
        world_writable: false,
    };
    let image = Subject {
        exe_at: Some(&container),
        ..subject("sshd", Some("/usr/sbin/sshd"), &argv, 8080)
    };
    assert!(found(&image).is_empty(), "{:?}", found(&image));
    // A daemon's part claims the daemon; a program named after a part of one is another.
    let session = args(&["sshd-session: root [priv]", "/srv/x.py"]);
    assert_eq!(
        found(&subject(
            "python3",
            Some("/usr/bin/python3.11"),
            &session,
            8080
        )),
        ["masquerade"]
    );
    let root = Location {
        path: "/nginx-ingress-controller".into(),
        world_writable: false,
    };
    let ingress = args(&["/nginx-ingress-controller"]);
    let controller = Subject {
        exe_at: Some(&root),
        ..subject(
            "nginx-ingress-c",
            Some("/nginx-ingress-controller"),
            &ingress,
            8080,
        )
    };
    assert!(found(&controller).is_empty(), "{:?}", found(&controller));
    // Rewritten after exec: the name it was started with is judged too.
    let now = args(&["worker", "/srv/x.py"]);
    let started = args(&["nginx: master process", "/srv/x.py"]);
    let s = Subject {
        exec_args: Some(&started),
        ..subject("python3", Some("/usr/bin/python3.11"), &now, 8080)
    };
    assert_eq!(found(&s), ["masquerade"]);
}

#[test]
fn programs_and_scripts_in_places_anyone_may_write_are_flagged_more_for_system_accounts() {
    let at = |path: &str, writable: bool| Location {
        path: path.into(),
        world_writable: writable,
    };
    let tmp = at("/tmp/x", true);
    let judged = |s: &Subject| {
        let v = Rules::default().judge(s);
        v.iter()
            .find(|d| d.name == "suspicious-location")
            .map(|d| (d.severity, d.reason.clone()))
    };
    let nobody = Subject {
        uid: Some(65534),
        exe_at: Some(&tmp),
        ..subject("x", Some("/tmp/x"), &[], 8080)
    };
    let (severity, reason) = judged(&nobody).unwrap();
    assert_eq!(severity, Severity::Critical);
    assert!(
        reason.contains("a temporary directory, run by a system account"),
        "{reason}"
    );
    let user = Subject {
        uid: Some(1000),
        ..nobody
    };
    assert_eq!(judged(&user).unwrap().0, Severity::High);
    let upload = at("/srv/upload/x", true);
    let anyone = Subject {
        exe_at: Some(&upload),
        ..user
    };
    assert!(judged(&anyone).unwrap().1.contains("anyone may write"));
    let script = at("/dev/shm/srv.py", true);
    let usr = at("/usr/bin/python3.11", false);
    let py = args(&["python3", "/dev/shm/srv.py"]);
    let shm = Subject {
        exe_at: Some(&usr),
        script_at: Some(&script),
        ..subject("python3", Some("/usr/bin/python3.11"), &py, 8080)
    };
    assert!(
        judged(&shm)
            .unwrap()
            .1
            .contains("its script /dev/shm/srv.py is in shared memory")
    );
    let hidden = at("/home/u/.cache/httpd", false);
    let dot = Subject {
        uid: Some(1000),
        exe_at: Some(&hidden),
        ..subject("httpd", None, &[], 8080)
    };
    assert_eq!(judged(&dot).unwrap().0, Severity::Medium);
    // A hidden file, and a toolchain's name below another hidden directory.
    for (path, said) in [
        ("/usr/local/bin/.sysd", "a hidden file (.sysd)"),
        ("/srv/.x/.cargo/bin/srv", "a hidden directory (.x)"),
        (
            "/root/.cache/tools/.local/bin/srv",
            "a hidden directory (.cache)",
        ),
    ] {
        let l = at(path, false);
        let s = Subject {
            uid: Some(1000),
            exe_at: Some(&l),
            ..subject("srv", None, &[], 8080)
        };
        assert!(judged(&s).is_some_and(|(_, r)| r.contains(said)), "{path}");
    }
    // Toolchains' hidden directories, and packaged places: quiet.
    for path in [
        "/home/u/.local/bin/jupyter",
        "/root/.cargo/bin/srv",
        "/home/u/.vscode-server/bin/abc/node",
        "/home/u/.local/share/pipx/venvs/x/bin/python",
        "/srv/app/.venv/bin/gunicorn",
        "/usr/sbin/nginx",
        "/opt/app/bin/srv",
    ] {
        let l = at(path, false);
        let s = Subject {
            uid: Some(1000),
            exe_at: Some(&l),
            ..subject("srv", None, &[], 8080)
        };
        assert_eq!(judged(&s), None, "{path}");
    }
    // An accept is not judged for its place (its listener was).
    let accept = Subject {
        accept: true,
        ..nobody
    };
    assert_eq!(judged(&accept), None);
}

#[test]
fn a_servers_own_per_connection_process_is_quiet_unless_it_is_a_shell() {
    let sshd = Ancestor {
        pid: 812,
        comm: "sshd".into(),
        exe: Some("/usr/sbin/sshd".into()),
        ..Ancestor::default()
    };
    let parents = [sshd];
    let reexec = args(&["/usr/sbin/sshd", "-D", "-R"]);
    let s = Subject {
        doing: "started with stdin, stdout on tcp 0.0.0.0:22",
        ancestors: &parents,
        ..subject("sshd", Some("/usr/sbin/sshd"), &reexec, 22)
    };
    assert!(Rules::default().judge_stdio(&s).is_empty());
    let session = Subject {
        exe: Some("/usr/lib/openssh/sshd-session"),
        comm: "sshd-session",
        ..s
    };
    assert!(Rules::default().judge_stdio(&session).is_empty());
    let shell = Subject {
        exe: Some("/usr/bin/dash"),
        comm: "sh",
        ..s
    };
    let v = Rules::default().judge_stdio(&shell);
    assert_eq!(
        (names(&v), v[0].severity),
        (vec!["socket-stdio"], Severity::Critical)
    );
    // Another program on a socket with no such parent: medium, as before.
    let alone = Subject {
        ancestors: &[],
        exe: Some("/usr/local/bin/x"),
        comm: "x",
        ..s
    };
    assert_eq!(
        Rules::default().judge_stdio(&alone)[0].severity,
        Severity::Medium
    );
}

#[test]
fn interpreters_are_read_as_they_read_their_options() {
    for line in [
        "python3 -Ic x",
        "perl -we x",
        "ruby -we x",
        "python3 -",
        "python3",
        "gawk BEGIN{x}",
    ] {
        let a: Vec<String> = line.split(' ').map(str::to_owned).collect();
        let exe = format!("/usr/bin/{}", a[0]);
        assert_eq!(
            found(&subject(&a[0], Some(&exe), &a, 8080)),
            ["inline-interpreter-listener"],
            "{line}"
        );
    }
    for line in [
        "php -S 0.0.0.0:8000",
        "python3 -m http.server",
        "node /srv/app.js",
        "gawk -f /srv/x.awk",
    ] {
        let a: Vec<String> = line.split(' ').map(str::to_owned).collect();
        let exe = format!("/usr/bin/{}", a[0]);
        assert!(
            found(&subject(&a[0], Some(&exe), &a, 8080)).is_empty(),
            "{line}"
        );
    }
}

#[test]
fn a_program_run_by_the_dynamic_loader_is_judged_as_that_program() {
    let line = args(&[
        "/lib64/ld-linux-x86-64.so.2",
        "--argv0",
        "x",
        "/tmp/py",
        "-c",
        "import socket",
    ]);
    let loaded = Loaded {
        program: "/tmp/py".into(),
        at: 3,
        deleted: false,
    };
    let tmp = Location {
        path: "/tmp/py".into(),
        world_writable: true,
    };
    let ldso = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
    let s = Subject {
        known_as: Some("/usr/bin/python3.11"),
        loaded: Some(&loaded),
        exe_at: Some(&tmp),
        ..subject("ld-linux-x86-64", Some(ldso), &line, 8080)
    };
    assert_eq!(
        found(&s),
        ["inline-interpreter-listener", "suspicious-location"]
    );
    let reason = &Rules::default().judge(&s)[0].reason;
    assert!(
        reason.contains(&format!(
            "({ldso}, loading /tmp/py, a copy of /usr/bin/python3.11)"
        )),
        "{reason}"
    );
    // The same loader running a script: quiet.
    let script = args(&[
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/bin/python3",
        "/srv/app.py",
    ]);
    let app = Loaded {
        program: "/usr/bin/python3.11".into(),
        at: 1,
        deleted: false,
    };
    let s = Subject {
        known_as: Some("/usr/bin/python3.11"),
        loaded: Some(&app),
        ..subject("ld-linux-x86-64", Some(ldso), &script, 8080)
    };
    assert!(found(&s).is_empty(), "{:?}", found(&s));
    // What the loader runs was deleted since, or is a memfd: fileless.
    let gone = Loaded {
        deleted: true,
        ..app.clone()
    };
    let s = Subject {
        loaded: Some(&gone),
        ..s
    };
    assert_eq!(found(&s), ["fileless-listener"]);
}
