//! Runs the real `portwatch watch` against the running kernel and waits for its records.
//!
//! Every line the daemon prints is parsed and validated against schema/portwatch.schema.json.
//! Waiting is always bounded: `expect` returns the first record that matches or fails the test
//! after `EVENT_TIMEOUT`, listing what it did see from the test's own process.
use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_portwatch");
/// Loading BTF and attaching every hook: generous for a debug build on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
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
fn pump(stdout: ChildStdout) -> Receiver<Result<Value, String>> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let schema = validator();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let record = serde_json::from_str::<Value>(&line)
                .map_err(|e| format!("not JSON ({e}): {line}"))
                .and_then(|v| match schema.validate(&v) {
                    Ok(()) => Ok(v),
                    Err(e) => Err(format!("violates the schema ({e}): {line}")),
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

/// Holds off every other daemon while a test floods the kernel.
pub fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    FLOODS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct Daemon {
    _shared: Option<std::sync::RwLockReadGuard<'static, ()>>,
    child: Child,
    records: Receiver<Result<Value, String>>,
    /// Every record received so far.
    pub seen: Vec<Value>,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Self {
        let shared = FLOODS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::spawn(args, Some(shared))
    }

    /// For a test that holds `exclusive()`.
    pub fn start_alone(args: &[&str]) -> Self {
        Self::spawn(args, None)
    }

    fn spawn(args: &[&str], shared: Option<std::sync::RwLockReadGuard<'static, ()>>) -> Self {
        require_root();
        let mut child = Command::new(BIN)
            .arg("watch")
            .args(args)
            .args(forced_attach_args())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portwatch");
        let records = pump(child.stdout.take().expect("stdout"));
        let mut daemon = Self {
            _shared: shared,
            child,
            records,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Tests act once live events flow: before the snapshot ends, a socket they open could
            // be reported as a snapshot `listener` instead of by its live event.
            match daemon.next(deadline) {
                Some(r) if r["event"] == "snapshot_complete" => break,
                Some(_) => {}
                None => {
                    let _ = daemon.child.kill();
                    let mut err = String::new();
                    if let Some(mut s) = daemon.child.stderr.take() {
                        let _ = s.read_to_string(&mut err);
                    }
                    panic!("portwatch did not start within {START_TIMEOUT:?}: {err}");
                }
            }
        }
        daemon
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
                if v["event"] != "start" && !self.seen.is_empty() {
                    assert_ne!(
                        v["pid"], self.seen[0]["pid"],
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

    /// Waits for the first record (including ones already seen) that `pred` accepts.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while let Some(v) = self.next(deadline) {
            if pred(&v) {
                return v;
            }
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

/// A matcher for socket events from this thread.
pub fn ours(kind: &'static str) -> impl Fn(&Value) -> bool {
    let pid = u64::from(std::process::id());
    let tid = u64::from(gettid());
    move |v: &Value| v["event"] == kind && v["pid"] == pid && v["tid"] == tid
}

/// Runs a command to completion (bounded) and returns (exit code, stdout, stderr). Output is
/// read while the command runs, so a large output cannot fill the pipe and stall it.
pub fn run_to_exit(cmd: &mut Command) -> (i32, String, String) {
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
    match rx.recv_timeout(START_TIMEOUT) {
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
            panic!("{cmd:?} did not exit within {START_TIMEOUT:?}");
        }
    }
}

/// What /proc and sysfs say about this test process, to compare with the daemon's context.
pub struct ProcSelf {
    pub ppid: u32,
    pub exe: String,
    pub args: Vec<String>,
    pub netns: u64,
    pub cgroup_id: u64,
    pub parent_exe: String,
    /// Process start as wall-clock ns since the epoch.
    pub start_wall_ns: u64,
}

pub fn proc_self() -> ProcSelf {
    use std::os::unix::fs::MetadataExt;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ppid: u32 = fields[1].parse().unwrap();
    let start_ticks: u64 = fields[19].parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let boot_now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let start_wall_ns = wall_now - boot_now + start_ticks * (1_000_000_000 / hz);
    // The cgroup v2 id is the inode of the cgroup's directory in the v2 hierarchy.
    let v2_root = cgroup2_root();
    let v2_path = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        .expect("a cgroup v2 line");
    let cgroup_dir = format!("{v2_root}{}", v2_path.trim_end_matches('/'));
    ProcSelf {
        ppid,
        exe: std::env::current_exe()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        args: std::env::args().collect(),
        netns: std::fs::metadata("/proc/self/ns/net").unwrap().ino(),
        cgroup_id: std::fs::metadata(&cgroup_dir).unwrap().ino(),
        parent_exe: std::fs::read_link(format!("/proc/{ppid}/exe"))
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        start_wall_ns,
    }
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo.
pub fn cgroup2_root() -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split_whitespace().nth(4).unwrap().to_owned())
        })
        .expect("a cgroup2 mount")
}

/// `--attach` for every daemon of the run, from `PORTWATCH_TEST_ATTACH` (`hook=type,...`):
/// `cargo xtask vm-test` runs the suite once more with kprobes forced.
fn forced_attach_args() -> Vec<String> {
    std::env::var("PORTWATCH_TEST_ATTACH")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .flat_map(|s| ["--attach".to_owned(), s.to_owned()])
        .collect()
}

/// The attach types the running kernel should give each hook (`hook=type,...`):
/// `PORTWATCH_EXPECT_ATTACH` in qemu guests; else what this machine's facts imply (see
/// `machine_attach`).
pub fn expected_attach() -> Vec<(String, String)> {
    std::env::var("PORTWATCH_EXPECT_ATTACH")
        .unwrap_or_else(|_| machine_attach())
        .split(',')
        .filter_map(|s| s.split_once('='))
        .map(|(h, t)| (h.to_owned(), t.to_owned()))
        .collect()
}

/// The best attach types for bind, listen and accept, from facts read independently of
/// portwatch: kernel lockdown refuses BPF trampolines (fentry), and kprobes need a kernel that
/// has them (their event source). close always has its BTF tracepoint on kernels with BTF.
fn machine_attach() -> String {
    let function = if lockdown().is_none_or(|mode| mode == "none") {
        "fentry"
    } else if kprobes_available() {
        "kprobe"
    } else {
        "tracepoint"
    };
    format!(
        "bind={function},listen={function},accept={function},close=tp_btf,exec=tracepoint,exit=tracepoint"
    )
}

pub fn kprobes_available() -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

/// The kernel lockdown mode (`none`, `integrity`, `confidentiality`), from securityfs, mounted
/// for the occasion where it is not; None when the kernel has no lockdown support.
pub fn lockdown() -> Option<String> {
    let read = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("lockdown")).ok()?;
        // "none [integrity] confidentiality": the bracketed one is in force.
        let mode = text.split_once('[')?.1.split_once(']')?.0;
        Some(mode.to_owned())
    };
    if let Some(mode) = read(Path::new("/sys/kernel/security")) {
        return Some(mode);
    }
    let dir = std::env::temp_dir().join(format!("portwatch-securityfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: valid NUL-terminated strings; unmounted below.
    let mounted = unsafe {
        libc::mount(
            c"none".as_ptr(),
            target.as_ptr(),
            c"securityfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    } == 0;
    let mode = if mounted { read(&dir) } else { None };
    if mounted {
        // SAFETY: the mount made above.
        unsafe { libc::umount(target.as_ptr()) };
    }
    let _ = std::fs::remove_dir(&dir);
    mode
}

/// The inode of this process's file descriptor `fd` (a socket's, as portwatch reports it).
pub fn fd_inode(fd: i32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
}

/// RFC 3339 UTC with 9 fractional digits (portwatch's format) to ns since the epoch.
pub fn parse_time(s: &str) -> u64 {
    let t = humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("bad time {s}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A C helper from tests/helpers, compiled once per test run.
fn c_helper(name: &'static str) -> &'static Path {
    static HELPERS: std::sync::Mutex<Vec<(&'static str, &'static Path)>> =
        std::sync::Mutex::new(Vec::new());
    let mut built = HELPERS.lock().unwrap();
    if let Some((_, path)) = built.iter().find(|(n, _)| *n == name) {
        return path;
    }
    let file = format!("pw-{}", name.replace('_', "-"));
    // Prebuilt (in a guest without a compiler, `cargo xtask vm-test` puts them there).
    if let Some(dir) = std::env::var_os("PORTWATCH_TEST_HELPERS") {
        let path: &'static Path = Box::leak(Path::new(&dir).join(&file).into_boxed_path());
        built.push((name, path));
        return path;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/helpers/{name}.c"));
    let dir = std::env::temp_dir().join(format!("portwatch-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Some tests run helpers as an unprivileged user: the directory must be reachable whatever
    // the umask.
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&dir, mode).unwrap();
    let out = dir.join(file);
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run cc (gcc is needed for the helpers)");
    assert!(status.success(), "compiling {}", src.display());
    let path: &'static Path = Box::leak(out.into_boxed_path());
    built.push((name, path));
    path
}

/// tests/helpers/listen_once.c: listens on a loopback port and exits at once.
pub fn listen_once_helper() -> &'static Path {
    c_helper("listen_once")
}

/// tests/helpers/bind_burst.c: waits for a line on stdin, then binds N UDP sockets.
pub fn bind_burst_helper() -> &'static Path {
    c_helper("bind_burst")
}

/// tests/helpers/hold_sockets.c: holds a TCP listener and a UDP socket until killed.
pub fn hold_sockets_helper() -> &'static Path {
    c_helper("hold_sockets")
}

/// A helper process that is killed when dropped, so a failing test leaves none behind.
pub struct Helper(pub Child);

impl Helper {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Kills it now and waits for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts tests/helpers/hold_sockets (as `uid` when given) and returns it with its (TCP, UDP)
/// ports once both sockets are open.
pub fn hold_sockets(args: &[String], uid: Option<u32>) -> (Helper, u16, u16) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(hold_sockets_helper());
    cmd.args(args).stdout(Stdio::piped());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut ports = line.split_whitespace().map(|p| p.parse::<u16>().unwrap());
    (Helper(child), ports.next().unwrap(), ports.next().unwrap())
}
