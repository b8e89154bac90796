//! The listener inventory: every listening TCP socket and bound UDP socket of the host's network
//! namespace, with the processes that hold it and how exposed it is.
//!
//! Method: sock_diag lists the sockets (with their inodes); the inodes are matched to processes
//! through /proc/PID/fd. Limits: only the namespace portwatch runs in; a socket held by no process
//! (kernel-owned, or passed over a unix socket in flight) has no owner.
use std::{collections::HashMap, io, net::SocketAddr};

use serde::Serialize;

use crate::sockdiag::{self, DiagSocket, Proto};

/// Who can reach a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// 127.0.0.0/8 or ::1: this host only.
    Loopback,
    /// 0.0.0.0 or ::: every interface.
    All,
    /// One specific address.
    Address,
}

impl Scope {
    pub fn of(addr: &SocketAddr) -> Self {
        let ip = addr.ip();
        if ip.is_loopback() || ip.to_canonical().is_loopback() {
            Self::Loopback
        } else if ip.is_unspecified() {
            Self::All
        } else {
            Self::Address
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::All => "all",
            Self::Address => "address",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub socket: DiagSocket,
    /// Processes holding the socket, lowest pid first.
    pub owners: Vec<u32>,
    pub scope: Scope,
    /// Other sockets of the same protocol on the same port whose addresses overlap this one's
    /// (SO_REUSEPORT groups, or a specific address next to a wildcard one).
    pub shared: usize,
}

/// Addresses that can receive the same packets: equal, or one of them the wildcard (an IPv4
/// wildcard overlaps IPv6 only through a dual-stack `::` socket).
fn overlaps(a: &DiagSocket, b: &DiagSocket) -> bool {
    let (x, y) = (a.local.ip(), b.local.ip());
    if x == y {
        return true;
    }
    let dual = |s: &DiagSocket| s.local.ip().is_unspecified() && s.v6only == Some(false);
    match (x.is_ipv4(), y.is_ipv4()) {
        (true, true) | (false, false) => x.is_unspecified() || y.is_unspecified(),
        _ => dual(a) || dual(b),
    }
}

pub fn snapshot() -> io::Result<Vec<Listener>> {
    let sockets = sockdiag::listening_sockets()?;
    let mut owners = crate::procfs::socket_owners();
    let mut by_port: HashMap<(Proto, u16), Vec<usize>> = HashMap::new();
    for (i, s) in sockets.iter().enumerate() {
        by_port
            .entry((s.proto, s.local.port()))
            .or_default()
            .push(i);
    }
    let mut out: Vec<Listener> = sockets
        .iter()
        .map(|s| {
            let shared = by_port[&(s.proto, s.local.port())]
                .iter()
                .filter(|&&j| sockets[j].inode != s.inode && overlaps(s, &sockets[j]))
                .count();
            let mut pids = owners.remove(&s.inode).unwrap_or_default();
            pids.sort_unstable();
            Listener {
                socket: s.clone(),
                owners: pids,
                scope: Scope::of(&s.local),
                shared,
            }
        })
        .collect();
    out.sort_by_key(|l| (l.socket.proto, l.socket.local.port(), l.socket.local.ip()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(addr: &str, v6only: Option<bool>) -> DiagSocket {
        DiagSocket {
            proto: Proto::Tcp,
            local: addr.parse().unwrap(),
            inode: 1,
            uid: 0,
            v6only,
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(
            Scope::of(&"127.0.0.53:53".parse().unwrap()),
            Scope::Loopback
        );
        assert_eq!(Scope::of(&"[::1]:1".parse().unwrap()), Scope::Loopback);
        assert_eq!(
            Scope::of(&"[::ffff:127.0.0.1]:1".parse().unwrap()),
            Scope::Loopback
        );
        assert_eq!(Scope::of(&"0.0.0.0:22".parse().unwrap()), Scope::All);
        assert_eq!(Scope::of(&"[::]:22".parse().unwrap()), Scope::All);
        assert_eq!(Scope::of(&"10.0.0.5:80".parse().unwrap()), Scope::Address);
    }

    #[test]
    fn overlapping_addresses() {
        assert!(overlaps(
            &diag("0.0.0.0:80", None),
            &diag("10.0.0.5:80", None)
        ));
        assert!(overlaps(
            &diag("10.0.0.5:80", None),
            &diag("10.0.0.5:80", None)
        ));
        assert!(!overlaps(
            &diag("10.0.0.5:80", None),
            &diag("10.0.0.6:80", None)
        ));
        assert!(overlaps(
            &diag("[::]:80", Some(false)),
            &diag("127.0.0.1:80", None)
        ));
        assert!(!overlaps(
            &diag("[::]:80", Some(true)),
            &diag("127.0.0.1:80", None)
        ));
    }

    #[test]
    fn finds_this_process_as_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let all = snapshot().unwrap();
        let mine = all
            .iter()
            .find(|x| x.socket.proto == Proto::Tcp && x.socket.local.port() == port)
            .unwrap();
        assert_eq!(mine.owners, vec![std::process::id()]);
        assert_eq!(mine.scope, Scope::Loopback);
        assert_eq!(mine.shared, 0);
    }
}
