//! The offsets of io_uring's requests, for the io_uring hook: optional, since a kernel may have
//! no io_uring (or no tracepoints for its requests); its calls are then seen only by the
//! kernel-function hooks.
use portwatch_common::{ABSENT, IOU_CQE, IOU_NONE, IOU_RES_ARG, KernelOffsets};

use super::KernelTypes;
use crate::{
    error::{Error, Result},
    kernel::btf::BtfError,
};

/// `base` with the io_uring offsets, or all ABSENT (and `IOU_NONE`) when this kernel's BTF has no
/// io_uring requests or no tracepoints for them: then io_uring calls are seen only by
/// kernel-function hooks.
/// The form of io_uring's completion tracepoint (`IOU_CQE`, `IOU_RES_ARG`), None when the
/// kernel lacks it or a submission tracepoint portwatch knows.
fn tracepoints(types: &KernelTypes) -> Result<Option<u32>> {
    let btf = types.btf();
    let layout = |e: BtfError| Error::Layout(e.to_string());
    let complete = match btf
        .typedef_params("btf_trace_io_uring_complete")
        .map_err(layout)?
    {
        // (void *data, ctx, req, cqe)
        Some(4) => IOU_CQE,
        // (void *data, ctx, req, user_data, res, cflags, extra1, extra2)
        Some(8) => IOU_RES_ARG,
        Some(n) => {
            return Err(Error::Layout(format!(
                "io_uring_complete has {} arguments, a form portwatch does not know",
                n - 1
            )));
        }
        None => return Ok(None),
    };
    // (void *data, req), or before 6.3 io_uring_submit_sqe (void *data, req, force_nonblock):
    // the request is the first argument either way.
    let submit = btf
        .typedef_params("btf_trace_io_uring_submit_req")
        .map_err(layout)?;
    let submit_sqe = btf
        .typedef_params("btf_trace_io_uring_submit_sqe")
        .map_err(layout)?;
    Ok((submit == Some(2) || submit_sqe == Some(3)).then_some(complete))
}

pub(super) fn offsets(types: &KernelTypes, base: KernelOffsets) -> Result<KernelOffsets> {
    let none = KernelOffsets {
        iou_complete: IOU_NONE,
        req_opcode: ABSENT,
        req_flags: ABSENT,
        req_fixed_file_bit: ABSENT,
        req_file: ABSENT,
        req_cqe_fd: ABSENT,
        req_async_data: ABSENT,
        bind_addr_len: ABSENT,
        listen_backlog: ABSENT,
        accept_file_slot: ABSENT,
        msghdr_addr: ABSENT,
        cqe_res: ABSENT,
        ..base
    };
    let Some(complete) = tracepoints(types)? else {
        return Ok(none);
    };
    let btf = types.btf();
    let layout = |e: BtfError| Error::Layout(e.to_string());
    let sized = |strukt: &str, path: &str, size: usize| types.sized(strukt, path, size);
    // Structs of one io_uring command each; a kernel without that command has none.
    let optional = |strukt: &str, path: &str, size: usize| -> Result<u32> {
        if btf.struct_by_name(strukt).is_none() {
            return Ok(ABSENT);
        }
        sized(strukt, path, size)
    };
    let flags = types.field("io_kiocb", "flags")?;
    if flags.size != 4 && flags.size != 8 {
        return Err(Error::Layout(format!(
            "io_kiocb.flags is {} bytes, expected 4 or 8",
            flags.size
        )));
    }
    let fixed = btf.enum_value("REQ_F_FIXED_FILE_BIT").map_err(layout)?;
    let Some(fixed) = fixed.filter(|b| (0..32).contains(b)) else {
        return Err(Error::Layout(
            "REQ_F_FIXED_FILE_BIT is missing or not in the low 32 bits".into(),
        ));
    };
    if types.field("io_kiocb", "file")?.offset != types.field("io_kiocb", "cmd")?.offset {
        return Err(Error::Layout(
            "io_kiocb's file and command do not share their place".into(),
        ));
    }
    Ok(KernelOffsets {
        iou_complete: complete,
        req_opcode: sized("io_kiocb", "opcode", 1)?,
        req_flags: flags.offset,
        req_fixed_file_bit: fixed as u32,
        req_file: sized("io_kiocb", "file", 8)?,
        req_cqe_fd: sized("io_kiocb", "cqe.fd", 4)?,
        req_async_data: sized("io_kiocb", "async_data", 8)?,
        bind_addr_len: optional("io_bind", "addr_len", 4)?,
        listen_backlog: optional("io_listen", "backlog", 4)?,
        accept_file_slot: optional("io_accept", "file_slot", 4)?,
        msghdr_addr: optional("io_async_msghdr", "addr", 128)?,
        cqe_res: sized("io_uring_cqe", "res", 4)?,
        ..none
    })
}
