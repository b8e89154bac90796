//! Turning ring-buffer bytes into typed records, defensively: a known kind in the first byte, the
//! exact length of that kind's struct, known address families. Nothing here trusts the record's
//! bytes beyond what it checks.
use std::{
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use crate::model::{
    socket::{SockKind, SocketEvent, SocketInfo, StdioSocket, Via},
    task::{Comm, ExecRecord, Running, Task, split_args},
};
use portwatch_common::{
    AF_INET, AF_INET6, EXE_PATH_DETACHED, EXE_PATH_FULL, EventKind, ExecEvent, ExitEvent,
    FLAG_ARGS_TRUNCATED, FLAG_REQ_ADDR, FLAG_SOCK, RecordHeader, SockEnds, SockEvent,
    TASK_LOGINUID, TASK_READ, TaskInfo,
};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("{kind} record is {got} bytes, expected {want}")]
    Length {
        kind: &'static str,
        got: usize,
        want: usize,
    },
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error("unknown address family {0}")]
    Family(u8),
    #[error("unknown call path {0}")]
    Via(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelRecord {
    Socket(SocketEvent),
    Exec(ExecRecord),
    Exit(Task),
}

/// A decoded record with the CPU that sent it and that CPU's sequence number for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub cpu: u32,
    pub seq: u64,
    pub record: KernelRecord,
}

/// Reads a `T` from exactly `size_of::<T>()` bytes.
///
/// Only for the ABI's plain-old-data records (integers and byte arrays): every bit pattern is a
/// valid value, so the length check is all that soundness needs.
fn pod<T: Copy>(kind: EventKind, bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() != size_of::<T>() {
        return Err(DecodeError::Length {
            kind: kind.name(),
            got: bytes.len(),
            want: size_of::<T>(),
        });
    }
    // SAFETY: length checked; T is one of the ABI's POD records (see callers).
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let &first = bytes.first().ok_or(DecodeError::Empty)?;
    let kind = EventKind::try_from(first).map_err(DecodeError::Kind)?;
    let want = match kind {
        EventKind::Bind | EventKind::Listen | EventKind::Accept | EventKind::Close => {
            size_of::<SockEvent>()
        }
        EventKind::Exec => size_of::<ExecEvent>(),
        EventKind::Exit => size_of::<ExitEvent>(),
    };
    if bytes.len() != want {
        return Err(DecodeError::Length {
            kind: kind.name(),
            got: bytes.len(),
            want,
        });
    }
    // Every record starts with a RecordHeader, and the length is now known to hold one.
    let header: RecordHeader = pod_prefix(bytes).ok_or(DecodeError::Empty)?;
    let record = match kind {
        EventKind::Bind => sock(SockKind::Bind, kind, bytes),
        EventKind::Listen => sock(SockKind::Listen, kind, bytes),
        EventKind::Accept => sock(SockKind::Accept, kind, bytes),
        EventKind::Close => sock(SockKind::Close, kind, bytes),
        EventKind::Exec => Ok(KernelRecord::Exec(exec(&pod::<ExecEvent>(kind, bytes)?)?)),
        EventKind::Exit => Ok(KernelRecord::Exit(task(
            &pod::<ExitEvent>(kind, bytes)?.task,
        ))),
    }?;
    Ok(Decoded {
        cpu: header.cpu,
        seq: header.seq,
        record,
    })
}

/// The CPU and sequence number the kernel gave a record, when it is long enough to have them
/// (an undecodable record still took its number).
pub fn numbered(bytes: &[u8]) -> Option<(u32, u64)> {
    pod_prefix::<RecordHeader>(bytes).map(|h| (h.cpu, h.seq))
}

/// Reads a `T` from the first `size_of::<T>()` bytes, if there are that many.
fn pod_prefix<T: Copy>(bytes: &[u8]) -> Option<T> {
    let head = bytes.get(..size_of::<T>())?;
    // SAFETY: length checked; only used for RecordHeader, which is plain old data.
    Some(unsafe { std::ptr::read_unaligned(head.as_ptr().cast::<T>()) })
}

fn sock(sk: SockKind, kind: EventKind, bytes: &[u8]) -> Result<KernelRecord, DecodeError> {
    socket(sk, &pod::<SockEvent>(kind, bytes)?).map(KernelRecord::Socket)
}

fn task(t: &TaskInfo) -> Task {
    let read = t.flags & TASK_READ != 0;
    Task {
        boot_ns: t.ts_ns,
        pid: t.pid,
        tid: t.tid,
        uid: t.uid,
        gid: t.gid,
        comm: Comm::new(&t.comm),
        cgroup_id: t.cgroup_id,
        ppid: read.then_some(t.ppid),
        parent_start_ns: read.then_some(t.parent_start_ns),
        start_ns: read.then_some(t.start_ns),
        netns: (read && t.netns != 0).then_some(t.netns),
        loginuid: (read && t.flags & TASK_LOGINUID != 0).then_some(t.loginuid),
        running: Running::default(),
    }
}

fn socket(kind: SockKind, r: &SockEvent) -> Result<SocketEvent, DecodeError> {
    let flags = r.header.flags;
    let socket = if flags & FLAG_SOCK != 0 {
        let local = endpoint(r.family, &r.local_addr, r.local_port)?;
        let remote = (kind == SockKind::Accept)
            .then(|| endpoint(r.family, &r.remote_addr, r.remote_port))
            .transpose()?;
        Some(SocketInfo {
            protocol: r.protocol,
            sock_type: r.sock_type,
            local,
            remote,
        })
    } else {
        None
    };
    let requested = if flags & FLAG_REQ_ADDR != 0 {
        Some(endpoint(r.req_family, &r.req_addr, r.req_port)?)
    } else {
        None
    };
    Ok(SocketEvent {
        kind,
        task: Task {
            running: Running::from_kernel(r.image(kind.event_kind())),
            ..task(&r.task)
        },
        fd: (r.fd >= 0).then_some(r.fd),
        errno: r.header.errno,
        backlog: (kind == SockKind::Listen).then_some(r.backlog),
        socket,
        requested,
        inode: (r.inode != 0).then_some(r.inode),
        listener_inode: (r.listener_inode != 0).then_some(r.listener_inode),
        via: Via::from_kernel(r.via).ok_or(DecodeError::Via(r.via))?,
    })
}

fn exec(r: &ExecEvent) -> Result<ExecRecord, DecodeError> {
    let filename = &r.filename[..usize::from(r.filename_len).min(r.filename.len())];
    let args = &r.args[..usize::from(r.args_len).min(r.args.len())];
    Ok(ExecRecord {
        task: Task {
            running: Running::from_kernel((r.image, r.header.image_flags)),
            ..task(&r.task)
        },
        filename: filename.to_vec(),
        exe_path: exe_path(r),
        exe_detached: r.exe_path_flags & EXE_PATH_DETACHED != 0,
        args: split_args(args),
        args_truncated: r.header.flags & FLAG_ARGS_TRUNCATED != 0,
        stdio: stdio(r.stdio_sockets, &r.stdio)?,
    })
}

/// The sockets on the new image's standard streams; the lowest one's ends when they were read.
fn stdio(fds: u8, e: &SockEnds) -> Result<Option<StdioSocket>, DecodeError> {
    let fds = fds & 0b111;
    if fds == 0 {
        return Ok(None);
    }
    let socket = if e.family == 0 {
        None
    } else {
        Some(SocketInfo {
            protocol: e.protocol,
            sock_type: e.sock_type,
            local: endpoint(e.family, &e.local_addr, e.local_port)?,
            remote: (e.remote_port != 0)
                .then(|| endpoint(e.family, &e.remote_addr, e.remote_port))
                .transpose()?,
        })
    };
    Ok(Some(StdioSocket {
        fds,
        socket,
        inode: (e.inode != 0).then_some(e.inode),
    }))
}

fn endpoint(family: u8, addr: &[u8; 16], port: u16) -> Result<SocketAddr, DecodeError> {
    let ip = match u16::from(family) {
        AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(*addr)),
        _ => return Err(DecodeError::Family(family)),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
pub(crate) mod tests;

/// The executable's path from the kernel's walk: its names from the file up, reversed, the
/// steps that crossed a mount point left out. None unless the walk reached a root with every
/// name whole.
fn exe_path(r: &ExecEvent) -> Option<Vec<u8>> {
    if r.exe_path_flags & EXE_PATH_FULL == 0 {
        return None;
    }
    let mut path = Vec::new();
    for (len, name) in r.exe_name_lens.iter().zip(&r.exe_names).rev() {
        let len = usize::from(*len);
        if len == 0 {
            continue;
        }
        if len > name.len() || name[..len].contains(&b'/') || name[..len].contains(&0) {
            return None;
        }
        path.push(b'/');
        path.extend_from_slice(&name[..len]);
    }
    (!path.is_empty()).then_some(path)
}
