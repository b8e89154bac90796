//! The signals `watch` acts on once it has started. Until they are installed (at the end of
//! start-up) every signal keeps its default action, so SIGINT or SIGTERM ends start-up at once,
//! whatever step it is in: everything portwatch attached goes with its process, and nothing has
//! been counted yet. From then on every signal that would end it silently ends it with a `stop`
//! record instead, and SIGHUP reloads the baseline.
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::{Error, Result};

/// The signals that end `watch` with its `stop` record (its `reason`), besides SIGHUP.
pub const STOPPING: [(&str, SignalKind); 6] = [
    ("SIGINT", SignalKind::interrupt()),
    ("SIGTERM", SignalKind::terminate()),
    ("SIGQUIT", SignalKind::quit()),
    ("SIGUSR1", SignalKind::user_defined1()),
    ("SIGUSR2", SignalKind::user_defined2()),
    ("SIGALRM", SignalKind::alarm()),
];

pub enum Received {
    /// End with the `stop` record; the signal's name is its `reason`.
    Stop(&'static str),
    /// SIGHUP: read the baseline again.
    Reload,
}

pub struct Signals {
    stopping: Vec<(&'static str, Signal)>,
    hangup: Signal,
}

impl Signals {
    pub fn install() -> Result<Self> {
        let handler = |name: &str, kind| {
            signal(kind).map_err(|e| Error::io(format!("installing the {name} handler"), e))
        };
        let stopping = STOPPING
            .iter()
            .map(|&(name, kind)| Ok((name, handler(name, kind)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            stopping,
            hangup: handler("SIGHUP", SignalKind::hangup())?,
        })
    }

    /// The next signal received.
    pub async fn next(&mut self) -> Received {
        let stop = std::future::poll_fn(|cx| {
            for (name, s) in &mut self.stopping {
                if s.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        });
        tokio::select! {
            name = stop => Received::Stop(name),
            _ = self.hangup.recv() => Received::Reload,
        }
    }
}
