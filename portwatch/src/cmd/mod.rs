//! The commands: each one's start-up order, from flags to a running pipeline.
pub mod ls;
pub mod watch;
