//! Facts about this machine that every stage may read, at the bottom of the stack: who it is
//! (`identity`: hostname, machine and boot ids, kernel release, OS), what this process may do
//! (`caps`), where the cgroup v2 hierarchy is (`cgroup`), and its network namespaces (`netns`).
//! Read from /proc and /sys; nothing here knows about records or stages.
pub mod caps;
pub mod cgroup;
pub mod identity;
pub mod netns;

pub use identity::{Host, OsRelease};
