//! The kernel's table of bound UDP sockets (`BOUND_UDP`, socket cookie → inode), whose release
//! the `udp_close` hook reports. Sockets bound after the hooks attached enter it in the kernel;
//! those of the start-up snapshot are added here, so their close is reported too.
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use portwatch_common::names;

use crate::{
    error::{Error, Result},
    model::{listener::Listener, net::Proto},
};

/// Adds the snapshot's UDP sockets. A socket closed since the snapshot leaves an entry that
/// nothing matches (cookies are never reused), at most one per such socket, freed at exit.
pub fn remember_snapshot(ebpf: &mut Ebpf, listeners: Vec<&Listener>) -> Result<()> {
    let map = ebpf
        .map_mut(names::BOUND_UDP_MAP)
        .ok_or_else(|| Error::Load(format!("map {} is missing", names::BOUND_UDP_MAP)))?;
    let mut map: HashMap<&mut MapData, u64, u64> = HashMap::try_from(map)
        .map_err(|e| Error::Load(format!("{}: {e}", names::BOUND_UDP_MAP)))?;
    for s in listeners.into_iter().map(|l| &l.socket) {
        if s.proto == Proto::Udp && s.cookie != 0 {
            // Full: like a bind the kernel could not track; the growth check covers it.
            let _ = map.insert(s.cookie, s.inode, 0);
        }
    }
    Ok(())
}
