//! Listing the host's listening TCP and bound UDP sockets with sock_diag (NETLINK_SOCK_DIAG,
//! `inet_diag`), the interface `ss` uses, with their queues and drops, and counting the TCP
//! connections on their ports by state. Parsing is bounds-checked; the kernel's answer is never
//! trusted beyond the lengths it states and we check.
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use portwatch_common::{TCP_CLOSE, TCP_LISTEN};
use rustc_hash::FxHashMap;

use crate::{
    host::netns,
    model::source::{Present, Sockets},
    model::{
        health::{Connections, Health},
        listener::BoundSocket,
        net::Proto,
    },
};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// struct inet_diag_msg
const DIAG_MSG_LEN: usize = 72;
const INET_DIAG_SKV6ONLY: u16 = 11;
/// The socket memory attribute: u32s, SK_MEMINFO_DROPS (sk_drops) the ninth.
const INET_DIAG_SKMEMINFO: u16 = 7;
const SK_MEMINFO_DROPS: usize = 8;
const TCP_ESTABLISHED: u32 = 1;
const TCP_SYN_RECV: u32 = 3;
const TCP_CLOSE_WAIT: u32 = 8;

/// Every listening TCP socket and every bound, unconnected UDP socket of every network namespace
/// portwatch can enter, and the namespaces listed. A namespace it cannot enter (or list) is left
/// out and named in the third member with the reason.
pub fn everywhere() -> io::Result<(Vec<BoundSocket>, Present, netns::Unlisted)> {
    everywhere_with(false)
}

/// `everywhere`, and with `connections` each TCP listener's health counts the connections on
/// its address and port by state (a second dump per namespace, of every connection).
pub fn everywhere_with(
    connections: bool,
) -> io::Result<(Vec<BoundSocket>, Present, netns::Unlisted)> {
    let mut all = Vec::new();
    let mut present = Present::default();
    let mut failed = Vec::new();
    let list = move || {
        let mut sockets = listening_sockets()?;
        if connections {
            count_connections(&mut sockets)?;
        }
        Ok(sockets)
    };
    for (i, ns) in netns::all()?.into_iter().enumerate() {
        // portwatch's own namespace (the first) needs no thread.
        let listed = if i == 0 { list() } else { ns.run(list) };
        match listed {
            Ok(sockets) => {
                present.namespaces.insert(ns.inode);
                for mut s in sockets {
                    s.netns = ns.inode;
                    present.inodes.insert(s.inode);
                    all.push(s);
                }
            }
            Err(e) => failed.push((ns.inode, e)),
        }
    }
    Ok((all, present, failed))
}

/// Every listening TCP socket and every bound, unconnected UDP socket of the calling thread's
/// network namespace (their `netns` is left 0 for the caller).
pub fn listening_sockets() -> io::Result<Vec<BoundSocket>> {
    let mut all = Vec::new();
    // UDP sockets that are bound but not connected show as TCP_CLOSE ("UNCONN" in ss).
    for (proto, state) in [(Proto::Tcp, TCP_LISTEN), (Proto::Udp, TCP_CLOSE)] {
        for family in [libc::AF_INET, libc::AF_INET6] {
            dump(family as u8, proto, 1 << state as u32, |p| {
                let s = parse_diag(p, proto)?;
                if s.local.port() != 0 {
                    all.push(s);
                }
                Some(())
            })?;
        }
    }
    Ok(all)
}

/// Adds to each TCP listener of `sockets` the connections of this namespace on its address and
/// port. A connection belongs to the listener of its family on exactly its address, else to
/// the wildcard one (an accepted socket has its listener's family; IPv4 peers of a `::`
/// listener show as v4-mapped IPv6). Only counts are kept, never the connections.
fn count_connections(sockets: &mut [BoundSocket]) -> io::Result<()> {
    let mut counts: FxHashMap<SocketAddr, Connections> = FxHashMap::default();
    let states = 1 << TCP_ESTABLISHED | 1 << TCP_SYN_RECV | 1 << TCP_CLOSE_WAIT;
    for family in [libc::AF_INET, libc::AF_INET6] {
        dump(family as u8, Proto::Tcp, states, |p| {
            let (local, state) = (local_of(p)?, *p.get(1)?);
            let c = counts.entry(local).or_default();
            match u32::from(state) {
                TCP_ESTABLISHED => c.established += 1,
                TCP_CLOSE_WAIT => c.close_wait += 1,
                // Request sockets show as TCP_NEW_SYN_RECV (12) or SYN_RECV.
                _ => c.syn_recv += 1,
            }
            Some(())
        })?;
    }
    // The TCP listeners by (port, family): outgoing connections, each on a port of its own,
    // then cost a lookup, not a pass over every listener.
    let mut by_port: FxHashMap<(u16, bool), Vec<usize>> = FxHashMap::default();
    for (i, s) in sockets.iter().enumerate() {
        if s.proto == Proto::Tcp {
            by_port
                .entry((s.local.port(), s.local.is_ipv4()))
                .or_default()
                .push(i);
        }
    }
    for (local, c) in counts {
        let Some(same) = by_port.get(&(local.port(), local.is_ipv4())) else {
            continue;
        };
        let exact = same.iter().any(|&i| sockets[i].local.ip() == local.ip());
        for &i in same {
            let s = &mut sockets[i];
            if s.local.ip() == local.ip() || (!exact && s.local.ip().is_unspecified()) {
                if let Some(h) = &mut s.health {
                    h.connections.get_or_insert_default().add(c);
                }
            }
        }
    }
    for s in sockets.iter_mut().filter(|s| s.proto == Proto::Tcp) {
        if let Some(h) = &mut s.health {
            h.connections.get_or_insert_default();
        }
    }
    Ok(())
}

fn request(family: u8, proto: Proto, states: u32) -> Vec<u8> {
    let protocol = proto.number() as u8;
    let len = NLMSG_HDRLEN + 56;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // seq
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    // struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed inet_diag_sockid
    // ext: the socket memory attribute (for the drops).
    let ext = 1 << (INET_DIAG_SKMEMINFO - 1);
    b.extend_from_slice(&[family, protocol, ext, 0]);
    b.extend_from_slice(&states.to_ne_bytes());
    b.resize(len, 0);
    b
}

/// Asks for the sockets of `family` and `proto` in `states` and hands each socket message's
/// payload to `each` (None: malformed).
fn dump(
    family: u8,
    proto: Proto,
    states: u32,
    mut each: impl FnMut(&[u8]) -> Option<()>,
) -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request(family, proto, states);
    // SAFETY: valid buffer and length.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: valid buffer and length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 || parse_messages(&buf[..n as usize], &mut each)? {
            return Ok(());
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag answer")
}

/// Parses one datagram of netlink messages, each socket's to `each`; true once the dump is
/// complete.
pub fn parse_messages(
    mut b: &[u8],
    each: &mut impl FnMut(&[u8]) -> Option<()>,
) -> io::Result<bool> {
    while b.len() >= NLMSG_HDRLEN {
        let len = u32_at(b, 0).ok_or_else(malformed)? as usize;
        let kind = u16_at(b, 4).ok_or_else(malformed)?;
        if len < NLMSG_HDRLEN || len > b.len() {
            return Err(malformed());
        }
        let payload = &b[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = u32_at(payload, 0).ok_or_else(malformed)? as i32;
                return Err(io::Error::from_raw_os_error(-code));
            }
            SOCK_DIAG_BY_FAMILY => each(payload).ok_or_else(malformed)?,
            _ => {}
        }
        let advance = (len + 3) & !3;
        b = b.get(advance..).unwrap_or(&[]);
    }
    Ok(false)
}

/// `parse_messages` of listening or bound sockets into `out` (tests, fuzzing).
pub fn parse_sockets(b: &[u8], proto: Proto, out: &mut Vec<BoundSocket>) -> io::Result<bool> {
    parse_messages(b, &mut |p: &[u8]| {
        out.push(parse_diag(p, proto)?);
        Some(())
    })
}

/// The local address of a struct inet_diag_msg.
fn local_of(p: &[u8]) -> Option<SocketAddr> {
    if p.len() < DIAG_MSG_LEN {
        return None;
    }
    // inet_diag_sockid at 4: sport, dport (big endian), src[16], dst[16], if, cookie
    let sport = u16::from_be_bytes(p.get(4..6)?.try_into().ok()?);
    let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
    let ip = match i32::from(p[0]) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
        libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(src)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, sport))
}

/// struct inet_diag_msg, then its attributes.
fn parse_diag(p: &[u8], proto: Proto) -> Option<BoundSocket> {
    let local = local_of(p)?;
    let ip = local.ip();
    // The cookie's two 32-bit halves, low first (sock_diag_save_cookie).
    let cookie = u64::from(u32_at(p, 44)?) | u64::from(u32_at(p, 48)?) << 32;
    // idiag_rqueue, idiag_wqueue: a listener's accept queue and its size; a UDP socket's
    // receive and send queues in bytes.
    let (rqueue, wqueue) = (u32_at(p, 56)?, u32_at(p, 60)?);
    let uid = u32_at(p, 64)?;
    let inode = u64::from(u32_at(p, 68)?);
    let mut v6only = None;
    let mut drops = None;
    let mut attrs = p.get(DIAG_MSG_LEN..)?;
    while attrs.len() >= 4 {
        let alen = usize::from(u16_at(attrs, 0)?);
        let atype = u16_at(attrs, 2)?;
        if alen < 4 || alen > attrs.len() {
            break;
        }
        if atype == INET_DIAG_SKV6ONLY {
            v6only = attrs.get(4).map(|&v| v != 0);
        }
        if atype == INET_DIAG_SKMEMINFO && alen >= 4 + 4 * (SK_MEMINFO_DROPS + 1) {
            drops = u32_at(attrs, 4 + 4 * SK_MEMINFO_DROPS).map(u64::from);
        }
        attrs = attrs.get((alen + 3) & !3..).unwrap_or(&[]);
    }
    let tcp = proto == Proto::Tcp;
    let health = Health {
        accept_queue: tcp.then_some(rqueue),
        accept_queue_max: tcp.then_some(wqueue),
        receive_queue: (!tcp).then_some(rqueue),
        drops,
        ..Health::default()
    };
    Some(BoundSocket {
        proto,
        local,
        inode,
        uid,
        v6only: if ip.is_ipv6() { v6only } else { None },
        cookie,
        netns: 0,
        health: Some(health),
    })
}

/// The host's listening and bound sockets, as the stream's `Sockets`.
pub struct SockDiag;

impl Sockets for SockDiag {
    fn present(&mut self) -> io::Result<Present> {
        Ok(everywhere()?.1)
    }

    fn listed(&mut self) -> io::Result<(Vec<BoundSocket>, Present)> {
        let (sockets, mut present, failed) = everywhere()?;
        present.unlisted = failed.len();
        Ok((sockets, present))
    }

    fn owners(&mut self) -> std::collections::HashMap<u64, Vec<u32>> {
        crate::enrich::procfs::socket_owners()
    }

    fn health(&mut self) -> io::Result<(Vec<BoundSocket>, netns::Unlisted)> {
        let (sockets, _, failed) = everywhere_with(true)?;
        Ok((sockets, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_listener_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let u = std::net::UdpSocket::bind("[::]:0").unwrap();
        let uport = u.local_addr().unwrap().port();
        let all = listening_sockets().unwrap();
        let tcp = all
            .iter()
            .find(|s| s.proto == Proto::Tcp && s.local.port() == port)
            .unwrap();
        assert_eq!(tcp.local, l.local_addr().unwrap());
        assert!(tcp.inode != 0);
        let udp = all
            .iter()
            .find(|s| s.proto == Proto::Udp && s.local.port() == uport)
            .unwrap();
        assert_eq!(udp.local, u.local_addr().unwrap());
        // A wildcard IPv6 socket takes IPv4 too (the kernel makes specific-address ones v6-only).
        assert_eq!(udp.v6only, Some(false));
    }

    #[test]
    fn rejects_truncated_and_lying_messages() {
        let mut out = Vec::new();
        // A header claiming more bytes than there are.
        let mut msg = 200u32.to_ne_bytes().to_vec();
        msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        assert!(parse_sockets(&msg, Proto::Tcp, &mut out).is_err());
        // A socket message too short to hold an inet_diag_msg.
        let mut short = 20u32.to_ne_bytes().to_vec();
        short.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        short.extend_from_slice(&[0; 14]);
        assert!(parse_sockets(&short, Proto::Tcp, &mut out).is_err());
        assert!(out.is_empty());
    }
}
