//! What portwatch knows about the host's listeners: the live table kept from events
//! (`listeners`) and the snapshot of the sockets that existed at start-up (`inventory`, read
//! through `sockdiag`, in every network namespace `netns` finds).
pub mod firewall;
pub mod health;
pub mod inventory;
pub mod listeners;
pub mod sockdiag;
pub mod stdio;
