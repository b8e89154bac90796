//! One run of a load under a tracer: portwatch in a given configuration, or the bpftrace peer.
//! The tracer is started and given time to attach, the load runs, the tracer drains and stops;
//! what it delivered is counted from its output, its cost from /proc and the kernel's BPF
//! statistics.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{
    Case, kstats,
    procs::{cpu_ns, finish_load, go, peak_rss_kib, spawn_load, status_kib, wait_or_kill},
};

/// What traces the load.
#[derive(Clone, Copy)]
pub enum Tracer {
    /// `portwatch watch`, with `--events KIND` (None: as users run it, all events).
    Portwatch(Option<&'static str>),
    /// bpftrace printing `KIND PID` for each event of these kinds (all of portwatch's: None).
    Bpftrace(Option<&'static str>),
    /// bpftrace programs that do nothing, on the syscall tracepoints portwatch uses here: what
    /// merely enabling them costs (every syscall of every task then takes the slow path).
    Floor,
}

/// What one traced run measured.
pub struct Traced {
    pub ops: u64,
    pub rate: f64,
    /// The load's own events of its kind that the tracer delivered.
    pub seen: u64,
    /// Every line the tracer wrote while the load ran (all processes, all kinds).
    pub lines: u64,
    /// portwatch's `lost_total` from its stop record.
    pub lost: Option<u64>,
    pub cpu_ns: u64,
    pub peak_rss_kib: u64,
    pub final_rss_kib: u64,
    /// Per program, when the kernel's BPF statistics were on.
    pub kernel: Vec<(String, kstats::Prog)>,
}

impl Traced {
    pub fn kernel_ns(&self) -> u64 {
        self.kernel.iter().map(|(_, p)| p.ns).sum()
    }
}

/// The bpftrace script: the same tracepoints portwatch uses on this kernel for each kind
/// (closes: TCP's state change to CLOSE only; this kernel has no kprobes, and portwatch's UDP close
/// is a cgroup program, which bpftrace cannot attach).
fn bpftrace_script(kinds: Option<&str>, by_parent: bool) -> String {
    let who = if by_parent {
        "curtask->real_parent->tgid"
    } else {
        "pid"
    };
    let probes = [
        ("bind", "tracepoint:syscalls:sys_exit_bind"),
        ("listen", "tracepoint:syscalls:sys_exit_listen"),
        (
            "accept",
            "tracepoint:syscalls:sys_exit_accept, tracepoint:syscalls:sys_exit_accept4 /args->ret >= 0/",
        ),
        (
            "close",
            "tracepoint:sock:inet_sock_set_state /args->newstate == 7/",
        ),
    ];
    probes
        .iter()
        .filter(|(kind, _)| kinds.is_none_or(|k| k == *kind))
        .map(|(kind, probe)| format!("{probe} {{ printf(\"{kind} %d\\n\", {who}); }}\n"))
        .collect()
}

pub(super) fn start(tracer: Tracer, by_parent: bool, portwatch: &Path) -> Result<Child> {
    let mut cmd = match tracer {
        Tracer::Portwatch(events) => {
            let mut c = Command::new(portwatch);
            c.arg("watch");
            if let Some(kind) = events {
                c.args(["--events", kind]);
            }
            c
        }
        Tracer::Bpftrace(kinds) => {
            let mut c = Command::new("bpftrace");
            c.args(["-e", &bpftrace_script(kinds, by_parent)]);
            c
        }
        Tracer::Floor => {
            let probes: Vec<String> = ["bind", "listen", "accept", "accept4"]
                .iter()
                .flat_map(|call| {
                    ["enter", "exit"].map(|end| format!("tracepoint:syscalls:sys_{end}_{call}"))
                })
                .collect();
            let mut c = Command::new("bpftrace");
            c.args(["-e", &format!("{} /pid == 0/ {{ }}", probes.join(", "))]);
            c
        }
    };
    Ok(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?)
}

/// Returns once the tracer is attached, from its first line on stdout: portwatch's start record
/// is written after its last hook attached (then a second for its snapshot); bpftrace's
/// `Attaching N probes...` before it attaches (then two more).
pub(super) fn attached(
    t: &mut Child,
    tracer: Tracer,
    first_line: mpsc::Receiver<()>,
) -> Result<()> {
    let stderr = t.stderr.take().context("tracer stderr")?;
    thread::spawn(move || std::io::copy(&mut BufReader::new(stderr), &mut std::io::sink()));
    first_line
        .recv_timeout(Duration::from_secs(60))
        .context("the tracer wrote nothing in a minute")?;
    thread::sleep(Duration::from_secs(match tracer {
        Tracer::Portwatch(_) => 1,
        Tracer::Bpftrace(_) | Tracer::Floor => 2,
    }));
    if t.try_wait()?.is_some() {
        bail!("the tracer exited during start-up");
    }
    Ok(())
}

/// What the line counter found.
struct Counted {
    seen: u64,
    lost: Option<u64>,
}

/// Counts the tracer's output lines, and those that are the load's events of `event`. Cheap per
/// line (bytes, no allocation; portwatch's `event` and `pid` looked for only in the line's first
/// bytes, where they are): this reader shares the cores with the load and the tracer, and must
/// never be what holds the tracer back.
fn count_lines(
    t: &mut Child,
    tracer: Tracer,
    case: &Case,
    pid: u32,
    first_line: mpsc::Sender<()>,
    lines: Arc<AtomicU64>,
) -> Result<thread::JoinHandle<Counted>> {
    use memchr::memmem::Finder;
    let out = t.stdout.take().context("tracer stdout")?;
    let portwatch = matches!(tracer, Tracer::Portwatch(_));
    let by_parent = case.by_parent;
    let (event, target) = if portwatch {
        let key = if by_parent { "ppid" } else { "pid" };
        (
            format!("\"event\":\"{}\"", case.event),
            format!("\"{key}\":{pid},"),
        )
    } else {
        (String::new(), format!("{} {pid}\n", case.event))
    };
    Ok(thread::spawn(move || {
        let mut c = Counted {
            seen: 0,
            lost: None,
        };
        let mut reader = BufReader::with_capacity(1 << 20, out);
        let mut line = Vec::with_capacity(4096);
        let (event, target) = (Finder::new(&event), Finder::new(&target));
        let stop = Finder::new("\"event\":\"stop\"");
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if lines.fetch_add(1, Ordering::Relaxed) == 0 {
                let _ = first_line.send(());
            }
            if !portwatch {
                c.seen += u64::from(line == target.needle());
            } else {
                // `{"seq":N,"event":"bind","time":"...","pid":P,"tid":..,` (ppid comes later).
                let head = &line[..line.len().min(if by_parent { line.len() } else { 160 })];
                if event.find(head).is_some() && target.find(head).is_some() {
                    c.seen += 1;
                } else if stop.find(&line[..line.len().min(64)]).is_some() {
                    c.lost = String::from_utf8_lossy(&line)
                        .split("\"lost_total\":")
                        .nth(1)
                        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
                }
            }
            line.clear();
        }
        c
    }))
}

/// Runs `case` once under `tracer`; with `kernel_stats`, the kernel's BPF statistics are read
/// around the load (they must be on: `kstats::Enabled`).
pub fn run(
    case: &Case,
    seconds: f64,
    tracer: Tracer,
    portwatch: &Path,
    kernel_stats: bool,
) -> Result<Traced> {
    let mut load = spawn_load(case.load, case.rate, seconds)?;
    let mut t = start(tracer, case.by_parent, portwatch)?;
    let (first_tx, first_rx) = mpsc::channel();
    let lines = Arc::new(AtomicU64::new(0));
    let counter = count_lines(
        &mut t,
        tracer,
        case,
        load.id(),
        first_tx,
        Arc::clone(&lines),
    )?;
    if let Err(e) = attached(&mut t, tracer, first_rx) {
        let _ = t.kill();
        let _ = load.kill();
        return Err(e);
    }
    let before = cpu_ns(t.id());
    let lines_before = lines.load(Ordering::Relaxed);
    let progs_before = kernel_stats.then(|| kstats::sample(t.id()));
    go(&mut load)?;
    let (ops, rate) = finish_load(load)?;
    thread::sleep(Duration::from_millis(500)); // let the tracer drain
    let cpu_ns = cpu_ns(t.id()).saturating_sub(before);
    let lines = lines.load(Ordering::Relaxed) - lines_before;
    let kernel = progs_before
        .map(|b| kstats::delta(&b, &kstats::sample(t.id())))
        .unwrap_or_default();
    let peak_rss_kib = peak_rss_kib(t.id());
    let final_rss_kib = status_kib(t.id(), "VmRSS:");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.id() as i32, libc::SIGINT) };
    wait_or_kill(&mut t, Duration::from_secs(10))?;
    let c = counter
        .join()
        .map_err(|_| anyhow::anyhow!("counter thread"))?;
    Ok(Traced {
        ops,
        rate,
        seen: c.seen,
        lines,
        lost: c.lost,
        cpu_ns,
        peak_rss_kib,
        final_rss_kib,
        kernel,
    })
}

/// The same load with no tracer: its rate.
pub fn bare(case: &Case, seconds: f64) -> Result<f64> {
    let mut load = spawn_load(case.load, case.rate, seconds)?;
    go(&mut load)?;
    Ok(finish_load(load)?.1)
}
