//! How portwatch is attached to the kernel: the attach types, and what start-up chose for each
//! hook (reported in the `start` record). The hook table itself is `kernel::hooks`.
use std::{fmt, str::FromStr};

use serde::Serialize;

/// How a program is attached, best first when listed in a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachType {
    /// BPF trampolines on kernel functions: typed arguments and the return value, cheapest.
    Fentry,
    /// kprobe/kretprobe on kernel functions: the same functions where trampolines are refused.
    Kprobe,
    /// BTF-enabled raw tracepoint: typed kernel arguments, no tracefs record to copy.
    TpBtf,
    /// Classic tracepoint: stable record fields, the most widely available.
    Tracepoint,
    /// cgroup socket programs on the cgroup v2 root, through BPF links (gone when portwatch is).
    Cgroup,
}

impl AttachType {
    pub const ALL: [Self; 5] = [
        Self::Fentry,
        Self::Kprobe,
        Self::TpBtf,
        Self::Tracepoint,
        Self::Cgroup,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::TpBtf => "tp_btf",
            Self::Tracepoint => "tracepoint",
            Self::Cgroup => "cgroup",
        }
    }
}

impl fmt::Display for AttachType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttachType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.map(Self::name).into();
                format!("unknown attach type `{s}` (known: {})", known.join(", "))
            })
    }
}

/// What start-up chose for one hook, reported in the `start` record.
#[derive(Clone, Debug, Serialize)]
pub struct Chosen {
    pub hook: &'static str,
    /// None when an optional hook could not attach at all.
    pub attach: Option<AttachType>,
    pub targets: Vec<String>,
    /// Better attach types that were tried and refused, with the kernel's reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
    /// Why the hook was not attached at all when no event selected with `--events` needs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    /// An optional hook that could not attach: what portwatch cannot see without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Refusal {
    pub attach: AttachType,
    pub error: String,
}
