//! Encoders: a record, numbered, as the bytes of one line of some format. `native` is
//! portwatch's own JSON; `ecs` and `ocsf` are the SIEM schemas, built from the same records
//! (`siem` holds what they share). Another format is one more encoder here, and nothing else
//! changes.
mod ecs;
pub mod json;
mod native;
mod ocsf;
mod siem;
#[cfg(test)]
mod siem_tests;

pub use native::Native;

use super::record::Record;
use crate::host::Host;

pub trait Encoder {
    /// Appends `record`, numbered `seq`, as one line (newline included) to `out`.
    fn encode(&self, seq: u64, record: &Record, out: &mut Vec<u8>);
}

/// The output formats (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// portwatch's own JSON records (`event`, `seq`, ...), the richest form.
    #[default]
    Native,
    /// Elastic Common Schema 9.4.
    Ecs,
    /// OCSF 1.8.0: Network Activity (4001) and Event Log Activity (1008).
    Ocsf,
}

impl Format {
    /// The encoder; the SIEM formats name the host, read now.
    pub fn encoder(self) -> Box<dyn Encoder> {
        self.encoder_on(&Host::read())
    }

    /// The encoder, naming `host` (the golden test's is fixed).
    pub fn encoder_on(self, host: &Host) -> Box<dyn Encoder> {
        match self {
            Self::Native => Box::new(Native),
            Self::Ecs => Box::new(ecs::Ecs::new(host)),
            Self::Ocsf => Box::new(ocsf::Ocsf::new(host)),
        }
    }
}
