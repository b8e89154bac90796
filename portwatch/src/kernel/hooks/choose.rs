//! The selection policy, kept free of aya so that it can be tested: for each hook, the first
//! attach type that the kernel accepts (or the one forced with `--attach`).
use portwatch_common::EventKind;

use super::{AttachOption, AttachType, Chosen, Forced, Hook, Refusal};
use crate::error::{Error, Result};

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
            chosen.push(skipped(
                hook,
                "no event kind selected with --events needs it",
            ));
            continue;
        }
        let tracepoints = |name: &&str| {
            chosen
                .iter()
                .any(|c: &Chosen| c.hook == *name && c.attach == Some(AttachType::Tracepoint))
        };
        if !hook.completes.is_empty() && !hook.completes.iter().any(tracepoints) {
            chosen.push(skipped(
                hook,
                "the hooks it completes are on kernel functions, which see these calls themselves",
            ));
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
            return Err(unattached(hook, &refused));
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

/// A hook left unattached on purpose, and why.
fn skipped(hook: &Hook, why: &'static str) -> Chosen {
    Chosen {
        hook: hook.name,
        attach: None,
        targets: Vec::new(),
        refused: Vec::new(),
        skipped: Some(why),
        missing: None,
    }
}

/// The error for a required hook no attach type took: every refusal, and the way out.
fn unattached(hook: &Hook, refused: &[Refusal]) -> Error {
    let attempts: Vec<String> = refused
        .iter()
        .map(|r| format!("{}: {}", r.attach, r.error))
        .collect();
    let others: Vec<&str> = EventKind::SOCKET
        .iter()
        .filter(|k| !hook.serves.contains(k))
        .map(|k| k.name())
        .collect();
    Error::Hook {
        hook: hook.name,
        without: hook.without,
        attempts: attempts.join("; "),
        fix: format!(
            "check that the kernel has BTF and tracepoints (CONFIG_FTRACE_SYSCALLS) and that tracefs is mounted, or watch without them (--events {})",
            others.join(",")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_WAYS: &[Hook] = &[Hook {
        name: "close",
        required: true,
        serves: &[EventKind::Close],
        completes: &[],
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
            completes: &[],
            without: "x events cannot be seen",
            options: TWO_WAYS[0].options,
        }];
        let chosen = choose(OPTIONAL, &[], all, |_| Err("nope".into())).unwrap();
        assert_eq!(chosen[0].attach, None);
        assert_eq!(chosen[0].refused.len(), 2);
        assert_eq!(chosen[0].missing, Some("x events cannot be seen"));
    }

    /// A hook that completes others (io_uring's, for the syscall tracepoints) is attached only
    /// when one of those is on its tracepoints.
    #[test]
    fn a_completing_hook_follows_the_hooks_it_completes() {
        const HOOKS: &[Hook] = &[
            TWO_WAYS[0],
            Hook {
                name: "extra",
                required: false,
                serves: &[EventKind::Close],
                completes: &["close"],
                without: "",
                options: &[AttachOption {
                    attach: AttachType::Fentry,
                    programs: &[],
                }],
            },
        ];
        let chosen = choose(HOOKS, &[], all, |_| Ok(())).unwrap();
        assert_eq!(chosen[0].attach, Some(AttachType::TpBtf));
        assert_eq!(chosen[1].attach, None);
        assert!(chosen[1].skipped.is_some());
        let chosen = choose(HOOKS, &[], all, |o| match o.attach {
            AttachType::Tracepoint | AttachType::Fentry => Ok(()),
            _ => Err("EPERM".into()),
        })
        .unwrap();
        assert_eq!(chosen[0].attach, Some(AttachType::Tracepoint));
        assert_eq!(chosen[1].attach, Some(AttachType::Fentry));
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
