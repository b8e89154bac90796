//! The event loop's timing: how the ring is drained in batches after a wake-up (`Batch`), and
//! the thread that notices stdout's reader going (`stdout_hangup`).
use std::{io, os::fd::AsRawFd, time::Duration};

use super::{DRAIN, TICK};
use crate::{clock::Clock, error::Result};

/// The drains of one burst of records: from the kernel's wake-up to the drain that finds the ring
/// empty.
#[derive(Default)]
pub(super) struct Batch {
    /// When the ring is drained next (None: the daemon is idle, waiting for a wake-up).
    pub next_drain: Option<tokio::time::Instant>,
    /// Wake-ups since the last drain.
    wakes: u32,
    last_tick: Option<tokio::time::Instant>,
}

impl Batch {
    /// A wake-up from the kernel; true when the ring is to be drained now. Idle, always. In a
    /// batch, the first wake-up after a drain is the kernel's for the first record since (the
    /// adaptive rule), and waits for the next drain; a second one comes only from a ring past its
    /// wake-up threshold, which must not wait.
    pub fn woken(&mut self) -> bool {
        self.wakes += 1;
        self.next_drain.is_none() || self.wakes > 1
    }

    /// After a drain: keep draining while it found records, and check counters every TICK;
    /// when it found none, check them once more and go idle.
    pub fn drained<S: crate::output::sink::Sink>(
        &mut self,
        records: usize,
        stream: &mut crate::pipeline::stream::Stream<S>,
        clock: &mut Clock,
    ) -> Result<()> {
        let now = tokio::time::Instant::now();
        self.wakes = 0;
        let tick_due = self.last_tick.is_none_or(|t| now - t >= TICK);
        if records == 0 || tick_due {
            *clock = Clock::now();
            stream.tick(clock)?;
            self.last_tick = Some(now);
        } else {
            stream.flush()?;
        }
        // A full batch: the ring holds more, drained at once (after what else is ready).
        self.next_drain = match records {
            0 => None,
            crate::pipeline::stream::BATCH => Some(now),
            _ => Some(now + DRAIN),
        };
        Ok(())
    }
}

pub(super) fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// Resolves when stdout is a pipe whose reader has gone (`portwatch watch | head -1`), so a quiet
/// host does not keep portwatch running until the next event fails to write. A thread blocked in
/// poll(2) for that alone: it wakes for nothing else (poll's wake-ups are filtered by the events
/// asked for), where checking on a timer would wake the daemon for nothing.
pub(super) fn stdout_hangup() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watcher = std::thread::Builder::new()
        .name("stdout-hangup".into())
        .spawn(move || {
            let mut pfd = libc::pollfd {
                fd: io::stdout().as_raw_fd(),
                events: 0,
                revents: 0,
            };
            loop {
                // SAFETY: one valid pollfd; no timeout.
                let n = unsafe { libc::poll(&mut pfd, 1, -1) };
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if n == 1 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    let _ = tx.send(());
                }
                // Anything else (no stdout at all): the sender goes and the watch with it.
                return;
            }
        });
    if watcher.is_err() {
        eprintln!(
            "portwatch: warning: cannot start the thread that watches stdout; a closed reader is \
             noticed at the next write"
        );
    }
    rx
}
