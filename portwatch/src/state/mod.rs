//! What portwatch knows about the host's listeners: the live table kept from events
//! (`listeners`) and the snapshot of the sockets that existed at start-up (`inventory`, read
//! through `sockdiag`).
pub mod inventory;
pub mod listeners;
pub mod sockdiag;
