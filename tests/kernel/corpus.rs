//! The detections' corpus: listeners shaped as an attacker who has read the README would start
//! them (copies under other names, interpreters' option forms, disguised names, dropped files,
//! GTFOBins' bind shells), and everyday services from Debian's packages, each run for real
//! under one daemon. Every attack must get the finding named for it, every service stay quiet
//! (a relay may be named a proxy). The figures are printed for the README. Reverse shells over a
//! pty or pipes (no listener, no socket on stdio) are out of scope.
use std::{
    net::TcpStream,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use crate::{detections::free_port, harness::Daemon};

mod fixture;

use fixture::{Fixture, OPT};

/// How a case shows itself.
#[derive(Clone, Copy, PartialEq)]
enum Shows {
    /// A TCP listen on its port.
    Listen,
    /// A UDP bind on its port.
    Bind,
    /// A program started on a connection to its port (the test connects).
    ExecOnConnect,
    /// A program started on a connection it made to the test's listener on its port.
    ExecConnected,
}

struct Case {
    name: &'static str,
    /// Run by bash with $PORT set (`{opt}` is the fixture's directory).
    bash: &'static str,
    shows: Shows,
    /// The finding an attack must get; None for a service, which must get none but `allowed`.
    expect: Option<&'static str>,
    allowed: &'static [&'static str],
}

const fn attack(name: &'static str, bash: &'static str, expect: &'static str) -> Case {
    Case {
        name,
        bash,
        shows: Shows::Listen,
        expect: Some(expect),
        allowed: &[],
    }
}

const fn service(name: &'static str, bash: &'static str) -> Case {
    Case {
        name,
        bash,
        shows: Shows::Listen,
        expect: None,
        allowed: &[],
    }
}

const AS_NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

fn cases() -> Vec<Case> {
    let mut all = vec![
        // Known by content, whatever the name.
        attack(
            "netcat copied into a hidden directory as httpd",
            "exec /root/.cache/portwatch-corpus/httpd -l 127.0.0.1 $PORT",
            "netcat-listener",
        ),
        attack(
            "netcat copied into /opt as apache2",
            "exec {opt}/apache2 -l 127.0.0.1 $PORT",
            "netcat-listener",
        ),
        attack(
            "socat copied as dbus-helper, EXEC a shell",
            "exec {opt}/dbus-helper TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr EXEC:/bin/sh",
            "netcat-listener",
        ),
        attack(
            "socat copied as dbus-helper, SYSTEM",
            "exec {opt}/dbus-helper tcp-listen:$PORT,bind=127.0.0.1 system:id",
            "netcat-listener",
        ),
        attack(
            "zsh copied as update-agent, ztcp -l",
            "exec {opt}/update-agent -c 'zmodload zsh/net/tcp; ztcp -l $PORT; sleep 60'",
            "shell-listener",
        ),
        attack(
            "python copied as sysmon, -c",
            "exec {opt}/sysmon -c \"$(cat {opt}/srv.py)\" $PORT",
            "inline-interpreter-listener",
        ),
        attack(
            "perl copied as logrotate-d, -e",
            "exec {opt}/logrotate-d -e \"$(cat {opt}/plain.pl)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "netcat from a memfd, named kworker",
            "exec python3 {opt}/memfd.py",
            "fileless-listener",
        ),
        attack(
            "netcat from a memfd is still netcat",
            "exec python3 {opt}/memfd.py",
            "netcat-listener",
        ),
        // Interpreters' option forms.
        attack(
            "python3 -Ic",
            "exec python3 -Ic \"$(cat {opt}/srv.py)\" $PORT",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 -uc",
            "exec python3 -uc \"$(cat {opt}/srv.py)\" $PORT",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 -W ignore -c",
            "exec python3 -W ignore -c \"$(cat {opt}/srv.py)\" $PORT",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 - (program on stdin)",
            "exec python3 - < {opt}/srv.py",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 with no script (piped in)",
            "cat {opt}/srv.py | exec python3",
            "inline-interpreter-listener",
        ),
        attack(
            "perl -we",
            "exec perl -we \"$(cat {opt}/plain.pl)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "perl -MIO::Socket -e",
            "exec perl -MIO::Socket -e \"$(cat {opt}/plain.pl)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "perl with no script (piped in)",
            "exec perl < {opt}/plain.pl",
            "inline-interpreter-listener",
        ),
        attack(
            "node -e",
            "exec node -e \"$(cat {opt}/srv.js)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "ruby -rsocket -e",
            "exec ruby -rsocket -e \"$(cat {opt}/srv.rb)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "ruby -we",
            "exec ruby -we \"$(cat {opt}/srv.rb)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "php -r",
            "exec php -r '$s = stream_socket_server(\"tcp://127.0.0.1:'$PORT'\"); sleep(60);'",
            "inline-interpreter-listener",
        ),
        attack(
            "node --eval=",
            "exec node --eval=\"$(cat {opt}/srv.js)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "tclsh reading its program from stdin",
            "exec tclsh < {opt}/srv.tcl",
            "inline-interpreter-listener",
        ),
        attack(
            "gawk's /inet/tcp bind shell",
            "exec gawk 'BEGIN { s = \"/inet/tcp/'$PORT'/0/0\"; while ((s |& getline c) > 0) { print c |& s } }'",
            "inline-interpreter-listener",
        ),
        // Disguised names.
        attack(
            "exec -a [kworker/1:2]",
            "exec -a '[kworker/1:2]' python3 {opt}/srv.py",
            "kernel-thread-name",
        ),
        attack(
            "exec -a kworker/0:1H",
            "exec -a 'kworker/0:1H' python3 {opt}/srv.py",
            "kernel-thread-name",
        ),
        attack(
            "command name set to [kworker/2:0]",
            "exec python3 {opt}/comm.py",
            "kernel-thread-name",
        ),
        attack(
            "exec -a 'sshd: root@pts/0'",
            "exec -a 'sshd: root@pts/0' python3 {opt}/srv.py",
            "masquerade",
        ),
        attack(
            "exec -a /usr/sbin/cron",
            "exec -a /usr/sbin/cron python3 {opt}/srv.py",
            "masquerade",
        ),
        attack(
            "$0 rewritten to nginx's worker",
            "exec perl {opt}/nginx.pl",
            "masquerade",
        ),
        attack(
            "netcat copied as apache2 claims apache2",
            "exec {opt}/apache2 -l 127.0.0.1 $PORT",
            "masquerade",
        ),
        // Dropped where anyone may write, or hidden.
        attack(
            "a program in /tmp, run by nobody",
            "exec AS_NOBODY /tmp/portwatch-corpus/python3 {opt}/srv.py",
            "suspicious-location",
        ),
        attack(
            "a program in /var/tmp",
            "exec /var/tmp/portwatch-corpus/python3 {opt}/srv.py",
            "suspicious-location",
        ),
        attack(
            "a program in a directory anyone may write to",
            "exec /srv/portwatch-corpus-upload/python3 {opt}/srv.py",
            "suspicious-location",
        ),
        attack(
            "a script in /dev/shm, run by nobody",
            "exec AS_NOBODY python3 /dev/shm/portwatch-corpus-srv.py",
            "suspicious-location",
        ),
        attack(
            "a script in a hidden directory",
            "cd /root/.local/share/.portwatch-corpus && exec python3 srv.py",
            "suspicious-location",
        ),
        attack(
            "a program deleting itself before it listens",
            "exec {opt}/gone/python3 {opt}/unlink.py",
            "fileless-listener",
        ),
        // GTFOBins' bind shells beyond netcat and the interpreters.
        attack(
            "openssl s_server",
            "exec openssl s_server -quiet -accept 127.0.0.1:$PORT -cert {opt}/cert.pem -key {opt}/key.pem",
            "remote-shell-tool",
        ),
        attack(
            "busybox telnetd -l /bin/sh",
            "exec busybox telnetd -F -l /bin/sh -b 127.0.0.1 -p $PORT",
            "remote-shell-tool",
        ),
        attack(
            "busybox nc -e /bin/sh",
            "exec busybox nc -l -p $PORT -e /bin/sh",
            "netcat-listener",
        ),
        // The dynamic loader running the program (the kernel's executable is the loader).
        attack(
            "python3 run by the dynamic loader, -c",
            "exec $LDSO /usr/bin/python3 -c \"$(cat {opt}/srv.py)\" $PORT",
            "inline-interpreter-listener",
        ),
        attack(
            "netcat run by a copy of the loader",
            "exec {opt}/sys-helper /usr/bin/nc.openbsd -l 127.0.0.1 $PORT",
            "netcat-listener",
        ),
        attack(
            "a python copy in /tmp run by the loader, --argv0 cron",
            "exec $LDSO --argv0 cron /tmp/portwatch-corpus/python3 {opt}/srv.py",
            "suspicious-location",
        ),
        attack(
            "a python copy in /tmp run by the loader, deleted before it listens",
            "DELETE=/tmp/portwatch-corpus/gone/python3 exec $LDSO /tmp/portwatch-corpus/gone/python3 {opt}/unlink_env.py",
            "suspicious-location",
        ),
        attack(
            "a python copy run by the loader from ~/.local/bin, deleted before it listens",
            "DELETE=/root/.local/bin/portwatch-corpus/pyx exec $LDSO /root/.local/bin/portwatch-corpus/pyx {opt}/unlink_env.py",
            "fileless-listener",
        ),
        attack(
            "python from a memfd run by the loader, -c",
            "exec python3 {opt}/loader_memfd.py $LDSO {opt}/srv.py",
            "fileless-listener",
        ),
        // Named after a daemon: a program no package has, in a toolchain's directory.
        attack(
            "an unknown program named sshd in ~/.local/bin",
            "exec /root/.local/bin/portwatch-corpus/sshd {opt}/srv.py",
            "masquerade",
        ),
        // Command lines a reader that does not know every option misreads.
        attack(
            "perl -FI -e (an option with its value attached)",
            "exec perl -FI -e \"BEGIN { $(cat {opt}/plain.pl) }\"",
            "inline-interpreter-listener",
        ),
        attack(
            "perl code in -M",
            "exec perl -M\"IO::Socket::INET;$(cat {opt}/plain.pl)\" /dev/null",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 /dev/stdin",
            "exec python3 /dev/stdin < {opt}/srv.py",
            "inline-interpreter-listener",
        ),
        attack(
            "node with an option it takes a value for, then -e",
            "exec node --max-http-header-size 16384 -e \"$(cat {opt}/srv.js)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "node --import of a data: URL",
            "exec node --import \"data:text/javascript;base64,$(echo \"$SRV_MJS\" | base64 -w0)\" /dev/null",
            "inline-interpreter-listener",
        ),
        attack(
            "tclsh -q decoy.tcl (reads standard input)",
            "exec tclsh -q {opt}/decoy.tcl < {opt}/srv.tcl",
            "inline-interpreter-listener",
        ),
        attack(
            "perl -le (a number, then more options)",
            "exec perl -le \"$(cat {opt}/plain.pl)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "ruby -W2e",
            "exec ruby -W2e \"$(cat {opt}/srv.rb)\"",
            "inline-interpreter-listener",
        ),
        attack(
            "php --run",
            "exec php --run '$s = stream_socket_server(\"tcp://127.0.0.1:'$PORT'\"); sleep(60);'",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 -i /dev/null (then standard input)",
            "exec python3 -i /dev/null < {opt}/srv.py",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 /dev//stdin",
            "exec python3 /dev//stdin < {opt}/srv.py",
            "inline-interpreter-listener",
        ),
        attack(
            "python3 -m timeit CODE",
            "exec python3 -m timeit -n 1 -r 1 \"$(cat {opt}/srv.py)\"",
            "inline-interpreter-listener",
        ),
        // Places named so that they do not look like themselves.
        attack(
            "a script in /dev/shm named through /opt/..",
            "exec python3 /opt/../dev//shm/portwatch-corpus-srv.py",
            "suspicious-location",
        ),
        attack(
            "a script in /dev/shm through a symlink in /opt",
            "exec python3 {opt}/shm/portwatch-corpus-srv.py",
            "suspicious-location",
        ),
        attack(
            "a hidden program file in /opt",
            "exec {opt}/.sysd {opt}/srv.py",
            "suspicious-location",
        ),
        attack(
            "a program below a directory anyone may write to",
            "exec /srv/portwatch-corpus-upload/sub/python3 {opt}/srv.py",
            "suspicious-location",
        ),
        attack(
            "a toolchain's directory inside another hidden one",
            "exec /root/.cache/portwatch-corpus/.cargo/bin/python3 {opt}/srv.py",
            "suspicious-location",
        ),
        attack(
            "socat EXEC of bash copied as apache-worker",
            "exec socat TCP-LISTEN:$PORT,bind=127.0.0.1 EXEC:{opt}/apache-worker,nofork",
            "netcat-listener",
        ),
    ];
    all.extend([
        Case {
            shows: Shows::ExecOnConnect,
            ..attack(
                "a renamed dash on the socket (socat nofork)",
                "exec socat TCP-LISTEN:$PORT,bind=127.0.0.1 EXEC:{opt}/kthelper,nofork",
                "socket-stdio",
            )
        },
        Case {
            shows: Shows::ExecConnected,
            ..attack(
                "a reverse shell on its socket",
                "exec python3 {opt}/reverse.py",
                "socket-stdio",
            )
        },
    ]);
    all.extend([
        service("python3 -m http.server", "exec python3 -m http.server --bind 127.0.0.1 $PORT"),
        service("python3 -m http.server, run by nobody", "cd {opt} && exec AS_NOBODY python3 -m http.server --bind 127.0.0.1 $PORT"),
        service("python3 -m pydoc -p", "exec python3 -m pydoc -n 127.0.0.1 -p $PORT"),
        service("a python script in /opt, run by nobody", "exec AS_NOBODY python3 {opt}/srv.py"),
        service("a node script in /opt", "exec node {opt}/srv.js"),
        service("node --require with a script", "exec node --require {opt}/pre.js {opt}/srv.js"),
        service("a perl script in /opt", "exec perl {opt}/plain.pl"),
        service("a tcl script in /opt", "exec tclsh {opt}/srv.tcl"),
        service("a ruby script in /opt", "exec ruby {opt}/srv.rb"),
        service("php -S (its built-in web server)", "exec php -S 127.0.0.1:$PORT -t {opt}"),
        service(
            "postgres",
            "exec setpriv --reuid=postgres --regid=postgres --init-groups \"$PG_BIN/postgres\" -D {opt}/pg -k {opt}/pg -h 127.0.0.1 -p $PORT",
        ),
        Case {
            shows: Shows::Bind,
            ..service("chronyd (an NTP server)", "exec chronyd -d -x -f \"$CHRONY_CONF\"")
        },
        service("busybox httpd", "exec busybox httpd -f -p 127.0.0.1:$PORT -h {opt}"),
        service("busybox httpd, run by nobody", "exec AS_NOBODY busybox httpd -f -p 127.0.0.1:$PORT -h {opt}"),
        service("python3 run by the dynamic loader with a script", "exec $LDSO /usr/bin/python3 {opt}/srv.py"),
        service("a pipx program (~/.local/share/pipx)", "exec /root/.local/share/pipx/portwatch-corpus/python3 {opt}/srv.py"),
        service("node --max-old-space-size=256 with a script given -p", "exec node --max-old-space-size=256 {opt}/srv.js -p 1"),
        service("a python program in an app's .venv, run by nobody", "exec AS_NOBODY {opt}/app/.venv/bin/python3 {opt}/srv.py"),
                service("perl -w with a script", "exec perl -w {opt}/plain.pl"),
        service("python3 -X dev with a script", "exec python3 -X dev {opt}/srv.py"),
        service("a node script in /opt, run by nobody", "exec AS_NOBODY node {opt}/srv.js"),
        service("nginx", "exec nginx -c \"$NGINX_CONF\""),
        service("redis-server", "exec redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize no"),
        service("sshd -D", "exec /usr/sbin/sshd -D -p $PORT -o ListenAddress=127.0.0.1 -h {opt}/hostkey -o PidFile=none"),
        Case {
            shows: Shows::ExecOnConnect,
            ..service("sshd's per-connection re-exec", "exec /usr/sbin/sshd -D -p $PORT -o ListenAddress=127.0.0.1 -h {opt}/hostkey -o PidFile=none")
        },
        Case {
            shows: Shows::Bind,
            ..service("dnsmasq", "exec dnsmasq -k -p $PORT --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts -C /dev/null --pid-file")
        },
        Case {
            shows: Shows::ExecOnConnect,
            ..service("systemd-socket-activate --inetd running cat", "exec systemd-socket-activate -l 127.0.0.1:$PORT -a --inetd /bin/cat")
        },
        Case {
            allowed: &["relay-listener"],
            ..service("socat relay (a proxy, named so)", "exec socat TCP-LISTEN:$PORT,bind=127.0.0.1,fork TCP:127.0.0.1:9")
        },
        Case {
            shows: Shows::Bind,
            allowed: &["relay-listener"],
            ..service("socat UDP relay (a proxy, named so)", "exec socat UDP-LISTEN:$PORT,bind=127.0.0.1,fork UDP:127.0.0.1:9")
        },
    ]);
    all
}

/// A case's processes, killed (the whole group: forks, workers) when done.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling the group this test made.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn start(case: &Case, port: u16) -> Group {
    let line = case
        .bash
        .replace("{opt}", OPT)
        .replace("AS_NOBODY", AS_NOBODY);
    let child = Command::new("bash")
        .args(["-c", &line])
        .env("PORT", port.to_string())
        // Debian's own programs, whatever else a machine has first on its PATH.
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NGINX_CONF", Fixture::nginx_conf(port))
        .env("CHRONY_CONF", Fixture::chrony_conf(port))
        .env("PG_BIN", fixture::pg_bin())
        .env("LDSO", fixture::ldso())
        .env("SRV_MJS", fixture::SRV_MJS)
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Group(child)
}

fn names(v: &Value) -> Vec<String> {
    v["detections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect()
}

/// The record a case shows itself by, if it came.
fn shown(d: &mut Daemon, case: &Case, port: u16) -> Option<Value> {
    // Not this test's own (free_port listened on it to find it free).
    let me = std::process::id();
    let on_port =
        move |v: &Value, event: &str| v["event"] == event && v["port"] == port && v["pid"] != me;
    match case.shows {
        Shows::Listen => d.wait_for(|v| on_port(v, "listen") && v["success"] == true),
        Shows::Bind => d.wait_for(|v| on_port(v, "bind") && v["success"] == true),
        Shows::ExecOnConnect => {
            d.wait_for(|v| on_port(v, "listen") && v["success"] == true)?;
            let _conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
            d.wait_for(|v| on_port(v, "exec"))
        }
        Shows::ExecConnected => d.wait_for(|v| v["event"] == "exec" && v["remote_port"] == port),
    }
}

#[test]
fn attacks_are_flagged_and_services_stay_quiet() {
    let _fixture = Fixture::new();
    let mut d = Daemon::start(&[]);
    let mut misses = Vec::new();
    let (mut attacks, mut flagged, mut services, mut quiet) = (0, 0, 0, 0);
    let mut used = std::collections::HashSet::new();
    for case in cases() {
        // A port no earlier case had: records are matched by port, old ones included.
        let port = std::iter::repeat_with(free_port)
            .find(|p| used.insert(*p))
            .unwrap();
        // The reverse shell connects to the test: listening before it starts.
        let listener = (case.shows == Shows::ExecConnected)
            .then(|| std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
        let group = start(&case, port);
        // Its connection completes in the backlog: nothing to accept.
        let _listener = listener;
        let record = shown(&mut d, &case, port);
        drop(group);
        let found = record.as_ref().map(names).unwrap_or_default();
        let ok = match (record.is_some(), case.expect) {
            (false, _) => false,
            (true, Some(rule)) => found.iter().any(|n| n == rule),
            (true, None) => found.iter().all(|n| case.allowed.contains(&n.as_str())),
        };
        match case.expect {
            Some(_) => (attacks += 1, flagged += u32::from(ok)),
            None => (services += 1, quiet += u32::from(ok)),
        };
        let outcome = match &record {
            None => "no record".to_owned(),
            Some(_) => format!("{found:?}"),
        };
        eprintln!(
            "corpus: {} {:<55} {}",
            if ok { "ok  " } else { "MISS" },
            case.name,
            outcome
        );
        if !ok {
            misses.push(format!(
                "{}: {outcome} {}",
                case.name,
                record.unwrap_or_default()
            ));
        }
    }
    eprintln!("corpus: attacks flagged {flagged}/{attacks}, services quiet {quiet}/{services}");
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}
