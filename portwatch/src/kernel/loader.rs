//! Loading the embedded kernel programs with this kernel's offsets and the chosen ring size.
use std::path::Path;

use aya::{Btf, Ebpf, EbpfError, EbpfLoader, Endianness, VerifierLogLevel};
use portwatch_common::{FilterConfig, FloodLimit, KernelOffsets, names};

use crate::{
    error::{Error, Result},
    kernel::{diagnostics, hooks::HOOKS},
};

/// The kernel programs, built by build.rs for the BPF target.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/portwatch-probes"));

pub fn load(
    offsets: &KernelOffsets,
    filters: &FilterConfig,
    flood: &FloodLimit,
    ring_buffer_bytes: u32,
    btf_path: &Path,
    diagnostics: bool,
) -> Result<(Ebpf, Btf)> {
    raise_memlock_limit();
    // `EbpfLoader::new` parses the running kernel's BTF itself; dropping that copy before
    // parsing the one asked for (`--btf`) keeps only one in memory at a time.
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    let btf = Btf::parse_file(btf_path, Endianness::default()).map_err(|e| Error::NoBtf {
        path: btf_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if std::env::var_os("PORTWATCH_VERIFIER_LOG").is_some() {
        // Debugging aid for kernel-program changes: the full verifier log of a rejected program.
        loader.verifier_log_level(VerifierLogLevel::VERBOSE | VerifierLogLevel::STATS);
    }
    let (log_level, log_bytes) = if diagnostics {
        (diagnostics::VERBOSE, diagnostics::RING_BYTES_VERBOSE)
    } else {
        (diagnostics::OFF, diagnostics::RING_BYTES_OFF)
    };
    let ebpf = loader
        .btf(Some(&btf))
        .override_global(diagnostics::LEVEL_GLOBAL, &log_level, true)
        .map_max_entries(diagnostics::LOG_MAP, log_bytes)
        .override_global(names::OFFSETS_GLOBAL, offsets, true)
        .override_global(names::FILTER_GLOBAL, filters, true)
        .override_global(names::FLOOD_LIMIT_GLOBAL, flood, true)
        .map_max_entries(names::EVENTS_MAP, ring_buffer_bytes)
        .load(PROGRAMS)
        .map_err(describe)?;
    check_names(&ebpf)?;
    Ok((ebpf, btf))
}

/// The names the daemon looks things up by (the ABI's map names, the hook table's programs)
/// against the object: a renamed map or program fails here, at start, with its name.
fn check_names(ebpf: &Ebpf) -> Result<()> {
    let missing: Vec<&str> = names::MAPS
        .into_iter()
        .filter(|m| ebpf.map(m).is_none())
        .chain(program_names().filter(|p| ebpf.program(p).is_none()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Load(format!(
            "the kernel object lacks {} (portwatch-common's names and the kernel crate disagree)",
            missing.join(", ")
        )))
    }
}

/// Every program the hook table attaches.
fn program_names() -> impl Iterator<Item = &'static str> {
    HOOKS
        .iter()
        .flat_map(|h| h.options)
        .flat_map(|o| o.programs)
        .map(|p| p.program)
}

fn describe(e: EbpfError) -> Error {
    let msg = crate::error::chain(&e);
    if msg.contains("Operation not permitted") {
        return Error::Privileges(format!("the kernel refused to create BPF maps ({msg})"));
    }
    Error::Load(msg)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; later ones ignore it.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall on a valid struct; failure only matters on old kernels, where the
    // map creation that follows reports it.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The embedded object, parsed without a kernel: its maps are the ABI's, and its programs
    /// are exactly the hook table's (none missing, none that nothing attaches).
    #[test]
    fn the_object_has_the_abis_maps_and_the_hook_tables_programs() {
        let object = aya_obj::Object::parse(PROGRAMS).unwrap();
        // Sections of globals (.rodata, .bss, ...) aside, the maps are exactly the ABI's and
        // the diagnostics' log.
        let maps: BTreeSet<&str> = object
            .maps
            .keys()
            .map(String::as_str)
            .filter(|m| !m.starts_with('.'))
            .collect();
        let abi: BTreeSet<&str> = names::MAPS
            .into_iter()
            .chain([diagnostics::LOG_MAP])
            .collect();
        assert_eq!(maps, abi);
        let in_object: BTreeSet<&str> = object.programs.keys().map(String::as_str).collect();
        let in_table: BTreeSet<&str> = program_names().collect();
        assert_eq!(in_object, in_table);
    }
}
