//! The event model: plain types every stage shares, with no I/O. The kernel's records are
//! decoded into these (`pipeline::decode`), enriched, judged and finally shaped into output
//! records (`output`); each piece of vocabulary (a protocol's name, what "overlapping
//! addresses" means, the loss counts) is defined here once.
pub mod attach;
pub mod errno;
pub mod health;
pub mod listener;
pub mod loss;
pub mod net;
pub mod process;
pub mod reach;
pub mod socket;
pub mod source;
pub mod task;
pub mod text;
pub mod verdict;
