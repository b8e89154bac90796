//! Process life cycle, so the daemon knows every program's executable and arguments even when it
//! exits within a millisecond: execve (new image) and exit (forget it); and fork, so a process
//! whose parent exits before it does anything is still attributed to that parent.
//!
//! All are classic `sched` tracepoints firing in the context of the process itself (fork: of the
//! parent), so the task context comes from the current task like for socket events.
use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes, generated},
    macros::tracepoint,
    programs::TracePointContext,
};
use portwatch_common::{
    ARGS_LEN, EXE_PATH_DEPTH, EventKind, ExecEvent, ExitEvent, FLAG_ARGS_TRUNCATED, ForkParent,
    ImageId, RecordHeader, SockEnds, counters,
};

use crate::{
    emit::{fill_task, is_inet},
    filter::task_allowed,
    kernel::{args_range, current_process_start, read_ends, sock_family, sock_of_fd},
    maps::{EVENTS, FORK_PARENT, bump, offset, offsets_valid, room_for_bulk, stamp, wakeup_flags},
};

/// A stamped header: every record attempt takes a sequence number, so a lost one leaves a gap.
#[inline(always)]
fn header(kind: EventKind) -> RecordHeader {
    let mut h = RecordHeader {
        kind: kind as u8,
        flags: 0,
        image_flags: 0,
        errno: 0,
        cpu: 0,
        _pad2: 0,
        seq: 0,
    };
    stamp(&mut h);
    h
}

/// match-proto: trace_sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
#[tracepoint]
pub fn process_exec(ctx: TracePointContext) -> u32 {
    if !offsets_valid() {
        return 0;
    }
    // A thread that execs becomes its process's leader and leaves its own thread id behind,
    // which no exit will name: its fork entry goes now.
    if let Ok(old) = unsafe { ctx.read_at::<i32>(offset!(tp_exec_old_pid)) }
        && old as u32 != (bpf_get_current_pid_tgid() >> 32) as u32
    {
        let _ = FORK_PARENT.remove(&(old as u32));
    }
    if !task_allowed(None) {
        return 0;
    }
    // Too big for the 512-byte BPF stack: the record is built in place in the ring buffer.
    let header = header(EventKind::Exec);
    let reserved = if room_for_bulk() {
        EVENTS.reserve::<ExecEvent>(0)
    } else {
        None
    };
    let Some(mut entry) = reserved else {
        bump(counters::lost(EventKind::Exec));
        return 0;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header;
        crate::emit::zero(&raw mut (*ev).task);
        fill_task(&mut (*ev).task);
        (*ev).filename_len = 0;
        (*ev).args_len = 0;
        (*ev).stdio_sockets = 0;
        (*ev)._pad = [0; 3];
        (*ev).stdio = SockEnds::default();
        stdio_sockets(&mut *ev);
        (*ev).image = ImageId::default();
        (*ev).exe_path_flags = 0;
        (*ev)._pad2 = 0;
        (*ev).exe_name_lens = [0; EXE_PATH_DEPTH];
        // The executable, its path, and the arguments' fingerprint now, which later events of
        // the process are compared to.
        let mut image_flags = 0;
        if let Some(file) = crate::kernel::image::read_image(&mut (*ev).image, &mut image_flags) {
            crate::kernel::image::exe_path(file, ev);
        }
        (*ev).header.image_flags = image_flags;

        // __data_loc field: low 16 bits offset of the string in the record, high 16 its length.
        if let Ok(loc) = ctx.read_at::<u32>(offset!(tp_exec_filename)) {
            let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
            if let Ok(name) = bpf_probe_read_kernel_str_bytes(src, &mut (*ev).filename) {
                (*ev).filename_len = name.len() as u16;
            }
        }

        if let Ok((start, end)) = args_range() {
            let mut len = end.saturating_sub(start);
            if len > (ARGS_LEN - 1) as u64 {
                len = (ARGS_LEN - 1) as u64;
                (*ev).header.flags |= FLAG_ARGS_TRUNCATED;
            }
            // The mask proves the bound to the verifier.
            let len = (len as u32) & (ARGS_LEN as u32 - 1);
            let dst = (*ev).args.as_mut_ptr() as *mut c_void;
            if generated::bpf_probe_read_user(dst, len, start as *const c_void) == 0 {
                (*ev).args_len = len as u16;
            }
        }
    }
    entry.submit(wakeup_flags());
    0
}

/// Marks which of the new image's stdin, stdout and stderr are IP sockets and reads the lowest.
/// The tracepoint fires after the close-on-exec descriptors are gone, so these are the ones the
/// program starts with.
#[inline(always)]
fn stdio_sockets(ev: &mut ExecEvent) {
    for fd in 0..3 {
        let Ok(sk) = sock_of_fd(fd) else { continue };
        if !sock_family(sk).is_ok_and(|f| is_inet(f as u8)) {
            continue;
        }
        ev.stdio_sockets |= 1 << fd;
        if ev.stdio.family == 0 {
            let _ = read_ends(sk, &mut ev.stdio);
        }
    }
}

/// match-proto: trace_sched_process_exit(struct task_struct *p, bool group_dead)
#[tracepoint]
pub fn process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // One record per process: when its thread-group leader exits.
    if (pid_tgid >> 32) as u32 != tid || !offsets_valid() || !task_allowed(None) {
        // Every task's fork entry goes with it (threads have one too).
        let _ = FORK_PARENT.remove(&tid);
        return 0;
    }
    crate::emit::zeroed!(ev: ExitEvent);
    fill_task(&mut ev.task);
    let _ = FORK_PARENT.remove(&tid);
    ev.header = header(EventKind::Exit);
    if !room_for_bulk() || EVENTS.output::<ExitEvent>(ev, wakeup_flags()).is_err() {
        bump(counters::lost(EventKind::Exit));
    }
    0
}

/// match-proto: trace_sched_process_fork(struct task_struct *parent, struct task_struct *child)
///
/// Runs in the forking thread. The classic record does not say whether the child is a thread
/// or a process, so every new task gets an entry, and every task's goes at its exit.
#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    if !offsets_valid() {
        return 0;
    }
    let Ok(child) = (unsafe { ctx.read_at::<i32>(offset!(tp_fork_child_pid)) }) else {
        return 0;
    };
    let Ok(start_ns) = current_process_start() else {
        return 0;
    };
    let parent = ForkParent {
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
        start_ns,
    };
    if FORK_PARENT.insert(&(child as u32), &parent, 0).is_err() {
        bump(counters::FORK_PARENT_FULL);
    }
    0
}
