//! The commands: each one's start-up order, from flags to a running pipeline.
pub mod canary;
pub mod doctor;
pub mod ls;
pub mod session;
pub mod signals;
pub mod timeline;
pub mod watch;
