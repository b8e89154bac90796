//! bind, listen and accept made through io_uring (`IORING_OP_BIND`, `IORING_OP_LISTEN`,
//! `IORING_OP_ACCEPT`), which never pass the syscall tracepoints: at io_uring's own BTF
//! tracepoints. Used for the kinds whose hook is a syscall tracepoint (`URING_KINDS`); the
//! kernel-function hooks see these calls themselves.
//!
//! `io_uring_submit_req` (`io_uring_submit_sqe` before 6.3) fires once the request is prepared: the descriptor it names, the
//! address io_uring copied for a bind, the backlog of a listen are read there and kept under the
//! request's address. `io_uring_complete` fires when its completion is posted, in a thread of the
//! ring's process (the submitter, the SQPOLL thread or a worker): the result and the socket
//! (the request's file; for accept, the new descriptor) are read there and one record is sent,
//! like the syscall path's, with `via` saying io_uring (and which thread ran it).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use portwatch_common::{
    ABSENT, AF_INET, AF_INET6, EventKind, IORING_OP_ACCEPT, IORING_OP_BIND, IORING_OP_LISTEN,
    IOU_CQE, IOU_NONE, IOU_RES_ARG, Pending, SockEvent, VIA_IO_URING, counters,
};

use crate::{
    diag::At,
    emit::{Memory, add_call, concerns_inet, init_event, read_sock, requested_address, send},
    filter::task_allowed,
    kernel::{ReadError, io_thread, read, sock_of_fd, sock_of_file, socket_inode},
    maps::{URING_KINDS, URING_PENDING, bump, offset, offsets_valid},
};

/// match-proto: trace_io_uring_submit_req(struct io_kiocb *req)
/// match-proto (before 6.3): trace_io_uring_submit_sqe(struct io_kiocb *req, bool force_nonblock)
#[btf_tracepoint(function = "io_uring_submit_req")]
pub fn uring_submit(ctx: BtfTracePointContext) -> i32 {
    let _ = submit(ctx.arg(0));
    0
}

/// match-proto: trace_io_uring_complete(struct io_ring_ctx *ctx, void *req, struct io_uring_cqe *cqe)
/// match-proto (before 6.3): trace_io_uring_complete(void *ctx, void *req, u64 user_data, int res, unsigned cflags, u64 extra1, u64 extra2)
#[btf_tracepoint(function = "io_uring_complete")]
pub fn uring_complete(ctx: BtfTracePointContext) -> i32 {
    let req: *const u8 = ctx.arg(1);
    // NULL: an extra completion of a multishot request.
    if req.is_null() || !offsets_valid() {
        return 0;
    }
    let res = match offset!(iou_complete) as u32 {
        IOU_CQE => {
            let cqe: *const u8 = ctx.arg(2);
            match read::<i32>(cqe.wrapping_add(offset!(cqe_res))) {
                Ok(res) => res,
                Err(_) => return 0,
            }
        }
        IOU_RES_ARG => ctx.arg::<u64>(3) as i32,
        _ => return 0,
    };
    complete(req, i64::from(res));
    0
}

/// `Pending::flags` of an accept: the connection goes to a fixed-file slot, not a descriptor.
const DIRECT: u8 = 1 << 7;

#[inline(always)]
fn reported(kind: EventKind) -> bool {
    URING_KINDS
        .get(0)
        .is_some_and(|kinds| kinds & (1 << kind as u32) != 0)
}

// Inlined: a BPF subprogram may not return a pointer into its caller's stack (sret).
#[inline(always)]
fn submit(req: *const u8) -> Result<(), ReadError> {
    if !offsets_valid() || offset!(iou_complete) as u32 == IOU_NONE {
        return Ok(());
    }
    let kind = match read::<u8>(req.wrapping_add(offset!(req_opcode)))? {
        IORING_OP_BIND => EventKind::Bind,
        IORING_OP_LISTEN => EventKind::Listen,
        IORING_OP_ACCEPT => EventKind::Accept,
        _ => return Ok(()),
    };
    if !reported(kind) || !task_allowed(Some(kind)) {
        return Ok(());
    }
    let mut p: Pending = unsafe { core::mem::zeroed() };
    p.kind = kind as u8;
    p.via = io_thread();
    let flags: u32 = read(req.wrapping_add(offset!(req_flags)))?;
    // A fixed file is a slot of the ring's table, not a descriptor of the process.
    p.fd = if flags & (1 << offset!(req_fixed_file_bit)) != 0 {
        -1
    } else {
        read(req.wrapping_add(offset!(req_cqe_fd)))?
    };
    let cmd = req.wrapping_add(offset!(req_file));
    match kind {
        // An offset is ABSENT on kernels without that command (which then never comes here).
        EventKind::Accept if offset!(accept_file_slot) != ABSENT as usize => {
            let slot: u32 = read(cmd.wrapping_add(offset!(accept_file_slot)))?;
            if slot != 0 {
                p.flags |= DIRECT;
            }
        }
        EventKind::Listen if offset!(listen_backlog) != ABSENT as usize => {
            p.backlog = read(cmd.wrapping_add(offset!(listen_backlog)))?;
        }
        EventKind::Bind if offset!(bind_addr_len) != ABSENT as usize => {
            let len: i32 = read(cmd.wrapping_add(offset!(bind_addr_len)))?;
            let io: *const u8 = read(req.wrapping_add(offset!(req_async_data)))?;
            if let Some(addr) = bind_address(io) {
                if !requested_address(&mut p, addr, len.max(0) as u64, Memory::Kernel)
                    .unwrap_or(true)
                {
                    return Ok(()); // not an inet address: not ours
                }
            }
        }
        _ => {}
    }
    if URING_PENDING.insert(&(req as u64), &p, 0).is_err() {
        bump(counters::pending_full(kind));
    }
    Ok(())
}

/// Where io_uring's prep copied a bind's address. Its async data is the bare sockaddr on recent
/// kernels and an `io_async_msghdr` (address at `msghdr_addr`) on the first ones with bind
/// (6.11): BTF cannot tell which, the data can. A sockaddr starts with its family (2 or 10);
/// an `io_async_msghdr` starts with a pointer, which is 8-byte aligned and so never looks like
/// one. None when neither holds an inet address.
#[inline(always)]
fn bind_address(io: *const u8) -> Option<*const u8> {
    if io.is_null() {
        return None;
    }
    let inet = |addr: *const u8| read::<u16>(addr).is_ok_and(|f| f == AF_INET || f == AF_INET6);
    if inet(io) {
        return Some(io);
    }
    let in_msghdr = io.wrapping_add(offset!(msghdr_addr));
    (offset!(msghdr_addr) != ABSENT as usize && inet(in_msghdr)).then_some(in_msghdr)
}

#[inline(always)]
fn complete(req: *const u8, res: i64) {
    let key = req as u64;
    let Some(p) = (unsafe { URING_PENDING.get(&key) }) else {
        return;
    };
    let Ok(kind) = EventKind::try_from(p.kind) else {
        let _ = URING_PENDING.remove(&key);
        return;
    };
    // What the submission stored is used in place, then freed: a copy on the stack would not
    // fit in 6.1's 512 bytes with the diagnostics on.
    let (direct, submitted_via) = (p.flags & DIRECT != 0, p.via);
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, kind);
    if kind != EventKind::Accept {
        add_call(ev, p, res);
    }
    let _ = URING_PENDING.remove(&key);
    let file: *const u8 = read(req.wrapping_add(offset!(req_file))).unwrap_or(core::ptr::null());
    if kind == EventKind::Accept {
        // Failed accepts (EAGAIN, a cancelled request) are not connections.
        if res < 0 {
            return;
        }
        // The new connection's descriptor; none when it went into a fixed-file slot.
        if !direct {
            ev.fd = res as i32;
            read_sock(ev, sock_of_fd(res as i32));
        }
        if let Ok(sk) = sock_of_file(file) {
            ev.listener_inode = socket_inode(sk);
        }
    } else {
        read_sock(ev, sock_of_file(file));
    }
    // The thread that ran it: the submitter (inside io_uring_enter), SQPOLL or a worker.
    ev.via = match io_thread() {
        0 if submitted_via == 0 => VIA_IO_URING,
        0 => submitted_via,
        via => via,
    };
    if concerns_inet(ev) {
        send(ev, kind, At::IoUring);
    }
}
