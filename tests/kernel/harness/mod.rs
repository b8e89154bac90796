//! Runs the real `portwatch watch` against the running kernel and waits for its records.
//!
//! Every line the daemon prints is parsed and validated against schema/portwatch.schema.json.
//! Waiting is always bounded: `expect` returns the first record that matches or fails the test
//! after `EVENT_TIMEOUT`, listing what it did see from the test's own process.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

mod helpers;
mod machine;
pub mod runtimes;

pub use helpers::*;
pub use machine::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_portwatch");
/// Loading BTF and attaching every hook: a few seconds here, but in a qemu TCG guest, with two
/// tests loading at once and the other guest on the second host core, it passed 60 s (the
/// verifier alone is emulated). Only a failing start waits this long.
pub const START_TIMEOUT: Duration = Duration::from_secs(180);
/// A kernel event reaches stdout within milliseconds; this only bounds a failing test.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "the kernel tests load eBPF programs: run them as root (`sudo -E cargo xtask test`)"
        );
    }
}

pub fn gettid() -> u32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// The calling thread's command name as the kernel reports it.
pub fn thread_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .expect("read /proc/thread-self/comm")
        .trim_end()
        .to_owned()
}

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/portwatch.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema"))
        .expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

/// Reads JSON lines from `stdout`, validating each, and sends them (or the reason they are bad).
pub fn pump(stdout: ChildStdout) -> Receiver<Result<Value, String>> {
    pump_lines(stdout, true)
}

/// `pump`, validating against the native schema only when `native` (the ECS and OCSF lines are
/// checked against their own definitions: `formats`).
fn pump_lines(stdout: ChildStdout, native: bool) -> Receiver<Result<Value, String>> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let schema = native.then(validator);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let record = serde_json::from_str::<Value>(&line)
                .map_err(|e| format!("not JSON ({e}): {line}"))
                .and_then(|v| match schema.as_ref().map(|s| s.validate(&v)) {
                    Some(Err(e)) => Err(format!("violates the schema ({e}): {line}")),
                    _ => Ok(v),
                });
            if tx.send(record).is_err() {
                break;
            }
        }
    });
    rx
}

/// Tests run in parallel, and every daemon sees every test's events. Tests that flood the
/// kernel on purpose (overload tests) take this lock exclusively, so they cannot make another
/// test's daemon lose the events it waits for; every other daemon holds it shared.
static FLOODS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Holds off every other daemon while a test floods the kernel (or counts what daemons attach).
pub fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    FLOODS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// For a test that starts a daemon of its own, outside `Daemon`.
pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    FLOODS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A copy of portwatch that uid 65534 can reach (the checkout may sit in a root-only directory:
/// mktemp -d makes 0700 ones), removed when dropped.
pub struct UnprivilegedCopy {
    dir: std::path::PathBuf,
    pub path: std::path::PathBuf,
}

impl UnprivilegedCopy {
    pub fn new(tag: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("portwatch-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("portwatch");
        let _ = std::fs::remove_file(&path);
        // A hard link where the checkout shares /tmp's file system, else a copy.
        if std::fs::hard_link(BIN, &path).is_err() {
            std::fs::copy(BIN, &path).unwrap();
        }
        Self { dir, path }
    }

    /// It, run as uid 65534 with exactly the capabilities `caps` (`setpriv` syntax, e.g.
    /// `+bpf,+perfmon`), which it keeps across exec as ambient capabilities.
    pub fn as_nobody_with(&self, caps: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args([
                format!("--inh-caps={caps}"),
                format!("--ambient-caps={caps}"),
            ])
            .arg(&self.path);
        cmd
    }
}

impl Drop for UnprivilegedCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a baseline file as an operator would: mode 0644 whatever the umask (portwatch
/// refuses a baseline others can write).
pub fn write_baseline(path: &std::path::Path, text: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// The capabilities the daemons of this run get as uid 65534 instead of running as root
/// (`PORTWATCH_TEST_CAPS`, `setpriv` syntax): `cargo xtask test` runs the core cases so, with
/// the set the README documents.
fn daemon_command() -> Command {
    static COPY: std::sync::OnceLock<Option<UnprivilegedCopy>> = std::sync::OnceLock::new();
    let caps = std::env::var("PORTWATCH_TEST_CAPS").ok();
    match COPY.get_or_init(|| caps.as_ref().map(|_| UnprivilegedCopy::new("caps-run"))) {
        Some(copy) => copy.as_nobody_with(caps.as_deref().unwrap_or_default()),
        None => Command::new(BIN),
    }
}

fn os_args<'a>(args: &[&'a str]) -> Vec<&'a std::ffi::OsStr> {
    args.iter().map(|a| std::ffi::OsStr::new(*a)).collect()
}

pub struct Daemon {
    _shared: Option<std::sync::RwLockReadGuard<'static, ()>>,
    child: Child,
    records: Receiver<Result<Value, String>>,
    /// Its stderr, line by line.
    stderr: Receiver<String>,
    /// Every record received so far.
    pub seen: Vec<Value>,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(&os_args(args), Some(shared()))
    }

    /// With arguments that need not be UTF-8 (a path).
    pub fn start_os(args: &[&std::ffi::OsStr]) -> Self {
        Self::spawn(args, Some(shared()))
    }

    /// For a test that holds `exclusive()`.
    pub fn start_alone(args: &[&str]) -> Self {
        Self::spawn(&os_args(args), None)
    }

    fn spawn(
        args: &[&std::ffi::OsStr],
        shared: Option<std::sync::RwLockReadGuard<'static, ()>>,
    ) -> Self {
        require_root();
        // The suite's tests are threads of one process, whose binds together pass any flood
        // limit: the limit is off unless a test sets it (tests/kernel/flood.rs does).
        let limited = args
            .iter()
            .any(|a| a.to_str().is_some_and(|a| a.starts_with("--flood")));
        let mut child = daemon_command()
            .arg("watch")
            .args(args)
            .args(if limited {
                &[][..]
            } else {
                &["--flood-rate", "0"][..]
            })
            .args(forced_attach_args())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portwatch");
        let native = !args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] != "native");
        let records = pump_lines(child.stdout.take().expect("stdout"), native);
        let stderr = {
            let (tx, rx) = channel();
            let err = child.stderr.take().expect("stderr");
            thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let mut daemon = Self {
            _shared: shared,
            child,
            records,
            stderr,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Tests act once live events flow: before the snapshot ends, a socket they open could
            // be reported as a snapshot `listener` instead of by its live event.
            match daemon.next(deadline) {
                Some(r) if record_kind(&r) == "snapshot_complete" => break,
                Some(_) => {}
                None => {
                    let _ = daemon.child.kill();
                    let _ = daemon.child.wait();
                    let err: Vec<String> = daemon.stderr.try_iter().collect();
                    panic!(
                        "portwatch did not start within {START_TIMEOUT:?}: {}",
                        err.join("\n")
                    );
                }
            }
        }
        daemon
    }

    /// Waits (bounded) for a line on its stderr that contains `text`, and returns it.
    pub fn expect_stderr(&mut self, text: &str) -> String {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no `{text}` on stderr within {EVENT_TIMEOUT:?}"),
            }
        }
    }

    /// Whether a line on its stderr so far contains `text` (the lines read are used up).
    pub fn try_stderr(&mut self, text: &str) -> bool {
        self.stderr.try_iter().any(|line| line.contains(text))
    }

    /// Sends `signal` and leaves it running.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    pub fn start_record(&self) -> &Value {
        &self.seen[0]
    }

    /// The attach type the daemon gave `hook` (null when not attached).
    pub fn attach(&self, hook: &str) -> Value {
        self.start_record()["hooks"]
            .as_array()
            .and_then(|hooks| hooks.iter().find(|h| h["hook"] == hook))
            .map_or(Value::Null, |h| h["attach"].clone())
    }

    /// The next record before `deadline`, or None when the daemon went away or time ran out.
    fn next(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.records.recv_timeout(left) {
            Ok(Ok(v)) => {
                // portwatch never reports its own activity.
                if record_kind(&v) != "start" && !self.seen.is_empty() {
                    assert_ne!(
                        record_pid(&v),
                        record_pid(&self.seen[0]),
                        "portwatch reported itself: {v}"
                    );
                }
                self.seen.push(v.clone());
                Some(v)
            }
            Ok(Err(bad)) => panic!("portwatch printed a bad line: {bad}"),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The first record (including ones already seen) that `pred` accepts, waiting at most
    /// EVENT_TIMEOUT for it.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while let Some(v) = self.next(deadline) {
            if pred(&v) {
                return Some(v);
            }
        }
        None
    }

    /// Waits for the first record (including ones already seen) that `pred` accepts.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.wait_for(&pred) {
            return v;
        }
        let pid = u64::from(std::process::id());
        let ours: Vec<String> = self
            .seen
            .iter()
            .filter(|v| v["pid"] == pid)
            .map(Value::to_string)
            .collect();
        panic!(
            "no {what} within {EVENT_TIMEOUT:?}; records from this test process:\n{}",
            ours.join("\n")
        );
    }

    /// Returns once no record has come for `quiet` (bounded by EVENT_TIMEOUT): the daemon is
    /// idle.
    pub fn idle(&mut self, quiet: Duration) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while self.next((Instant::now() + quiet).min(deadline)).is_some() {
            assert!(
                Instant::now() < deadline,
                "records kept coming for {EVENT_TIMEOUT:?}"
            );
        }
    }

    /// Returns once every event this thread caused so far has been received: records from one
    /// thread reach the ring buffer in order, so seeing a marker bind made now is enough.
    pub fn sync(&mut self) {
        let marker = std::net::UdpSocket::bind("127.0.0.1:0").expect("marker bind");
        let port = marker.local_addr().expect("marker addr").port();
        let is_marker = ours("bind");
        self.expect("marker bind", |v| is_marker(v) && v["port"] == port);
    }

    /// Sends `signal`, waits (bounded) for exit, and returns the status and all records.
    pub fn stop_with(mut self, signal: i32) -> (ExitStatus, Vec<Value>, Duration) {
        let started = Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = started + EVENT_TIMEOUT;
        while self.next(deadline).is_some() {}
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("portwatch did not exit within {EVENT_TIMEOUT:?} of signal {signal}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        (status, std::mem::take(&mut self.seen), started.elapsed())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A record's kind in any format: the native `event`, ECS `portwatch.record`, OCSF
/// `metadata.event_code`.
pub fn record_kind(v: &Value) -> &str {
    [
        &v["event"],
        &v["portwatch"]["record"],
        &v["metadata"]["event_code"],
    ]
    .into_iter()
    .find_map(Value::as_str)
    .unwrap_or_default()
}

/// `n` UDP binds on loopback from this thread, each its own socket, closed at once: records
/// to fill a stream with.
pub fn binds(n: usize) {
    for _ in 0..n {
        drop(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    }
}

/// A record's sequence number in any format: native `seq`, ECS `event.sequence`, OCSF
/// `metadata.sequence`.
pub fn record_seq(v: &Value) -> u64 {
    [
        &v["seq"],
        &v["event"]["sequence"],
        &v["metadata"]["sequence"],
    ]
    .into_iter()
    .find_map(Value::as_u64)
    .unwrap_or_else(|| panic!("no sequence number: {v}"))
}

/// A record's pid in any format: native `pid`, ECS `process.pid`, OCSF `actor.process.pid`.
pub fn record_pid(v: &Value) -> &Value {
    [
        &v["pid"],
        &v["process"]["pid"],
        &v["actor"]["process"]["pid"],
    ]
    .into_iter()
    .find(|p| !p.is_null())
    .unwrap_or(&Value::Null)
}

/// The names of `v`'s detections, but a `suspicious-location` finding on this test binary's
/// own place: where the tests are built (a clone under /tmp, say) is the runner's choice.
pub fn findings_but_own_place(v: &Value) -> Vec<String> {
    let me = std::env::current_exe().unwrap();
    let me = me.to_string_lossy();
    v["detections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            !(d["name"] == "suspicious-location"
                && d["reason"].as_str().is_some_and(|r| r.contains(&*me)))
        })
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect()
}

/// A matcher for socket events from this thread.
pub fn ours(kind: &'static str) -> impl Fn(&Value) -> bool {
    let pid = u64::from(std::process::id());
    let tid = u64::from(gettid());
    move |v: &Value| v["event"] == kind && v["pid"] == pid && v["tid"] == tid
}

/// A matcher for the close of a socket this thread made. Its last reference may be dropped by
/// a child another test spawned meanwhile: the fork copies every descriptor and holds it until
/// its exec closes the close-on-exec ones, so the release (and its record) is the child's.
pub fn our_close() -> impl Fn(&Value) -> bool {
    let pid = u64::from(std::process::id());
    let mine = ours("close");
    move |v: &Value| mine(v) || (v["event"] == "close" && v["ppid"] == pid)
}

/// Whether this thread released the socket `close` is about (else a child did, see `our_close`).
pub fn released_here(close: &Value) -> bool {
    close["pid"] == u64::from(std::process::id())
}

/// Runs a command to completion (bounded) and returns (exit code, stdout, stderr). Output is
/// read while the command runs, so a large output cannot fill the pipe and stall it.
pub fn run_to_exit(cmd: &mut Command) -> (i32, String, String) {
    run_to_exit_within(cmd, START_TIMEOUT)
}

/// `run_to_exit` with a bound of its own, for a command that loads more than a daemon does.
pub fn run_to_exit_within(cmd: &mut Command, bound: Duration) -> (i32, String, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(bound) {
        Ok(out) => {
            let out = out.expect("wait");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} did not exit within {bound:?}");
        }
    }
}
