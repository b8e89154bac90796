//! portwatch's kernel programs.
//!
//! Hooks on this tree are all stable tracepoints or BTF tracepoints, because they load on every
//! kernel portwatch supports, including locked-down ones without kprobes or fentry:
//! - `syscalls.rs`: bind(2), listen(2), accept(2)/accept4(2) as enter/exit pairs, so each event has
//!   both the arguments and the result (errno, the port the kernel picked);
//! - `close.rs`: a TCP socket leaving LISTEN, from `inet_sock_set_state`.
//!
//! Every read of a kernel structure goes through `kernel.rs`, with offsets the daemon took from the
//! running kernel's BTF. Programs never panic; failures bump a counter in `maps::COUNTERS`.
#![no_std]
#![no_main]

mod close;
mod emit;
mod filter;
mod kernel;
mod maps;
mod process;
mod syscalls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable in a verified program; the verifier rejects code that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
