//! Unit tests of `baseline`.
use super::*;

fn subject<'a>(proto: Proto, addr: &str, port: u16, user: &'a str, exe: &'a str) -> Subject<'a> {
    Subject {
        proto,
        address: addr.parse().unwrap(),
        port,
        uid: Some(0),
        user: Some(user),
        exe: Some(exe),
    }
}

#[test]
fn rules_match_what_they_say() {
    let b = Baseline::parse(
        "# comment\n\
         tcp 22 all root /usr/sbin/sshd\n\
         \n\
         udp 5353 * * *   # mdns from anyone\n\
         tcp 8000-8099 127.0.0.1 app /opt/my app/server\n\
         tcp 9000 address 0 *\n",
        "b.txt",
    )
    .unwrap();
    assert_eq!(b.rules.len(), 4);
    let ok = |s: Subject<'_>| b.check(&s).is_none();
    assert!(ok(subject(
        Proto::Tcp,
        "0.0.0.0",
        22,
        "root",
        "/usr/sbin/sshd"
    )));
    assert!(ok(subject(Proto::Tcp, "::", 22, "root", "/usr/sbin/sshd")));
    assert!(
        !ok(subject(
            Proto::Tcp,
            "127.0.0.1",
            22,
            "root",
            "/usr/sbin/sshd"
        )),
        "scope"
    );
    assert!(
        !ok(subject(Proto::Tcp, "0.0.0.0", 22, "root", "/tmp/sshd")),
        "exe"
    );
    assert!(
        !ok(subject(Proto::Tcp, "0.0.0.0", 22, "bob", "/usr/sbin/sshd")),
        "user"
    );
    assert!(
        !ok(subject(Proto::Udp, "0.0.0.0", 22, "root", "/usr/sbin/sshd")),
        "proto"
    );
    assert!(ok(subject(Proto::Udp, "10.0.0.1", 5353, "x", "/bin/x")));
    assert!(ok(subject(
        Proto::Tcp,
        "127.0.0.1",
        8050,
        "app",
        "/opt/my app/server"
    )));
    assert!(ok(subject(
        Proto::Tcp,
        "::ffff:127.0.0.1",
        8099,
        "app",
        "/opt/my app/server"
    )));
    assert!(!ok(subject(
        Proto::Tcp,
        "127.0.0.1",
        8100,
        "app",
        "/opt/my app/server"
    )));
    assert!(
        ok(subject(Proto::Tcp, "10.1.1.1", 9000, "root", "/x")),
        "uid 0"
    );
    let alert = b
        .check(&subject(Proto::Tcp, "0.0.0.0", 4444, "root", "/usr/bin/nc"))
        .unwrap();
    assert_eq!(
        alert,
        "not in baseline b.txt: no rule allows tcp 4444 all root /usr/bin/nc"
    );
}

#[test]
fn malformed_lines_are_refused_with_line_and_problem() {
    let err = |text: &str| Baseline::parse(text, "b.txt").unwrap_err().to_string();
    let e = err("tcp 22 all root /usr/sbin/sshd\ntcpp 22 all root /x\n");
    assert!(
        e.contains("b.txt line 2") && e.contains("unknown protocol `tcpp`"),
        "{e}"
    );
    assert!(err("tcp 70000 all root /x").contains("`70000` is not a port number"));
    assert!(err("tcp 90-80 all root /x").contains("backwards"));
    assert!(err("tcp 22 everywhere root /x").contains("unknown scope `everywhere`"));
    assert!(err("tcp 22 all root").contains("expected 5 fields"));
    assert!(err("tcp 22 all root sshd").contains("not an absolute path"));
    assert!(err("tcp 22 all root /opt/a\\q").contains("backslash that is not an escape"));
}

#[test]
fn executables_with_any_bytes_are_named_as_records_write_them() {
    // A process's exe as records write it: 0xff and a backslash escaped.
    let exe = crate::model::text::escape(b"/tmp/pw-\xff\\x");
    let b = Baseline::parse("tcp 22 all root /tmp/pw-\\xff\\\\x\n", "b").unwrap();
    let s = subject(Proto::Tcp, "0.0.0.0", 22, "root", &exe);
    assert_eq!(b.check(&s), None);
    // Spelled another way (`\x70` is `p`), the same bytes.
    let b = Baseline::parse("tcp 22 all root /tmp/\\x70w-\\xff\\\\x\n", "b").unwrap();
    assert_eq!(b.check(&s), None);
    // The literal text `\xff` is another name.
    let literal = crate::model::text::escape(b"/tmp/pw-\\xff\\x");
    assert!(
        b.check(&subject(Proto::Tcp, "0.0.0.0", 22, "root", &literal))
            .is_some()
    );
}

/// A listener owned by `user` running `exe` (None: an owner portwatch could not read).
fn entry(proto: Proto, local: &str, owner: Option<(u32, &str, &str)>) -> (Listener, ListenerOwner) {
    use crate::{
        model::{process::ProcessContext, task::Task},
        testkit,
    };
    let context = ProcessContext {
        user: owner.map(|(_, user, _)| user.to_owned()),
        exe: owner.map(|(_, _, exe)| exe.into()),
        ..ProcessContext::default()
    };
    let task = owner.map(|(uid, ..)| Task {
        uid,
        ..Task::default()
    });
    (
        testkit::listener(proto, local, 1, &[]),
        testkit::listener_owner(task, context),
    )
}

#[test]
fn rendered_baseline_parses_back_and_allows_what_it_was_made_from() {
    let listeners = [
        entry(
            Proto::Tcp,
            "0.0.0.0:22",
            Some((0, "root", "/usr/sbin/sshd")),
        ),
        entry(
            Proto::Tcp,
            "[::1]:8080",
            Some((1000, "app", "/opt/my app/server")),
        ),
        entry(
            Proto::Udp,
            "10.1.2.3:53",
            Some((53, "dns", "/usr/sbin/dnsd")),
        ),
        entry(Proto::Tcp, "[::]:22", Some((0, "root", "/usr/sbin/sshd"))),
        entry(Proto::Udp, "0.0.0.0:68", None),
        // Bytes that are not UTF-8, and a `#`, which must not start a comment.
        entry(
            Proto::Tcp,
            "127.0.0.1:9000",
            Some((0, "root", "/opt/x#1/pw-\\xff")),
        ),
    ];
    let text = render(&listeners, "now");
    let b = Baseline::parse(&text, "x").unwrap();
    // sshd's two sockets (0.0.0.0 and ::) are both scope "all": one rule.
    assert_eq!(b.rules.len(), 5, "{text}");
    for (l, owner) in &listeners {
        let s = Subject {
            proto: l.socket.proto,
            address: l.socket.local.ip(),
            port: l.socket.local.port(),
            uid: owner.task.as_ref().map(|t| t.uid),
            user: owner.process.user.as_deref(),
            exe: owner.process.exe.as_deref(),
        };
        assert_eq!(b.check(&s), None, "{l:?}\n{text}");
    }
    // And nothing else: another executable on sshd's port alerts.
    let intruder = Subject {
        proto: Proto::Tcp,
        address: "0.0.0.0".parse().unwrap(),
        port: 22,
        uid: Some(0),
        user: Some("root"),
        exe: Some("/tmp/sshd"),
    };
    assert!(b.check(&intruder).is_some());
    assert!(
        Baseline::parse(&render(&[], "now"), "x")
            .unwrap()
            .rules
            .is_empty()
    );
}

/// A file in this test run's own directory.
fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pw-baseline-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn write(name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = temp(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `Baseline::load`'s error, within a bounded wait (a load that blocks fails the test).
fn load_error(path: &std::path::Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(Baseline::load(&path).map(|_| ()).map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(result) => result.expect_err("refused"),
        Err(_) => panic!("loading the baseline blocked"),
    }
}

#[test]
fn files_that_cannot_be_baselines_are_refused_in_one_line() {
    let good = write("good", b"tcp 22 all root /usr/sbin/sshd\n", 0o644);
    assert_eq!(Baseline::load(&good).unwrap().rules.len(), 1);
    // A device would be read for ever, a FIFO without a writer waited on.
    assert!(load_error(std::path::Path::new("/dev/zero")).contains("not a regular file"));
    let fifo = temp("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(load_error(&fifo).contains("not a regular file"));
    assert!(load_error(temp("x").parent().unwrap()).contains("not a regular file"));
    let big = write("big", &vec![b'#'; MAX_BYTES as usize + 1], 0o644);
    assert!(load_error(&big).contains("1048577 bytes, more than the 1048576"));
    for mode in [0o664, 0o646, 0o666] {
        let loose = write("loose", b"* * * * *\n", mode);
        let e = load_error(&loose);
        assert!(
            e.contains(&format!("(mode {mode:04o})")) && e.contains("chmod go-w"),
            "{e}"
        );
    }
    let bad = write("not-utf8", b"# a\ntcp 22 all root /x\n\xff\n", 0o644);
    let e = load_error(&bad);
    assert!(e.contains("line 3: not UTF-8"), "{e}");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let theirs = write("theirs", b"* * * * *\n", 0o644);
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        assert!(load_error(&theirs).contains("owned by uid 65534"));
    }
    let _ = std::fs::remove_dir_all(temp("x").parent().unwrap());
}
