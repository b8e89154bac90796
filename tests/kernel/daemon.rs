//! How the daemon starts and what it leaves in the kernel: the start report and its attach
//! types, no program loaded for nothing, nothing attached to the host after SIGKILL.
use std::{
    os::unix::process::ExitStatusExt,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::harness::{Daemon, EVENT_TIMEOUT, expected_attach, kprobes_available, lockdown};

#[test]
fn attach_types_are_the_best_the_kernel_allows() {
    let d = Daemon::start(&[]);
    let start = d.start_record();
    assert_eq!(start["pid"], d_pid(&d));
    let hooks = start["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 9);
    let get = |name: &str| hooks.iter().find(|h| h["hook"] == name).unwrap().clone();
    for (hook, attach) in expected_attach() {
        assert_eq!(get(&hook)["attach"], attach.as_str(), "{hook}: {hooks:?}");
    }
    let targets = |name: &str| get(name)["targets"].clone();
    match d.attach("bind").as_str() {
        Some("tracepoint") => assert_eq!(
            targets("bind"),
            json!(["syscalls/sys_enter_bind", "syscalls/sys_exit_bind"])
        ),
        Some("fentry") => assert_eq!(
            targets("bind"),
            json!([
                "fentry/inet_bind",
                "fexit/inet_bind",
                "fentry/inet6_bind",
                "fexit/inet6_bind"
            ])
        ),
        _ => {}
    }
    if d.attach("listen") == "kprobe" {
        assert_eq!(
            targets("listen"),
            json!([
                "kprobe/inet_csk_listen_start",
                "kretprobe/inet_csk_listen_start"
            ])
        );
    }
    // A hook on the tracepoints says why each better attach type was not used, and the reason
    // is the machine's (read independently of portwatch).
    for hook in ["bind", "listen", "accept"] {
        if get(hook)["attach"] == "tracepoint" && std::env::var("PORTWATCH_TEST_ATTACH").is_err() {
            let refused: Vec<Value> = get(hook)["refused"].as_array().unwrap().clone();
            assert_eq!(refused[0]["attach"], "fentry", "{hook}: {refused:?}");
            assert_eq!(refused[1]["attach"], "kprobe", "{hook}: {refused:?}");
            let error = |i: usize| refused[i]["error"].as_str().unwrap().to_owned();
            if lockdown().is_some_and(|mode| mode != "none") {
                assert!(error(0).contains("lockdown"), "{hook}: {refused:?}");
            }
            if !kprobes_available() {
                assert!(error(1).contains("no kprobes"), "{hook}: {refused:?}");
            }
        }
    }
    assert_eq!(targets("close"), json!(["inet_sock_set_state"]));
    assert_eq!(targets("fork"), json!(["sched/sched_process_fork"]));
}

fn d_pid(d: &Daemon) -> Value {
    d.start_record()["pid"].clone()
}

/// A program whose attach the kernel refused is not left loaded for nothing: while a daemon
/// runs, no kernel-function program of an attach type its hook did not get is in the kernel
/// (on this machine, where kprobes load but cannot attach, they were).
#[test]
fn no_program_stays_loaded_that_is_not_attached() {
    let _alone = crate::harness::exclusive();
    let d = Daemon::start_alone(&[]);
    let loaded = crate::harness::loaded_bpf_programs();
    for (hook, programs) in [
        ("bind", ["bind_fentry", "bind_kprobe"]),
        ("listen", ["listen_fentry", "listen_kprobe"]),
        ("accept", ["accept_fentry", "accept_kprobe"]),
    ] {
        let attach = d.attach(hook);
        for p in programs {
            let kind = p.rsplit('_').next().unwrap();
            if attach != kind {
                assert!(
                    !loaded.iter().any(|l| l.starts_with(p)),
                    "{p} is loaded while {hook} is on {attach}: {loaded:?}"
                );
            }
        }
    }
    assert!(loaded.iter().any(|l| l.starts_with("close_")), "{loaded:?}");
}

/// The cgroup programs are attached through BPF links, so they leave the host's cgroup with
/// portwatch, even when it is killed with SIGKILL: the kernel's own list of programs attached
/// to the cgroup v2 root says so.
#[test]
fn nothing_stays_attached_to_the_cgroup_after_sigkill() {
    let _alone = crate::harness::exclusive();
    let before = cgroup_root_programs();
    let d = Daemon::start_alone(&[]);
    assert_eq!(d.attach("udp_close"), "cgroup");
    let during = cgroup_root_programs();
    // Its own: what appeared with it, one program per attach type (the kernel's ids, so a
    // program another process attaches or detaches meanwhile does not count).
    let ours: Vec<Vec<u32>> = during
        .iter()
        .zip(&before)
        .map(|(now, then)| now.difference(then).copied().collect())
        .collect();
    assert!(ours.iter().all(|ids| ids.len() == 1), "{ours:?}");
    let (status, _, _) = d.stop_with(libc::SIGKILL);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let now = cgroup_root_programs();
        let left: Vec<u32> = ours
            .iter()
            .zip(&now)
            .flat_map(|(ids, attached)| ids.iter().filter(|id| attached.contains(id)))
            .copied()
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still attached after SIGKILL: programs {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The ids of the programs attached to the cgroup v2 root for post_bind4, post_bind6 and
/// sock_release (BPF_PROG_QUERY, independent of portwatch).
fn cgroup_root_programs() -> [std::collections::BTreeSet<u32>; 3] {
    const BPF_PROG_QUERY: libc::c_long = 16;
    const ATTACH_TYPES: [u32; 3] = [12, 13, 34];
    let root = std::fs::File::open(crate::harness::cgroup2_root()).expect("cgroup v2 root");
    ATTACH_TYPES.map(|attach_type| {
        let mut ids = [0u32; 64];
        // union bpf_attr, query: target_fd, attach_type, query_flags, attach_flags, prog_ids
        // (a pointer at byte 16), prog_cnt (at byte 24: room in, count out), ...
        let mut attr = [0u32; 16];
        attr[0] = std::os::fd::AsRawFd::as_raw_fd(&root) as u32;
        attr[1] = attach_type;
        let ptr = ids.as_mut_ptr() as u64;
        attr[4] = ptr as u32;
        attr[5] = (ptr >> 32) as u32;
        attr[6] = ids.len() as u32;
        // SAFETY: a zeroed bpf_attr of 64 bytes with the query's fields set; the kernel writes
        // at most prog_cnt ids into `ids`.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_QUERY,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        assert_eq!(
            ret,
            0,
            "BPF_PROG_QUERY: {}",
            std::io::Error::last_os_error()
        );
        ids[..(attr[6] as usize).min(ids.len())]
            .iter()
            .copied()
            .collect()
    })
}
