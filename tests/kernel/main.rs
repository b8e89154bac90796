//! Integration tests against the real kernel: they load portwatch's real eBPF programs (as root),
//! trigger each case from the test's own thread, and assert on the fields of the event portwatch
//! prints for that thread.
mod ancestry;
mod baseline;
mod containers;
mod corpus;
mod daemon;
mod detections;
mod doctor;
mod errors;
mod events;
mod filters;
mod flood;
mod formats;
mod fuse;
mod harness;
mod health;
mod image;
mod inventory;
mod lifecycle;
mod metrics;
mod names;
mod process;
mod reachability;
mod shells;
mod sinks;
mod stopping;
mod syslog;
mod timeline;
mod uring;
