use super::*;

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
