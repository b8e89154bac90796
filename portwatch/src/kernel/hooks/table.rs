//! The hook table itself: every hook portwatch attaches, its attach types best first and the
//! programs of each, as the kernel crate names them.
use portwatch_common::{EventKind, names};

use super::{AttachOption, AttachType, Hook, Program, Target};

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

/// Besides its own events, the listen hook serves close (a listen in flight tells a failed
/// listen from a close) and accept serves close too (the connections a listener accepted).
pub const HOOKS: &[Hook] = &[
    Hook {
        name: "bind",
        required: true,
        serves: &[EventKind::Bind],
        completes: &[],
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
        completes: &[],
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
        completes: &[],
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
        completes: &[],
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
    // io_uring's own tracepoints, for its bind, listen and accept requests, which never pass the
    // syscall tracepoints (the kernel-function hooks see them themselves).
    Hook {
        name: "io_uring",
        required: false,
        serves: &[
            EventKind::Bind,
            EventKind::Listen,
            EventKind::Accept,
            EventKind::Close,
        ],
        completes: &["bind", "listen", "accept"],
        without: "binds, listens and accepts made through io_uring are not seen",
        options: &[AttachOption {
            attach: AttachType::TpBtf,
            programs: &[
                on(
                    names::URING_SUBMIT,
                    // Called io_uring_submit_sqe (req, force_nonblock) before 6.3.
                    Target::BtfTracepoint {
                        name: "io_uring_submit_req|io_uring_submit_sqe",
                    },
                ),
                on(
                    names::URING_COMPLETE,
                    Target::BtfTracepoint {
                        name: "io_uring_complete",
                    },
                ),
            ],
        }],
    },
    // UDP has no state change to trace: the cgroup socket hooks see each bound socket's release.
    // Optional: without them a sock_diag check finds what went away, later and without the closer.
    Hook {
        name: "udp_close",
        required: false,
        serves: &[EventKind::Close],
        completes: &[],
        without: "a UDP socket closed by a running process is found gone only by a later sock_diag check, without who closed it",
        options: &[AttachOption {
            attach: AttachType::Cgroup,
            programs: &[
                on(
                    names::UDP_POST_BIND4,
                    Target::Cgroup {
                        attach: "post_bind4",
                    },
                ),
                on(
                    names::UDP_POST_BIND6,
                    Target::Cgroup {
                        attach: "post_bind6",
                    },
                ),
                on(
                    names::UDP_RELEASE,
                    Target::Cgroup {
                        attach: "sock_release",
                    },
                ),
            ],
        }],
    },
    // Process life cycle, for exact executables and arguments of short-lived processes. Optional:
    // without them portwatch still reports every socket event, with the process read from /proc.
    Hook {
        name: "exec",
        required: false,
        serves: &EventKind::SOCKET,
        completes: &[],
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
        serves: &EventKind::SOCKET,
        completes: &[],
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
    // Who forked each task, kept in the kernel until it exits: a process reparented before its
    // first record (its parent exited) still names the parent that made it.
    Hook {
        name: "fork",
        required: false,
        serves: &EventKind::SOCKET,
        completes: &[],
        without: "a process whose parent exited before its first record names the process it was reparented to (init or a subreaper) as its parent",
        options: &[AttachOption {
            attach: AttachType::Tracepoint,
            programs: &[Program {
                program: names::PROCESS_FORK,
                target: Target::Tracepoint {
                    category: "sched",
                    name: "sched_process_fork",
                },
            }],
        }],
    },
];
