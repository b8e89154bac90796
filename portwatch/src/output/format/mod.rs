//! Encoders: a record, numbered, as the bytes of one line of some format. `native` is
//! portwatch's own JSON; another format is one more encoder here, and nothing else changes.
pub mod json;
mod native;

pub use native::Native;

use super::record::Record;

pub trait Encoder {
    /// Appends `record`, numbered `seq`, as one line (newline included) to `out`.
    fn encode(&self, seq: u64, record: &Record, out: &mut Vec<u8>);
}
