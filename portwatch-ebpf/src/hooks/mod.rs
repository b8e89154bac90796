//! One file per hook, as the daemon's hook table names them, each holding that hook's programs
//! for every attach type it has.
mod accept;
mod bind;
mod close;
mod listen;
mod process;
mod udp_close;
mod uring;
