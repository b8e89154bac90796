//! The hook table: for each thing portwatch watches, the ways of attaching to it in order of
//! preference, and the choice of the best one the running kernel accepts.
//!
//! bind, listen and accept prefer the kernel functions that do the work (fentry/fexit, then
//! kprobe/kretprobe): they also see calls that bypass the syscalls (io_uring, in-kernel sockets).
//! The syscall tracepoints come last: they load everywhere, including locked-down kernels that
//! refuse both (lockdown blocks BPF trampolines; some kernels are built without kprobes).
use std::{fmt, path::Path, str::FromStr};

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, FExit, KProbe, ProgramError, TracePoint},
};
use portwatch_common::{EventKind, names};
use serde::Serialize;

use crate::error::{Error, Result};

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
        match s {
            "fentry" => Ok(Self::Fentry),
            "kprobe" => Ok(Self::Kprobe),
            "tp_btf" => Ok(Self::TpBtf),
            "tracepoint" => Ok(Self::Tracepoint),
            other => Err(format!(
                "unknown attach type `{other}` (known: fentry, kprobe, tp_btf, tracepoint)"
            )),
        }
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

const fn syscall(program: &'static str) -> Program {
    Program {
        program,
        target: Target::Tracepoint {
            category: "syscalls",
            name: program,
        },
    }
}

const fn on(program: &'static str, target: Target) -> Program {
    Program { program, target }
}

/// Entry and exit programs on kernel function `f`, as fentry/fexit or kprobe/kretprobe.
const fn fentry(f: &'static str, entry: &'static str, exit: &'static str) -> [Program; 2] {
    [
        on(entry, Target::Fentry { function: f }),
        on(exit, Target::Fexit { function: f }),
    ]
}

const fn kprobe(f: &'static str, entry: &'static str, exit: &'static str) -> [Program; 2] {
    [
        on(entry, Target::Kprobe { function: f }),
        on(exit, Target::Kretprobe { function: f }),
    ]
}

const fn concat(a: [Program; 2], b: [Program; 2]) -> [Program; 4] {
    [a[0], a[1], b[0], b[1]]
}

/// IPv4 and IPv6 sockets bind through different functions.
const BIND_FENTRY: [Program; 4] = concat(
    fentry("inet_bind", names::BIND_FENTRY, names::BIND_FEXIT),
    fentry("inet6_bind", names::BIND6_FENTRY, names::BIND6_FEXIT),
);
const BIND_KPROBE: [Program; 4] = concat(
    kprobe("inet_bind", names::BIND_KPROBE, names::BIND_KRETPROBE),
    kprobe("inet6_bind", names::BIND6_KPROBE, names::BIND6_KRETPROBE),
);
const LISTEN_FENTRY: [Program; 2] = fentry(
    "inet_csk_listen_start",
    names::LISTEN_FENTRY,
    names::LISTEN_FEXIT,
);
const LISTEN_KPROBE: [Program; 2] = kprobe(
    "inet_csk_listen_start",
    names::LISTEN_KPROBE,
    names::LISTEN_KRETPROBE,
);
const ACCEPT_FENTRY: [Program; 2] =
    fentry("inet_csk_accept", names::ACCEPT_FENTRY, names::ACCEPT_FEXIT);
const ACCEPT_KPROBE: [Program; 2] = kprobe(
    "inet_csk_accept",
    names::ACCEPT_KPROBE,
    names::ACCEPT_KRETPROBE,
);

const SOCKET_EVENTS: [EventKind; 4] = [
    EventKind::Bind,
    EventKind::Listen,
    EventKind::Accept,
    EventKind::Close,
];

/// Besides its own events, the listen hook serves close (a listen in flight tells a failed
/// listen from a close) and accept serves close too (the connections a listener accepted).
pub const HOOKS: &[Hook] = &[
    Hook {
        name: "bind",
        required: true,
        serves: &[EventKind::Bind],
        without: "bind events cannot be seen",
        options: &[
            AttachOption {
                attach: AttachType::Fentry,
                programs: &BIND_FENTRY,
            },
            AttachOption {
                attach: AttachType::Kprobe,
                programs: &BIND_KPROBE,
            },
            AttachOption {
                attach: AttachType::Tracepoint,
                programs: &[syscall(names::BIND_ENTER), syscall(names::BIND_EXIT)],
            },
        ],
    },
    Hook {
        name: "listen",
        required: true,
        serves: &[EventKind::Listen, EventKind::Close],
        without: "listen events cannot be seen (and close needs them)",
        options: &[
            AttachOption {
                attach: AttachType::Fentry,
                programs: &LISTEN_FENTRY,
            },
            AttachOption {
                attach: AttachType::Kprobe,
                programs: &LISTEN_KPROBE,
            },
            AttachOption {
                attach: AttachType::Tracepoint,
                programs: &[syscall(names::LISTEN_ENTER), syscall(names::LISTEN_EXIT)],
            },
        ],
    },
    Hook {
        name: "accept",
        required: true,
        serves: &[EventKind::Accept, EventKind::Close],
        without: "accept events cannot be seen (and close counts them)",
        options: &[
            AttachOption {
                attach: AttachType::Fentry,
                programs: &ACCEPT_FENTRY,
            },
            AttachOption {
                attach: AttachType::Kprobe,
                programs: &ACCEPT_KPROBE,
            },
            AttachOption {
                attach: AttachType::Tracepoint,
                programs: &[
                    syscall(names::ACCEPT_ENTER),
                    syscall(names::ACCEPT_EXIT),
                    syscall(names::ACCEPT4_ENTER),
                    syscall(names::ACCEPT4_EXIT),
                ],
            },
        ],
    },
    Hook {
        name: "close",
        required: true,
        serves: &[EventKind::Close],
        without: "close events cannot be seen",
        options: &[
            AttachOption {
                attach: AttachType::TpBtf,
                programs: &[Program {
                    program: names::CLOSE_TP_BTF,
                    target: Target::BtfTracepoint {
                        name: "inet_sock_set_state",
                    },
                }],
            },
            AttachOption {
                attach: AttachType::Tracepoint,
                programs: &[Program {
                    program: names::CLOSE_TRACEPOINT,
                    target: Target::Tracepoint {
                        category: "sock",
                        name: "inet_sock_set_state",
                    },
                }],
            },
        ],
    },
    // Process life cycle, for exact executables and arguments of short-lived processes. Optional:
    // without them portwatch still reports every socket event, with the process read from /proc.
    Hook {
        name: "exec",
        required: false,
        serves: &SOCKET_EVENTS,
        without: "executables and arguments are read from /proc, so those of processes that exit at once are missing",
        options: &[AttachOption {
            attach: AttachType::Tracepoint,
            programs: &[Program {
                program: names::PROCESS_EXEC,
                target: Target::Tracepoint {
                    category: "sched",
                    name: "sched_process_exec",
                },
            }],
        }],
    },
    Hook {
        name: "exit",
        required: false,
        serves: &SOCKET_EVENTS,
        without: "exited processes are noticed only by a periodic /proc sweep, and UDP sockets that go with their owner are not reported",
        options: &[AttachOption {
            attach: AttachType::Tracepoint,
            programs: &[Program {
                program: names::PROCESS_EXIT,
                target: Target::Tracepoint {
                    category: "sched",
                    name: "sched_process_exit",
                },
            }],
        }],
    },
];

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
            format!("unknown hook `{hook}` (known: bind, listen, accept, close, exec, exit)")
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

/// Picks, for every hook that a `selected` event kind needs, the first option (or the forced
/// one) that `try_attach` accepts. `try_attach` must leave nothing attached when it fails.
pub fn choose<F>(
    hooks: &[Hook],
    forced: &[Forced],
    selected: impl Fn(EventKind) -> bool,
    mut try_attach: F,
) -> Result<Vec<Chosen>>
where
    F: FnMut(&AttachOption) -> Result<(), String>,
{
    let mut chosen = Vec::with_capacity(hooks.len());
    for hook in hooks {
        if !hook.serves.iter().any(|&k| selected(k)) {
            chosen.push(Chosen {
                hook: hook.name,
                attach: None,
                targets: Vec::new(),
                refused: Vec::new(),
                skipped: Some("no event kind selected with --events needs it"),
                missing: None,
            });
            continue;
        }
        let force = forced
            .iter()
            .find(|f| f.hook == hook.name)
            .map(|f| f.attach);
        let mut refused = Vec::new();
        let mut picked = None;
        for option in hook.options {
            if force.is_some_and(|f| f != option.attach) {
                continue;
            }
            match try_attach(option) {
                Ok(()) => {
                    picked = Some(option);
                    break;
                }
                Err(error) => refused.push(Refusal {
                    attach: option.attach,
                    error,
                }),
            }
        }
        if picked.is_none() && hook.required {
            let attempts: Vec<String> = refused
                .iter()
                .map(|r| format!("{}: {}", r.attach, r.error))
                .collect();
            let others: Vec<&str> = SOCKET_EVENTS
                .iter()
                .filter(|k| !hook.serves.contains(k))
                .map(|k| k.name())
                .collect();
            return Err(Error::Hook {
                hook: hook.name,
                without: hook.without,
                attempts: attempts.join("; "),
                fix: format!(
                    "check that the kernel has BTF and tracepoints (CONFIG_FTRACE_SYSCALLS) and that tracefs is mounted, or watch without them (--events {})",
                    others.join(",")
                ),
            });
        }
        chosen.push(Chosen {
            hook: hook.name,
            attach: picked.map(|o| o.attach),
            targets: picked
                .map(|o| o.programs.iter().map(|p| p.target.to_string()).collect())
                .unwrap_or_default(),
            refused,
            skipped: None,
            missing: picked.is_none().then_some(hook.without),
        });
    }
    Ok(chosen)
}

/// Attaches the hooks in `HOOKS` that the `selected` event kinds need to the loaded object.
pub fn attach_all(
    ebpf: &mut Ebpf,
    btf: &Btf,
    forced: &[Forced],
    selected: impl Fn(EventKind) -> bool,
) -> Result<Vec<Chosen>> {
    choose(HOOKS, forced, selected, |option| {
        attach_option(ebpf, btf, option)
    })
}

fn attach_option(ebpf: &mut Ebpf, btf: &Btf, option: &AttachOption) -> Result<(), String> {
    for (i, p) in option.programs.iter().enumerate() {
        if let Err(e) = attach_program(ebpf, btf, p) {
            // All or nothing: unload what this option already attached.
            for done in &option.programs[..i] {
                if let Some(prog) = ebpf.program_mut(done.program) {
                    let _ = match prog {
                        aya::programs::Program::TracePoint(t) => t.unload(),
                        aya::programs::Program::BtfTracePoint(t) => t.unload(),
                        aya::programs::Program::FEntry(t) => t.unload(),
                        aya::programs::Program::FExit(t) => t.unload(),
                        aya::programs::Program::KProbe(t) => t.unload(),
                        _ => Ok(()),
                    };
                }
            }
            return Err(format!("{}: {e}", p.target));
        }
    }
    Ok(())
}

fn attach_program(ebpf: &mut Ebpf, btf: &Btf, p: &Program) -> Result<(), String> {
    let prog = ebpf
        .program_mut(p.program)
        .ok_or_else(|| format!("program {} is not in the object", p.program))?;
    let describe = |e: ProgramError| describe_program_error(&e);
    match p.target {
        Target::Tracepoint { category, name } => {
            let tp: &mut TracePoint = prog.try_into().map_err(describe)?;
            tp.load().map_err(describe)?;
            tp.attach(category, name).map(drop).map_err(describe)
        }
        Target::BtfTracepoint { name } => {
            let tp: &mut BtfTracePoint = prog.try_into().map_err(describe)?;
            tp.load(name, btf).map_err(describe)?;
            tp.attach().map(drop).map_err(describe)
        }
        Target::Fentry { function } => {
            let p: &mut FEntry = prog.try_into().map_err(describe)?;
            p.load(function, btf).map_err(trampoline_refused)?;
            p.attach().map(drop).map_err(describe)
        }
        Target::Fexit { function } => {
            let p: &mut FExit = prog.try_into().map_err(describe)?;
            p.load(function, btf).map_err(trampoline_refused)?;
            p.attach().map(drop).map_err(describe)
        }
        Target::Kprobe { function } | Target::Kretprobe { function } => {
            let p: &mut KProbe = prog.try_into().map_err(describe)?;
            p.load().map_err(describe)?;
            p.attach(function, 0).map(drop).map_err(|e| {
                if Path::new(KPROBE_PMU).exists() {
                    describe(e)
                } else {
                    format!("this kernel has no kprobes (no {KPROBE_PMU})")
                }
            })
        }
    }
}

/// Where a kernel with kprobes (CONFIG_KPROBES) lists its kprobe event source.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

/// A refused fentry/fexit load, with the usual cause when the verifier said nothing: lockdown
/// (or another LSM) forbids BPF trampolines.
fn trampoline_refused(e: ProgramError) -> String {
    let text = describe_program_error(&e);
    if text.contains("Operation not permitted") && !text.contains("verifier:") {
        format!("{text}: the kernel refuses BPF trampolines (lockdown or an LSM)")
    } else {
        text
    }
}

/// One line for a program error, with the verifier's last words when it rejected the program.
fn describe_program_error(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            if std::env::var_os("PORTWATCH_VERIFIER_LOG").is_some() {
                eprintln!("{log}");
            }
            // The verifier ends with statistics; the reason is the last line before them.
            let last = log
                .lines()
                .rev()
                .filter(|l| !l.trim().is_empty())
                .find(|l| {
                    !["processed ", "verification time", "stack depth"]
                        .iter()
                        .any(|stat| l.starts_with(stat))
                })
                .unwrap_or("");
            if last.is_empty() {
                format!("load failed: {io_error}")
            } else {
                format!("load failed: {io_error} (verifier: {last})")
            }
        }
        other => crate::error::chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_WAYS: &[Hook] = &[Hook {
        name: "close",
        required: true,
        serves: &[EventKind::Close],
        without: "close events cannot be seen",
        options: &[
            AttachOption {
                attach: AttachType::TpBtf,
                programs: &[],
            },
            AttachOption {
                attach: AttachType::Tracepoint,
                programs: &[],
            },
        ],
    }];

    fn all(_: EventKind) -> bool {
        true
    }

    #[test]
    fn a_hook_no_selected_event_needs_is_not_attached() {
        let chosen = choose(
            TWO_WAYS,
            &[],
            |k| k == EventKind::Bind,
            |_| panic!("nothing is attached"),
        )
        .unwrap();
        assert_eq!(chosen[0].attach, None);
        assert!(chosen[0].skipped.is_some());
    }

    #[test]
    fn picks_the_first_option_that_attaches() {
        let chosen = choose(TWO_WAYS, &[], all, |_| Ok(())).unwrap();
        assert_eq!(chosen[0].attach, Some(AttachType::TpBtf));
        assert!(chosen[0].refused.is_empty());
    }

    #[test]
    fn falls_back_and_says_why() {
        let chosen = choose(TWO_WAYS, &[], all, |o| match o.attach {
            AttachType::Tracepoint => Ok(()),
            _ => Err("EPERM".into()),
        })
        .unwrap();
        assert_eq!(chosen[0].attach, Some(AttachType::Tracepoint));
        assert_eq!(chosen[0].refused[0].attach, AttachType::TpBtf);
        assert_eq!(chosen[0].refused[0].error, "EPERM");
    }

    #[test]
    fn forced_type_is_the_only_one_tried() {
        let forced = [Forced {
            hook: "close",
            attach: AttachType::Tracepoint,
        }];
        let mut tried = Vec::new();
        let chosen = choose(TWO_WAYS, &forced, all, |o| {
            tried.push(o.attach);
            Ok(())
        })
        .unwrap();
        assert_eq!(tried, vec![AttachType::Tracepoint]);
        assert_eq!(chosen[0].attach, Some(AttachType::Tracepoint));
    }

    #[test]
    fn required_hook_that_never_attaches_is_an_error_naming_it() {
        let err = choose(TWO_WAYS, &[], all, |_| Err("nope".into())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`close`"), "{msg}");
        assert!(msg.contains("close events cannot be seen"), "{msg}");
        assert!(msg.contains("--events bind,listen,accept"), "{msg}");
        assert!(
            msg.contains("tp_btf: nope") && msg.contains("tracepoint: nope"),
            "{msg}"
        );
    }

    #[test]
    fn optional_hook_is_skipped_and_reported() {
        const OPTIONAL: &[Hook] = &[Hook {
            name: "x",
            required: false,
            serves: &[EventKind::Close],
            without: "x events cannot be seen",
            options: TWO_WAYS[0].options,
        }];
        let chosen = choose(OPTIONAL, &[], all, |_| Err("nope".into())).unwrap();
        assert_eq!(chosen[0].attach, None);
        assert_eq!(chosen[0].refused.len(), 2);
        assert_eq!(chosen[0].missing, Some("x events cannot be seen"));
    }

    #[test]
    fn parses_forced_attach() {
        assert_eq!(
            "close=tracepoint".parse::<Forced>().unwrap(),
            Forced {
                hook: "close",
                attach: AttachType::Tracepoint
            }
        );
        assert!("close".parse::<Forced>().is_err());
        assert!("nosuch=tracepoint".parse::<Forced>().is_err());
        assert!(
            "bind=tp_btf"
                .parse::<Forced>()
                .unwrap_err()
                .contains("no tp_btf")
        );
    }
}
