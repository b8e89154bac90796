//! The record stream: kernel bytes in, output records out. `source` says what it reads from,
//! `decode` checks and types each record, `stream` takes it through enrichment, the listener
//! table, the filters and the baseline to the output, and `sequence` numbers what was lost.
pub mod decode;
pub mod sequence;
pub mod stream;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod stream_tests;
