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
        if c.kinds & (1 << kind as u32) == 0 {
            return false;
        }
    }
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if pid == c.self_tgid {
        return false;
    }
    if c.active & filter::PIDS != 0 && unsafe { FILTER_PIDS.get(&pid) }.is_none() {
        return false;
    }
    let uid = bpf_get_current_uid_gid() as u32;
    if c.active & filter::UIDS != 0 && unsafe { FILTER_UIDS.get(&uid) }.is_none() {
        return false;
    }
    if c.active & filter::CGROUPS != 0 {
        let cgroup = unsafe { bpf_get_current_cgroup_id() };
        if unsafe { FILTER_CGROUPS.get(&cgroup) }.is_none() {
            return false;
        }
    }
    true
}

/// The filters on what the record found: network namespace and local port.
#[inline(always)]
pub fn place_allowed(netns: u32, port: Option<u16>) -> bool {
    let c = config();
    if c.active & filter::NETNS != 0 && unsafe { FILTER_NETNS.get(&netns) }.is_none() {
        return false;
    }
    if let Some(port) = port {
        if c.active & filter::PORTS != 0 && unsafe { FILTER_PORTS.get(&port) }.is_none() {
            return false;
        }
    }
    true
}
