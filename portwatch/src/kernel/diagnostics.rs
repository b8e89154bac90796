//! The kernel programs' own diagnostics (which program sent a record, why a socket or task could
//! not be read), through aya-log. They exist only when asked for before load (`doctor
//! --verbose`): the loader sets aya-log's level global, and at level 0 the verifier drops the
//! logging branches, so a plain `watch` runs none of them.
use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::Ebpf;
use aya_log::EbpfLogger;

use crate::error::{Error, Result};

/// aya-log's level global in the kernel object: 0 turns every log statement off.
pub const LEVEL_GLOBAL: &str = "AYA_LOG_LEVEL";
/// aya-log's ring buffer in the kernel object.
pub const LOG_MAP: &str = "AYA_LOGS";
/// The level `doctor --verbose` loads with: everything the programs log (info and warnings).
pub const VERBOSE: u8 = log::Level::Info as u8;
pub const OFF: u8 = 0;
/// The log ring's size: 4 MiB when the programs log (every program on a busy host does, for
/// every record), one page when they cannot.
pub const RING_BYTES_VERBOSE: u32 = 4 << 20;
pub const RING_BYTES_OFF: u32 = 4096;

/// How often the reader thread empties the log ring.
const POLL: Duration = Duration::from_millis(10);

/// The programs' log, read by a thread of its own so that the ring cannot fill while the caller
/// is busy elsewhere. The programs log for every process on the host; only the lines about the
/// process named with `keep_pid` are kept (every line starts with `pid N `, see the eBPF
/// crate's `diag`), so memory holds that process's lines only.
pub struct KernelLog {
    reader: Arc<Mutex<EbpfLogger<Collect>>>,
    lines: Arc<Mutex<Vec<String>>>,
    pid: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KernelLog {
    pub fn open(ebpf: &mut Ebpf) -> Result<Self> {
        let lines = Arc::default();
        let pid = Arc::new(AtomicU32::new(0));
        let collect = Collect {
            lines: Arc::clone(&lines),
            pid: Arc::clone(&pid),
        };
        let reader = EbpfLogger::init_with_logger(ebpf, collect)
            .map_err(|e| Error::Load(format!("the kernel programs' log: {e}")))?;
        let reader = Arc::new(Mutex::new(reader));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (reader, stop) = (Arc::clone(&reader), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("kernel-log".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        lock(&reader).flush();
                        std::thread::sleep(POLL);
                    }
                })
                .map_err(|e| Error::io("starting the kernel log reader", e))?
        };
        Ok(Self {
            reader,
            lines,
            pid,
            stop,
            thread: Some(thread),
        })
    }

    /// Keeps the lines about process `pid` from now on.
    pub fn keep_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// Every line kept since the last call, oldest first (the ring emptied first).
    pub fn take(&mut self) -> Vec<String> {
        lock(&self.reader).flush();
        std::mem::take(&mut *lock(&self.lines))
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `log::Log` that keeps the formatted lines about one process instead of printing them.
struct Collect {
    lines: Arc<Mutex<Vec<String>>>,
    pid: Arc<AtomicU32>,
}

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let pid = self.pid.load(Ordering::Relaxed);
        if pid == 0 {
            return;
        }
        let text = record.args().to_string();
        if text.starts_with(&format!("pid {pid} ")) {
            let level = record.level().as_str().to_lowercase();
            lock(&self.lines).push(format!("{level}: {text}"));
        }
    }

    fn flush(&self) {}
}
