//! Filters pushed into the kernel: what is filtered here never costs a ring-buffer slot, a
//! wake-up or a line of output. The daemon fills the maps and the `FILTER` global before the
//! programs attach.
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, generated::bpf_get_current_cgroup_id,
    },
    macros::map,
    maps::HashMap,
};
use portwatch_common::{EventKind, FilterConfig, filter};

#[map(name = "FILTER_PIDS")]
static FILTER_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);
#[map(name = "FILTER_UIDS")]
static FILTER_UIDS: HashMap<u32, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);
#[map(name = "FILTER_CGROUPS")]
static FILTER_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);
#[map(name = "FILTER_NETNS")]
static FILTER_NETNS: HashMap<u32, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);
#[map(name = "FILTER_PORTS")]
static FILTER_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);

#[unsafe(no_mangle)]
static FILTER: FilterConfig = FilterConfig {
    active: 0,
    kinds: 0,
    self_tgid: 0,
    _pad: 0,
};

#[inline(always)]
fn config() -> FilterConfig {
    unsafe { core::ptr::read_volatile(&raw const FILTER) }
}

/// The filters that need no kernel reads: event kind, portwatch itself, pid, uid, cgroup.
/// `kind` None: a process-tracking record, which every kind filter lets through.
#[inline(always)]
pub fn task_allowed(kind: Option<EventKind>) -> bool {
    let c = config();
    if let Some(kind) = kind {
        if !c.selects(kind) {
            return false;
        }
    }
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if pid == c.self_tgid {
        return false;
    }
    c.passes(filter::PIDS, || unsafe { FILTER_PIDS.get(&pid) }.is_some())
        && c.passes(filter::UIDS, || {
            let uid = bpf_get_current_uid_gid() as u32;
            unsafe { FILTER_UIDS.get(&uid) }.is_some()
        })
        && c.passes(filter::CGROUPS, || {
            let cgroup = unsafe { bpf_get_current_cgroup_id() };
            unsafe { FILTER_CGROUPS.get(&cgroup) }.is_some()
        })
}

/// The filters on what the record found: network namespace and local port.
#[inline(always)]
pub fn place_allowed(netns: u32, port: Option<u16>) -> bool {
    let c = config();
    c.passes(filter::NETNS, || {
        unsafe { FILTER_NETNS.get(&netns) }.is_some()
    }) && port.is_none_or(|port| {
        c.passes(filter::PORTS, || {
            unsafe { FILTER_PORTS.get(&port) }.is_some()
        })
    })
}
