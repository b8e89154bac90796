//! What judging a record found (`detect`, the baseline), and how much that asks of a reader:
//! one `Level` per record, from which every format's severity and syslog's priority are taken.
use serde::Serialize;

/// A detection's severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// One rule's finding on one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub name: &'static str,
    pub severity: Severity,
    /// The MITRE ATT&CK technique, when the finding is a sign of one (a health finding, such
    /// as a CLOSE_WAIT leak, is not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technique: Option<&'static str>,
    /// One line naming the evidence.
    pub reason: String,
}

/// How much a record asks of its reader: the worst detection's severity, else `Notable` for
/// what must be looked at without one (a baseline alert, lost events, a flood), else `Info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    #[default]
    Info,
    Notable,
    Medium,
    High,
    Critical,
}

impl Level {
    /// The level of a judged record: its worst detection, else `Notable` if the baseline
    /// alerted.
    pub fn judged(alert: bool, detections: &[Detection]) -> Self {
        match detections.iter().map(|d| d.severity).max() {
            Some(worst) => worst.into(),
            None if alert => Self::Notable,
            None => Self::Info,
        }
    }

    /// RFC 5424's severity: critical 2, error 3, warning 4, informational 6.
    pub const fn syslog(self) -> u32 {
        match self {
            Self::Critical => 2,
            Self::High => 3,
            Self::Medium | Self::Notable => 4,
            Self::Info => 6,
        }
    }
}

impl From<Severity> for Level {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Medium => Self::Medium,
            Severity::High => Self::High,
            Severity::Critical => Self::Critical,
        }
    }
}

/// Everything judging found on one record (`judge`).
#[derive(Clone, Debug, Default)]
pub struct Verdicts {
    /// Why the baseline does not allow a new listener.
    pub alert: Option<String>,
    pub detections: Vec<Detection>,
    /// Whether the firewall lets a new connection reach a new listener.
    pub reachability: Option<super::reach::Reachability>,
}

impl Verdicts {
    /// Detections alone.
    pub fn found(detections: Vec<Detection>) -> Self {
        Self {
            detections,
            ..Self::default()
        }
    }
}
