//! The ABI between portwatch's kernel programs and its daemon.
//!
//! Everything that crosses the kernel/user boundary is defined here once: the record the kernel
//! pushes through the ring buffer, the offsets the daemon hands to the kernel before load, the
//! indices of the counters the kernel bumps, and the names of maps and programs.
//! All types are `#[repr(C)]`, `Copy`, with explicit padding and compile-time size checks.
//! One module per concern: `names`, `record` (the ring-buffer records), `offsets`, `filter`,
//! `flood`, `counters`.
#![no_std]

pub mod counters;
pub mod filter;
pub mod flood;
pub mod names;
mod offsets;
mod record;

pub use filter::FilterConfig;
pub use flood::{FloodLimit, FloodState};
pub use offsets::{IOU_CQE, IOU_NONE, IOU_RES_ARG, KernelOffsets};
pub use record::*;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), only integers and byte arrays, no implicit padding.
    unsafe impl aya::Pod for super::SockEvent {}
    unsafe impl aya::Pod for super::ExecEvent {}
    unsafe impl aya::Pod for super::ExitEvent {}
    unsafe impl aya::Pod for super::ForkParent {}
    unsafe impl aya::Pod for super::Pending {}
    unsafe impl aya::Pod for super::ImageId {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FilterConfig {}
    unsafe impl aya::Pod for super::FloodLimit {}
    unsafe impl aya::Pod for super::FloodState {}
}
