//! Empty on purpose: portwatch's build script depends on this crate so that cargo re-runs it
//! (and rebuilds the kernel programs in `main.rs`) when this crate or its dependencies change.
#![no_std]
