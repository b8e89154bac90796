//! Turning ring-buffer bytes into typed events, defensively: exact length, known kind, known
//! address family. Nothing here trusts the record's bytes beyond what it checks.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use portwatch_common::{
    AF_INET, AF_INET6, EventKind, FLAG_REQ_ADDR, FLAG_SOCK, RAW_EVENT_SIZE, RawEvent,
};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record is {got} bytes, expected {RAW_EVENT_SIZE}")]
    Length { got: usize },
    #[error("unknown event kind {0}")]
    Kind(u8),
    #[error("unknown address family {0}")]
    Family(u8),
}

/// What the socket looked like when the event happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u16,
    pub sock_type: u16,
    pub local: SocketAddr,
    /// The peer, for accepted connections.
    pub remote: Option<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketEvent {
    pub kind: EventKind,
    /// CLOCK_BOOTTIME nanoseconds.
    pub boot_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The thread's command name, as the kernel keeps it (up to 15 bytes, maybe not UTF-8).
    pub comm: Vec<u8>,
    pub fd: Option<i32>,
    /// 0 on success, else the positive errno.
    pub errno: i32,
    pub backlog: Option<u32>,
    /// None when the kernel could not read the socket (see the `socket_read_errors` counter).
    pub socket: Option<SocketInfo>,
    /// The address passed to bind(2).
    pub requested: Option<SocketAddr>,
}

/// Reads a record. The length check makes the unaligned read sound; every bit pattern is a valid
/// `RawEvent` (integers and byte arrays only).
pub fn raw(bytes: &[u8]) -> Result<RawEvent, DecodeError> {
    if bytes.len() != RAW_EVENT_SIZE {
        return Err(DecodeError::Length { got: bytes.len() });
    }
    // SAFETY: length checked above; RawEvent is plain old data.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<RawEvent>()) })
}

pub fn decode(bytes: &[u8]) -> Result<SocketEvent, DecodeError> {
    let r = raw(bytes)?;
    let kind = EventKind::try_from(r.kind).map_err(DecodeError::Kind)?;
    let socket = if r.flags & FLAG_SOCK != 0 {
        let local = endpoint(r.family, &r.local_addr, r.local_port)?;
        let remote = (kind == EventKind::Accept)
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
    let requested = if r.flags & FLAG_REQ_ADDR != 0 {
        Some(endpoint(r.req_family, &r.req_addr, r.req_port)?)
    } else {
        None
    };
    let comm_len = r.comm.iter().position(|&b| b == 0).unwrap_or(r.comm.len());
    Ok(SocketEvent {
        kind,
        boot_ns: r.ts_ns,
        pid: r.pid,
        tid: r.tid,
        uid: r.uid,
        gid: r.gid,
        comm: r.comm[..comm_len].to_vec(),
        fd: (r.fd >= 0).then_some(r.fd),
        errno: r.errno,
        backlog: (kind == EventKind::Listen).then_some(r.backlog),
        socket,
        requested,
    })
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

    pub(crate) fn raw_event(kind: EventKind) -> RawEvent {
        // SAFETY: all-zero is a valid RawEvent.
        let mut r: RawEvent = unsafe { std::mem::zeroed() };
        r.kind = kind as u8;
        r.ts_ns = 5_000_000_000;
        r.pid = 42;
        r.tid = 43;
        r.uid = 1000;
        r.gid = 100;
        r.fd = 3;
        r.comm[..7].copy_from_slice(b"python3");
        r
    }

    pub(crate) fn bytes(r: &RawEvent) -> Vec<u8> {
        // SAFETY: reading a POD value's bytes.
        unsafe { std::slice::from_raw_parts((r as *const RawEvent).cast::<u8>(), RAW_EVENT_SIZE) }
            .to_vec()
    }

    #[test]
    fn decodes_an_ipv4_bind_with_request() {
        let mut r = raw_event(EventKind::Bind);
        r.flags = FLAG_SOCK | FLAG_REQ_ADDR;
        r.family = AF_INET as u8;
        r.protocol = 17;
        r.sock_type = 2;
        r.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        r.local_port = 40000;
        r.req_family = AF_INET as u8;
        r.req_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        r.req_port = 0;
        let e = decode(&bytes(&r)).unwrap();
        assert_eq!(e.kind, EventKind::Bind);
        assert_eq!(e.comm, b"python3");
        let s = e.socket.unwrap();
        assert_eq!(s.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(s.remote, None);
        assert_eq!(e.requested, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(e.backlog, None);
    }

    #[test]
    fn decodes_an_ipv6_accept_with_peer() {
        let mut r = raw_event(EventKind::Accept);
        r.flags = FLAG_SOCK;
        r.family = AF_INET6 as u8;
        r.protocol = 6;
        r.local_addr = Ipv6Addr::LOCALHOST.octets();
        r.local_port = 8080;
        r.remote_addr = "::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets();
        r.remote_port = 51000;
        let e = decode(&bytes(&r)).unwrap();
        let s = e.socket.unwrap();
        assert_eq!(s.local, "[::1]:8080".parse().unwrap());
        assert_eq!(s.remote, Some("[::ffff:10.1.2.3]:51000".parse().unwrap()));
    }

    #[test]
    fn rejects_wrong_length() {
        let r = raw_event(EventKind::Bind);
        let b = bytes(&r);
        assert_eq!(decode(&b[..10]), Err(DecodeError::Length { got: 10 }));
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError::Length { got: 121 }));
        assert_eq!(decode(&[]), Err(DecodeError::Length { got: 0 }));
    }

    #[test]
    fn rejects_unknown_kind_and_family() {
        let mut r = raw_event(EventKind::Bind);
        r.kind = 99;
        assert_eq!(decode(&bytes(&r)), Err(DecodeError::Kind(99)));
        let mut r = raw_event(EventKind::Listen);
        r.flags = FLAG_SOCK;
        r.family = 1; // AF_UNIX never reaches userspace; if it does, it is an error
        assert_eq!(decode(&bytes(&r)), Err(DecodeError::Family(1)));
    }

    #[test]
    fn comm_without_nul_and_missing_socket() {
        let mut r = raw_event(EventKind::Listen);
        r.comm = *b"0123456789abcdef";
        r.errno = 98;
        r.fd = -1;
        let e = decode(&bytes(&r)).unwrap();
        assert_eq!(e.comm.len(), 16);
        assert_eq!(e.socket, None);
        assert_eq!(e.fd, None);
        assert_eq!(e.errno, 98);
        assert_eq!(e.backlog, Some(0));
    }
}
