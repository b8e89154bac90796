//! portwatch's kernel programs.
//!
//! `hooks/` has one file per hook (bind, listen, accept, close, process), each with that hook's
//! programs for every attach type; the daemon's hook table picks, per hook, the best the running
//! kernel accepts. bind, listen and accept prefer the kernel functions (fentry/fexit, else
//! kprobe/kretprobe), which also see calls that bypass the syscalls, and fall back to the
//! syscall tracepoints, which load everywhere; with those, `uring.rs` reads io_uring's requests,
//! which bypass the syscalls. `udp_close.rs` holds cgroup socket programs: UDP sockets change
//! no state when they close. `call.rs` holds the in-flight call the entry and exit programs
//! share: the arguments and the result (errno, the port the kernel picked).
//!
//! Every read of a kernel structure goes through `kernel.rs`, with offsets the daemon took from the
//! running kernel's BTF. Programs never panic; failures bump a counter in `maps::COUNTERS`, and
//! `diag.rs` says why in words when `doctor --verbose` loaded them with their diagnostics on.
#![no_std]
#![no_main]

mod call;
mod diag;
mod emit;
mod filter;
mod flood;
mod hooks;
mod kernel;
mod maps;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable in a verified program; the verifier rejects code that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
