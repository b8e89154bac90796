//! The kernel's table of bound UDP sockets (`BOUND_UDP`, socket cookie → inode), whose release
//! the `udp_close` hook reports. Sockets bound after the hooks attached enter it in the kernel;
//! those found by listing (the start-up snapshot, reconciliation after a loss) are added here,
//! so their close is reported too.
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use portwatch_common::names;

use crate::{
    error::{Error, Result},
    model::source::UdpCloses,
    model::{listener::BoundSocket, net::Proto},
};

pub struct BoundUdp(HashMap<MapData, u64, u64>);

impl BoundUdp {
    /// Takes the table out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let map = ebpf
            .take_map(names::BOUND_UDP_MAP)
            .ok_or_else(|| Error::Load(format!("map {} is missing", names::BOUND_UDP_MAP)))?;
        HashMap::try_from(map)
            .map(Self)
            .map_err(|e| Error::Load(format!("{}: {e}", names::BOUND_UDP_MAP)))
    }
}

impl UdpCloses for BoundUdp {
    /// A socket closed since it was listed leaves an entry that nothing matches (cookies are
    /// never reused), at most one per such socket, freed at exit.
    fn track(&mut self, sockets: &[&BoundSocket]) {
        for s in sockets {
            if s.proto == Proto::Udp && s.cookie != 0 {
                // Full: like a bind the kernel could not track; the growth check covers it.
                let _ = self.0.insert(s.cookie, s.inode, 0);
            }
        }
    }
}
