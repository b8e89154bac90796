//! The listener inventory: every listening TCP socket and bound UDP socket of every network
//! namespace of the host, with the processes that hold it and how exposed it is.
//!
//! Method: sock_diag lists the sockets of each namespace (with their inodes); the inodes, which
//! are host-wide, are matched to processes through /proc/PID/fd. Limits: a socket held by no
//! process (kernel-owned, or passed over a unix socket in flight) has no owner; a namespace no
//! process or `ip netns` name refers to is not found (see `netns`).
use std::{collections::HashMap, io};

use crate::{
    model::net::Proto,
    model::{
        listener::Listener,
        net::{Scope, overlaps},
    },
    state::sockdiag,
};

/// The listeners of `snapshot`, their health with the connections counted, with a warning on
/// stderr for each namespace it could not list.
pub fn listed() -> crate::error::Result<Vec<Listener>> {
    let (listeners, failed) = snapshot_with(true)
        .map_err(|e| crate::error::Error::io("listing sockets with sock_diag", e))?;
    for (netns, e) in failed {
        eprintln!(
            "portwatch: warning: the sockets of network namespace {netns} are not listed ({e}): entering it needs CAP_SYS_ADMIN"
        );
    }
    Ok(listeners)
}

/// The listeners, sorted, and the namespaces that could not be listed, with the reason.
pub fn snapshot() -> io::Result<(Vec<Listener>, crate::host::netns::Unlisted)> {
    snapshot_with(false)
}

/// `snapshot`, with the connections of each TCP listener counted when `connections`.
fn snapshot_with(connections: bool) -> io::Result<(Vec<Listener>, crate::host::netns::Unlisted)> {
    let (sockets, _, failed) = sockdiag::everywhere_with(connections)?;
    let owners = crate::enrich::procfs::socket_owners();
    Ok((assemble(sockets, owners), failed))
}

/// `sockets` as listeners, each with its holders of `owners` (socket inode → pids) and how
/// many of the others share its port, sorted by namespace, protocol, port and address.
pub fn assemble(
    sockets: Vec<crate::model::listener::BoundSocket>,
    mut owners: HashMap<u64, Vec<u32>>,
) -> Vec<Listener> {
    // Sockets of different namespaces never share a port.
    let mut by_port: HashMap<(u32, Proto, u16), Vec<usize>> = HashMap::new();
    for (i, s) in sockets.iter().enumerate() {
        by_port
            .entry((s.netns, s.proto, s.local.port()))
            .or_default()
            .push(i);
    }
    let mut out: Vec<Listener> = sockets
        .iter()
        .map(|s| {
            let shared = by_port[&(s.netns, s.proto, s.local.port())]
                .iter()
                .filter(|&&j| {
                    sockets[j].inode != s.inode && overlaps(s.bound(), sockets[j].bound())
                })
                .count();
            let mut pids = owners.remove(&s.inode).unwrap_or_default();
            pids.sort_unstable();
            Listener {
                socket: s.clone(),
                owners: pids,
                scope: Scope::of(&s.local),
                shared,
                reachability: None,
            }
        })
        .collect();
    out.sort_by_key(|l| {
        let s = &l.socket;
        (s.netns, s.proto, s.local.port(), s.local.ip())
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_as_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (all, _) = snapshot().unwrap();
        let mine = all
            .iter()
            .find(|x| x.socket.proto == Proto::Tcp && x.socket.local.port() == port)
            .unwrap();
        assert_eq!(mine.owners, vec![std::process::id()]);
        assert_eq!(mine.scope, Scope::Loopback);
        assert_eq!(mine.shared, 0);
    }
}
