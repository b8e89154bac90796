//! Turning ring-buffer bytes into typed records, defensively: a known kind in the first byte, the
//! exact length of that kind's struct, known address families. Nothing here trusts the record's
//! bytes beyond what it checks.
use std::{
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use crate::model::{
    socket::{SockKind, SocketEvent, SocketInfo, StdioSocket, Via},
    task::{Comm, ExecRecord, Task, split_args},
};
use portwatch_common::{
    AF_INET, AF_INET6, EventKind, ExecEvent, ExitEvent, FLAG_ARGS_TRUNCATED, FLAG_REQ_ADDR,
    FLAG_SOCK, RecordHeader, SockEnds, SockEvent, TASK_LOGINUID, TASK_READ, TaskInfo,
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
        task: task(&r.task),
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
        task: task(&r.task),
        filename: filename.to_vec(),
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
pub(crate) mod tests {
    use super::*;

    /// The bytes of a POD record.
    pub(crate) fn bytes<T: Copy>(r: &T) -> Vec<u8> {
        // SAFETY: reading a POD value's bytes.
        unsafe { std::slice::from_raw_parts((r as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    pub(crate) fn sock_event(kind: EventKind) -> SockEvent {
        // SAFETY: all-zero is a valid SockEvent.
        let mut r: SockEvent = unsafe { std::mem::zeroed() };
        r.header.kind = kind as u8;
        r.task.ts_ns = 5_000_000_000;
        r.task.pid = 42;
        r.task.tid = 43;
        r.task.uid = 1000;
        r.task.gid = 100;
        r.task.ppid = 1;
        r.task.start_ns = 4_000_000_000;
        r.task.flags = TASK_READ;
        r.fd = 3;
        r.task.comm[..7].copy_from_slice(b"python3");
        r
    }

    fn socket_of(r: &SockEvent) -> SocketEvent {
        match decode(&bytes(r)).unwrap().record {
            KernelRecord::Socket(s) => s,
            other => panic!("not a socket record: {other:?}"),
        }
    }

    #[test]
    fn decodes_an_ipv4_bind_with_request() {
        let mut r = sock_event(EventKind::Bind);
        r.header.flags = FLAG_SOCK | FLAG_REQ_ADDR;
        r.family = AF_INET as u8;
        r.protocol = 17;
        r.sock_type = 2;
        r.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        r.local_port = 40000;
        r.req_family = AF_INET as u8;
        r.req_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let e = socket_of(&r);
        assert_eq!(e.kind, SockKind::Bind);
        assert_eq!(e.task.comm.as_bytes(), b"python3");
        assert_eq!(e.task.ppid, Some(1));
        assert_eq!(e.task.start_ns, Some(4_000_000_000));
        assert_eq!(e.task.loginuid, None);
        let s = e.socket.unwrap();
        assert_eq!(s.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(s.remote, None);
        assert_eq!(e.requested, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(e.backlog, None);
    }

    #[test]
    fn decodes_an_ipv6_accept_with_peer() {
        let mut r = sock_event(EventKind::Accept);
        r.header.flags = FLAG_SOCK;
        r.family = AF_INET6 as u8;
        r.protocol = 6;
        r.local_addr = Ipv6Addr::LOCALHOST.octets();
        r.local_port = 8080;
        r.remote_addr = "::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets();
        r.remote_port = 51000;
        let s = socket_of(&r).socket.unwrap();
        assert_eq!(s.local, "[::1]:8080".parse().unwrap());
        assert_eq!(s.remote, Some("[::ffff:10.1.2.3]:51000".parse().unwrap()));
    }

    /// The socket kinds are EventKind::SOCKET's, and each record is named as its kernel kind.
    #[test]
    fn every_socket_kind_decodes_to_the_record_of_its_name() {
        use crate::output::record::{Record, SocketRecord};
        for kind in EventKind::SOCKET {
            let s = socket_of(&sock_event(kind));
            assert_eq!(
                Record::from_socket(s.kind, SocketRecord::default()).event(),
                kind.name()
            );
        }
    }

    #[test]
    fn rejects_wrong_length_for_the_kind() {
        let b = bytes(&sock_event(EventKind::Bind));
        assert_eq!(
            decode(&b[..10]),
            Err(DecodeError::Length {
                kind: "bind",
                got: 10,
                want: 192
            })
        );
        let mut longer = b.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(DecodeError::Length { got: 193, .. })
        ));
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
        // A socket-sized record claiming to be an exec record.
        let mut wrong = b;
        wrong[0] = EventKind::Exec as u8;
        assert!(matches!(
            decode(&wrong),
            Err(DecodeError::Length { kind: "exec", .. })
        ));
    }

    #[test]
    fn rejects_unknown_kind_and_family() {
        let mut r = sock_event(EventKind::Bind);
        r.header.kind = 99;
        assert_eq!(decode(&bytes(&r)), Err(DecodeError::Kind(99)));
        let mut r = sock_event(EventKind::Listen);
        r.header.flags = FLAG_SOCK;
        r.family = 1; // AF_UNIX never reaches userspace; if it does, it is an error
        assert_eq!(decode(&bytes(&r)), Err(DecodeError::Family(1)));
    }

    #[test]
    fn comm_without_nul_missing_socket_and_unread_task() {
        let mut r = sock_event(EventKind::Listen);
        r.task.comm = *b"0123456789abcdef";
        r.task.flags = 0;
        r.header.errno = 98;
        r.fd = -1;
        let e = socket_of(&r);
        assert_eq!(e.task.comm.as_bytes(), b"0123456789abcdef");
        assert_eq!(e.task.ppid, None);
        assert_eq!(e.task.start_ns, None);
        assert_eq!(e.socket, None);
        assert_eq!(e.fd, None);
        assert_eq!(e.errno, 98);
        assert_eq!(e.backlog, Some(0));
    }

    pub(crate) fn exec_event(filename: &[u8], args: &[u8]) -> ExecEvent {
        // SAFETY: all-zero is a valid ExecEvent.
        let mut r: ExecEvent = unsafe { std::mem::zeroed() };
        r.header.kind = EventKind::Exec as u8;
        r.task = sock_event(EventKind::Exec).task;
        r.filename[..filename.len()].copy_from_slice(filename);
        r.filename_len = filename.len() as u16;
        r.args[..args.len()].copy_from_slice(args);
        r.args_len = args.len() as u16;
        r
    }

    #[test]
    fn decodes_exec_arguments_including_non_utf8_and_empty_ones() {
        let r = exec_event(b"/usr/bin/printf", b"printf\0\0a\xffb\0");
        let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
            panic!("not an exec record")
        };
        assert_eq!(e.filename, b"/usr/bin/printf");
        assert_eq!(
            e.args,
            vec![b"printf".to_vec(), b"".to_vec(), b"a\xffb".to_vec()]
        );
        assert!(!e.args_truncated);
        // Garbage lengths are clamped to the buffers.
        let mut r = exec_event(b"x", b"");
        r.filename_len = u16::MAX;
        r.args_len = u16::MAX;
        r.header.flags = FLAG_ARGS_TRUNCATED;
        let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
            panic!("not an exec record")
        };
        assert_eq!(e.filename.len(), portwatch_common::FILENAME_LEN);
        assert!(e.args_truncated);
        assert_eq!(e.stdio, None);
    }

    #[test]
    fn decodes_the_sockets_on_an_exec_standard_streams() {
        let mut r = exec_event(b"/bin/sh", b"sh\0");
        // stdout and stderr; a bit past stderr is not a stream and is dropped.
        r.stdio_sockets = 0b1110;
        r.stdio.family = AF_INET6 as u8;
        r.stdio.protocol = 6;
        r.stdio.local_port = 4444;
        r.stdio.inode = 77;
        let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
            panic!("not an exec record")
        };
        let stdio = e.stdio.unwrap();
        assert_eq!(stdio.streams().collect::<Vec<_>>(), ["stdout", "stderr"]);
        let s = stdio.socket.unwrap();
        assert_eq!(s.local, "[::]:4444".parse().unwrap());
        // Not connected: no peer.
        assert_eq!(s.remote, None);
        assert_eq!(stdio.inode, Some(77));
        // Sockets whose ends could not be read are still reported, without them.
        r.stdio.family = 0;
        let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
            panic!("not an exec record")
        };
        assert_eq!(e.stdio.unwrap().socket, None);
        // A family the kernel cannot have sent is a decode error.
        r.stdio.family = 1;
        assert_eq!(decode(&bytes(&r)).err(), Some(DecodeError::Family(1)));
    }
}
