//! Whether the firewall lets traffic reach a listener: the verdict `state::firewall` gives for
//! the first packet of a new connection to the listener's address and port.
use std::sync::Arc;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every path through the rules accepts it (or no rule is on its way).
    Reachable,
    /// Every path drops or rejects it.
    Filtered,
    /// Some paths accept and some drop (a rule depends on what the listener does not tell, like
    /// the source address), or a rule or the ruleset could not be read.
    Unknown,
}

impl Status {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Reachable => "reachable",
            Self::Filtered => "filtered",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reachability {
    pub status: Status,
    /// The rule (or chain policy) that decided, as `family table chain handle N: rule`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    /// Why, in one line.
    pub reason: Arc<str>,
}

impl Reachability {
    pub fn unknown(reason: impl Into<Arc<str>>) -> Self {
        Self {
            status: Status::Unknown,
            rule: None,
            reason: reason.into(),
        }
    }
}
