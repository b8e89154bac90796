//! Load generators for the benchmark, run as child processes of `cargo xtask bench` (hidden
//! `loadgen` subcommand) so that a tracer can tell their events apart and their rate is measured
//! on their own. Each waits for a line on stdin, runs for the given time (optionally capped to a
//! rate), and prints how many operations it made and in how many seconds. Loopback only.
use std::{
    io::{BufRead, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Load {
    /// Clients connect to one server that accepts (and closes) as fast as it can.
    Accept,
    /// socket, bind 127.0.0.1:0, listen, close.
    Listen4,
    /// The same over IPv6 (::1).
    Listen6,
    /// UDP socket, bind 127.0.0.1:0, close.
    UdpBind,
    /// `PROCESSES` short-lived processes, one after the other, each listening once (a new
    /// program each: exec, bind, listen, exit).
    Processes,
}

/// How many processes the `Processes` load starts.
pub const PROCESSES: u64 = 300;

/// Spreads `ops` evenly over time when capped.
struct Pacer {
    start: Instant,
    per_op: Option<Duration>,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Self {
        Self {
            start: Instant::now(),
            per_op: rate.map(|r| Duration::from_secs_f64(1.0 / r as f64)),
        }
    }

    fn wait(&self, done: u64) {
        if let Some(per_op) = self.per_op {
            let due = self.start + per_op * u32::try_from(done).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

pub fn run(load: Load, seconds: f64, rate: Option<u64>, count: Option<u64>) -> Result<()> {
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let ops = match load {
        Load::Accept => accept_storm(deadline, rate)?,
        Load::Listen4 | Load::Listen6 | Load::UdpBind => {
            churn(load, deadline, rate, count.unwrap_or(u64::MAX))?
        }
        Load::Processes => processes(deadline)?,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ops} {}", start.elapsed().as_secs_f64())?;
    Ok(())
}

fn churn(load: Load, deadline: Instant, rate: Option<u64>, count: u64) -> Result<u64> {
    let pacer = Pacer::new(rate);
    let mut ops = 0u64;
    while Instant::now() < deadline && ops < count {
        for _ in 0..64 {
            match load {
                _ if ops >= count => break,
                Load::Listen4 => drop(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?),
                Load::Listen6 => drop(TcpListener::bind((Ipv6Addr::LOCALHOST, 0))?),
                Load::UdpBind => drop(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?),
                Load::Accept | Load::Processes => bail!("not a churn load"),
            }
            ops += 1;
            pacer.wait(ops);
        }
    }
    Ok(ops)
}

fn processes(deadline: Instant) -> Result<u64> {
    let me = std::env::current_exe()?;
    let mut ops = 0;
    while ops < PROCESSES && Instant::now() < deadline {
        let status = std::process::Command::new(&me)
            .arg("listen-once")
            .status()?;
        if !status.success() {
            bail!("listen-once failed: {status}");
        }
        ops += 1;
    }
    Ok(ops)
}

/// The body of one process of the `Processes` load.
pub fn listen_once() -> Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    drop(listener);
    Ok(())
}

/// Listens on a loopback port, prints it once listening, holds it for `seconds`.
pub fn listen_hold(seconds: f64) -> Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", listener.local_addr()?.port())?;
    out.flush()?;
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Ok(())
}

fn accept_storm(deadline: Instant, rate: Option<u64>) -> Result<u64> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr: SocketAddr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let pacer = Pacer::new(rate.map(|r| r / 2));
                let mut n = 0;
                let mut buf = [0u8; 1];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut c) = TcpStream::connect(addr) {
                        // Wait for the server's close, so TIME_WAIT stays on the server side
                        // and the client does not run out of ephemeral ports.
                        let _ = std::io::Read::read(&mut c, &mut buf);
                        n += 1;
                    }
                    pacer.wait(n);
                }
            })
        })
        .collect();
    let accepted = Arc::new(AtomicU64::new(0));
    let server = {
        let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if listener.accept().is_ok() {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let counted = accepted.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    // One more connection wakes a server blocked in accept.
    let _ = TcpStream::connect(addr);
    for c in clients {
        let _ = c.join();
    }
    let _ = server.join();
    Ok(counted)
}
