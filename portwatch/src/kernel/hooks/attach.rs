//! Attaching through aya: one hook option at a time, all its programs or none, with the
//! kernel's refusal turned into one line.
use std::path::Path;

use aya::{
    Btf, Ebpf,
    maps::Array,
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSock, FEntry, FExit, KProbe, ProgramError,
        TracePoint,
    },
};
use portwatch_common::{EventKind, IOU_NONE, KernelOffsets, names};

use super::{AttachOption, AttachType, Chosen, Forced, HOOKS, Program, Target, choose};
use crate::{
    error::{Error, Result},
    kernel::cgroup_root,
};

/// Attaches the hooks in `HOOKS` that the `selected` event kinds need to the loaded object.
pub fn attach_all(
    ebpf: &mut Ebpf,
    btf: &Btf,
    offsets: &KernelOffsets,
    forced: &[Forced],
    selected: impl Fn(EventKind) -> bool,
) -> Result<Vec<Chosen>> {
    let chosen = choose(HOOKS, forced, selected, |option| {
        let uring = option
            .programs
            .iter()
            .any(|p| p.program == names::URING_SUBMIT);
        if uring && offsets.iou_complete == IOU_NONE {
            return Err(
                "this kernel's BTF describes no io_uring request tracepoints portwatch can read"
                    .into(),
            );
        }
        attach_option(ebpf, btf, option)
    })?;
    let kinds = uring_kinds(&chosen);
    let map = ebpf
        .map_mut(names::URING_KINDS_MAP)
        .ok_or_else(|| Error::Load(format!("map {} is missing", names::URING_KINDS_MAP)))?;
    Array::<_, u32>::try_from(map)
        .and_then(|mut a| a.set(0, kinds, 0))
        .map_err(|e| Error::Load(format!("{}: {e}", names::URING_KINDS_MAP)))?;
    Ok(chosen)
}

/// The kinds the io_uring hook reports (bit `1 << kind`): those whose own hook is on the
/// syscall tracepoints, which io_uring's requests bypass.
fn uring_kinds(chosen: &[Chosen]) -> u32 {
    [
        ("bind", EventKind::Bind),
        ("listen", EventKind::Listen),
        ("accept", EventKind::Accept),
    ]
    .into_iter()
    .filter(|(hook, _)| {
        chosen
            .iter()
            .any(|c| c.hook == *hook && c.attach == Some(AttachType::Tracepoint))
    })
    .fold(0, |bits, (_, kind)| bits | 1 << kind as u32)
}

fn attach_option(ebpf: &mut Ebpf, btf: &Btf, option: &AttachOption) -> Result<(), String> {
    for (i, p) in option.programs.iter().enumerate() {
        if let Err(e) = attach_program(ebpf, btf, p) {
            // All or nothing: unload what this option already attached, and the program that
            // failed, which may have loaded before its attach was refused (else it would stay
            // in the kernel, loaded for nothing, while portwatch runs).
            for done in &option.programs[..=i] {
                if let Some(prog) = ebpf.program_mut(done.program) {
                    let _ = match prog {
                        aya::programs::Program::TracePoint(t) => t.unload(),
                        aya::programs::Program::BtfTracePoint(t) => t.unload(),
                        aya::programs::Program::FEntry(t) => t.unload(),
                        aya::programs::Program::FExit(t) => t.unload(),
                        aya::programs::Program::KProbe(t) => t.unload(),
                        aya::programs::Program::CgroupSock(t) => t.unload(),
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
            let mut loaded = Err(String::new());
            for candidate in name.split('|') {
                loaded = tp.load(candidate, btf).map_err(describe);
                if loaded.is_ok() {
                    break;
                }
            }
            loaded?;
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
        Target::Cgroup { .. } => {
            let p: &mut CgroupSock = prog.try_into().map_err(describe)?;
            p.load().map_err(describe)?;
            // A BPF link (kernel >= 5.7): detached when its descriptor closes, even on SIGKILL.
            // Programs attached the old way would stay on the host's cgroup.
            let root = cgroup_root::open()?;
            p.attach(&root, CgroupAttachMode::Single)
                .map(drop)
                .map_err(describe)
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
