//! The hook table: for each thing portwatch watches, the ways of attaching to it in order of
//! preference, and the choice of the best one the running kernel accepts.
//!
//! bind, listen and accept prefer the kernel functions that do the work (fentry/fexit, then
//! kprobe/kretprobe): they also see calls that bypass the syscalls (io_uring, in-kernel sockets).
//! The syscall tracepoints come last: they load everywhere, including locked-down kernels that
//! refuse both (lockdown blocks BPF trampolines; some kernels are built without kprobes).
//!
//! `table` lists the hooks, `choose` is the pure selection policy, `attach` does the aya work.
use std::{fmt, str::FromStr};

use portwatch_common::EventKind;
use serde::Serialize;

mod attach;
mod choose;
mod table;

pub use attach::attach_all;
pub use choose::choose;
pub use table::HOOKS;

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
}

impl AttachType {
    pub const ALL: [Self; 4] = [Self::Fentry, Self::Kprobe, Self::TpBtf, Self::Tracepoint];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::TpBtf => "tp_btf",
            Self::Tracepoint => "tracepoint",
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

/// Where one program goes.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    BtfTracepoint {
        name: &'static str,
    },
    Fentry {
        function: &'static str,
    },
    Fexit {
        function: &'static str,
    },
    Kprobe {
        function: &'static str,
    },
    Kretprobe {
        function: &'static str,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tracepoint { category, name } => write!(f, "{category}/{name}"),
            Self::BtfTracepoint { name } => f.write_str(name),
            Self::Fentry { function } => write!(f, "fentry/{function}"),
            Self::Fexit { function } => write!(f, "fexit/{function}"),
            Self::Kprobe { function } => write!(f, "kprobe/{function}"),
            Self::Kretprobe { function } => write!(f, "kretprobe/{function}"),
        }
    }
}

/// One program of an attach option.
#[derive(Clone, Copy, Debug)]
pub struct Program {
    pub program: &'static str,
    pub target: Target,
}

/// One way of implementing a hook: all its programs attach, or none do.
#[derive(Clone, Copy, Debug)]
pub struct AttachOption {
    pub attach: AttachType,
    pub programs: &'static [Program],
}

#[derive(Clone, Copy, Debug)]
pub struct Hook {
    pub name: &'static str,
    /// A required hook that cannot attach stops start-up; an optional one is reported and skipped.
    pub required: bool,
    /// The event kinds that need it: it is not attached when `--events` selects none of them.
    pub serves: &'static [EventKind],
    /// What portwatch cannot see without it, said when it cannot attach.
    pub without: &'static str,
    pub options: &'static [AttachOption],
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

/// The help of `--attach`, from the hook table.
pub fn attach_help() -> String {
    let hooks: Vec<String> = HOOKS
        .iter()
        .map(|h| {
            let types: Vec<_> = h.options.iter().map(|o| o.attach.name()).collect();
            format!("{} ({})", h.name, types.join(", "))
        })
        .collect();
    format!(
        "Use attach type TYPE for HOOK instead of the best one the kernel accepts, e.g. \
         `--attach close=tracepoint`. Repeatable. Hooks and their types, best first: {}",
        hooks.join("; ")
    )
}

/// `--attach HOOK=TYPE`: use TYPE for HOOK instead of the best one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forced {
    pub hook: &'static str,
    pub attach: AttachType,
}

impl FromStr for Forced {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (hook, attach) = s
            .split_once('=')
            .ok_or_else(|| format!("expected HOOK=TYPE, got `{s}`"))?;
        let hook = HOOKS.iter().find(|h| h.name == hook).ok_or_else(|| {
            let known: Vec<_> = HOOKS.iter().map(|h| h.name).collect();
            format!("unknown hook `{hook}` (known: {})", known.join(", "))
        })?;
        let attach: AttachType = attach.parse()?;
        if !hook.options.iter().any(|o| o.attach == attach) {
            let have: Vec<_> = hook.options.iter().map(|o| o.attach.name()).collect();
            return Err(format!(
                "hook `{}` has no {attach} variant (it has: {})",
                hook.name,
                have.join(", ")
            ));
        }
        Ok(Self {
            hook: hook.name,
            attach,
        })
    }
}
