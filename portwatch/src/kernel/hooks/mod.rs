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

mod attach;
mod choose;
mod table;

pub use attach::attach_all;
pub use choose::choose;
pub use table::HOOKS;

pub use crate::model::attach::{AttachType, Chosen, Refusal};

/// Where one program goes.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// `name`, or where it holds alternatives (`a|b`: a tracepoint renamed between kernels,
    /// with the same first argument), the first this kernel has.
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
    /// A cgroup socket program (its attach point is in its section name) on the v2 root.
    Cgroup {
        attach: &'static str,
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
            Self::Cgroup { attach } => write!(f, "cgroup/{attach}"),
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
    /// Hooks whose syscall tracepoints this one completes (calls that bypass the syscalls):
    /// attached only when one of them is on its tracepoints. Empty: no such condition.
    pub completes: &'static [&'static str],
}

/// The help of `--attach`, from the hook table.
///
/// The README's hook table is checked against the hook table too (`tests::readme_...`).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's "How it works" table names every hook with its attach types, best first,
    /// as the hook table has them (the README is documentation of this table, so it is
    /// checked against it).
    #[test]
    fn the_readme_hook_table_agrees_with_the_hook_table() {
        let readme = include_str!("../../../../README.md");
        for hook in HOOKS {
            let types: Vec<_> = hook.options.iter().map(|o| o.attach.name()).collect();
            let name = if hook.required {
                hook.name.to_owned()
            } else {
                format!("{} (optional)", hook.name)
            };
            let row = format!("| {name} | {} |", types.join(", "));
            assert!(
                readme.contains(&row),
                "README lacks the row starting `{row}`"
            );
        }
    }

    #[test]
    fn attach_types_parse_back_from_their_names() {
        for a in AttachType::ALL {
            assert_eq!(a.name().parse::<AttachType>(), Ok(a));
        }
        assert!(
            "uprobe"
                .parse::<AttachType>()
                .unwrap_err()
                .contains("fentry, kprobe, tp_btf, tracepoint, cgroup")
        );
    }
}
