//! The kernel programs' own diagnostics (which program sent a record, why a socket or task could
//! not be read), through aya-log. They exist only when asked for before load (`doctor
//! --verbose`): the loader sets aya-log's level global, and at level 0 the verifier drops the
//! logging branches, so a plain `watch` runs none of them.
use std::sync::{Arc, Mutex, PoisonError};

use aya::Ebpf;
use aya_log::EbpfLogger;

use crate::error::{Error, Result};

/// aya-log's level global in the kernel object: 0 turns every log statement off.
pub const LEVEL_GLOBAL: &str = "AYA_LOG_LEVEL";
/// The level `doctor --verbose` loads with: everything the programs log (info and warnings).
pub const VERBOSE: u8 = log::Level::Info as u8;
pub const OFF: u8 = 0;

/// The reader of the programs' log ring. Lines collect until `take` hands them over; the
/// caller takes them every few milliseconds, so they are bounded by one ring's worth.
pub struct KernelLog {
    reader: EbpfLogger<Collect>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl KernelLog {
    pub fn open(ebpf: &mut Ebpf) -> Result<Self> {
        let lines = Arc::default();
        let reader = EbpfLogger::init_with_logger(ebpf, Collect(Arc::clone(&lines)))
            .map_err(|e| Error::Load(format!("the kernel programs' log: {e}")))?;
        Ok(Self { reader, lines })
    }

    /// Every line logged since the last call, oldest first.
    pub fn take(&mut self) -> Vec<String> {
        self.reader.flush();
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A `log::Log` that keeps the formatted lines instead of printing them.
struct Collect(Arc<Mutex<Vec<String>>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!(
            "{}: {}",
            record.level().as_str().to_lowercase(),
            record.args()
        );
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}
