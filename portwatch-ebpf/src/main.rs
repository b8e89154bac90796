//! portwatch's kernel programs.
//!
//! The daemon's hook table picks, per hook, the best of these the running kernel accepts:
//! - `functions.rs`: bind, listen and accept at the kernel functions (fentry/fexit, else
//!   kprobe/kretprobe), which also see calls that bypass the syscalls;
//! - `syscalls.rs`: bind(2), listen(2), accept(2)/accept4(2) as enter/exit tracepoint pairs,
//!   which load everywhere, including locked-down kernels without kprobes or fentry;
//! - `close.rs`: a TCP socket leaving LISTEN, from `inet_sock_set_state`.
//!
//! Each has the arguments and the result of the call (errno, the port the kernel picked).
//!
//! Every read of a kernel structure goes through `kernel.rs`, with offsets the daemon took from the
//! running kernel's BTF. Programs never panic; failures bump a counter in `maps::COUNTERS`.
#![no_std]
#![no_main]

mod close;
mod emit;
mod filter;
mod functions;
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
