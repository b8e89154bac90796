//! The listener inventory: every listening TCP socket and bound UDP socket of the host's network
//! namespace, with the processes that hold it and how exposed it is.
//!
//! Method: sock_diag lists the sockets (with their inodes); the inodes are matched to processes
//! through /proc/PID/fd. Limits: only the namespace portwatch runs in; a socket held by no process
//! (kernel-owned, or passed over a unix socket in flight) has no owner.
use std::{collections::HashMap, io};

use crate::{
    model::net::Proto,
    model::{
        listener::Listener,
        net::{Scope, overlaps},
    },
    state::sockdiag,
};

pub fn snapshot() -> io::Result<Vec<Listener>> {
    let sockets = sockdiag::listening_sockets()?;
    let mut owners = crate::enrich::procfs::socket_owners();
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
            }
        })
        .collect();
    out.sort_by_key(|l| (l.socket.proto, l.socket.local.port(), l.socket.local.ip()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
