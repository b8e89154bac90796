//! Unit tests of `proctable`.
use super::*;

fn exec(pid: u32, start_ns: u64, at_ns: u64, exe: &str, arg: &str) -> ExecRecord {
    ExecRecord {
        task: Task {
            boot_ns: at_ns,
            pid,
            tid: pid,
            comm: crate::model::task::Comm::new(b"x"),
            start_ns: Some(start_ns),
            ..Task::default()
        },
        filename: exe.as_bytes().to_vec(),
        exe_path: None,
        exe_detached: false,
        args: vec![arg.as_bytes().to_vec()],
        args_truncated: false,
        stdio: None,
    }
}

/// Pids far above pid_max, so /proc never knows them.
const PID: u32 = 4_000_000_001;

#[test]
fn a_reused_pid_gets_its_own_identity() {
    let mut t = ProcessTable::new(Some(0));
    t.on_exec(&exec(
        PID,
        1_000_000_000,
        1_000_000_100,
        "/bin/first",
        "one",
    ));
    t.on_exec(&exec(
        PID,
        9_000_000_000,
        9_000_000_100,
        "/bin/second",
        "two",
    ));
    let a = t.image(PID, 1_000_000_000, None, 2_000_000_000).unwrap();
    let b = t.image(PID, 9_000_000_000, None, 9_500_000_000).unwrap();
    assert_eq!(a.exe.as_deref(), Some("/bin/first"));
    assert_eq!(b.exe.as_deref(), Some("/bin/second"));
    assert_eq!(b.args.as_deref(), Some(&["two".to_owned()][..]));
}

#[test]
fn a_fork_child_runs_the_image_its_parent_had_when_it_forked() {
    let mut t = ProcessTable::new(Some(0));
    let parent = (PID, 1_000_000_000);
    t.on_exec(&exec(PID, parent.1, 1_000_000_100, "/bin/old", "a"));
    // Child forked at 2 s; the parent exec'd something else at 3 s.
    t.on_exec(&exec(PID, parent.1, 3_000_000_000, "/bin/new", "b"));
    let child = t
        .image(PID + 1, 2_000_000_000, Some(parent), 4_000_000_000)
        .unwrap();
    assert_eq!(child.exe.as_deref(), Some("/bin/old"));
    assert_eq!(child.source, Source::Inherited);
}

#[test]
fn lost_exec_records_stop_inheritance_for_processes_started_before() {
    let mut t = ProcessTable::new(Some(0));
    let parent = (PID, 1_000_000_000);
    t.on_exec(&exec(PID, parent.1, 1_000_000_100, "/bin/sh", "sh"));
    t.exec_records_lost(3_000_000_000);
    // Started at 2 s, before the loss was noticed: its exec may be the lost one.
    assert!(
        t.image(PID + 1, 2_000_000_000, Some(parent), 3_500_000_000)
            .is_err()
    );
    // Started after: inheritance holds again.
    assert!(
        t.image(PID + 2, 4_000_000_000, Some(parent), 4_500_000_000)
            .is_ok()
    );
}

#[test]
fn unknown_gone_process_is_an_explained_gap() {
    let mut t = ProcessTable::new(None);
    let err = t
        .image(PID, 5_000_000_000, None, 6_000_000_000)
        .unwrap_err();
    assert!(err.contains("exited"), "{err}");
}

#[test]
fn relative_exec_path_of_a_gone_process_is_flagged() {
    let mut t = ProcessTable::new(Some(0));
    t.on_exec(&exec(PID, 1_000_000_000, 1_000_000_100, "./tool", "tool"));
    let image = t.image(PID, 1_000_000_000, None, 1_000_000_200).unwrap();
    assert_eq!(image.exe.as_deref(), Some("./tool"));
    assert!(image.exe_gap.unwrap().contains("relative"));
}

#[test]
fn exited_processes_are_forgotten_after_the_grace_period() {
    let mut t = ProcessTable::new(Some(0));
    t.on_exec(&exec(PID, 1_000_000_000, 1_000_000_100, "/bin/x", "x"));
    t.on_exit(&Task {
        pid: PID,
        start_ns: Some(1_000_000_000),
        ..Task::default()
    });
    t.maintain();
    assert_eq!(t.len(), 1, "kept during the grace period");
    for e in t.entries.values_mut() {
        e.exited = Some(Instant::now() - EXIT_GRACE);
    }
    t.maintain();
    assert!(t.is_empty());
}

#[test]
fn seeds_this_process_from_proc() {
    let mut t = ProcessTable::new(None);
    t.seed_from_proc();
    let me = std::process::id();
    let start = procfs::stat(me).unwrap().start_ticks;
    let image = t
        .image(me, start * procfs::ns_per_tick(), None, u64::MAX)
        .unwrap();
    assert_eq!(image.source, Source::Proc);
    assert_eq!(
        image.exe.as_deref(),
        Some(&*std::env::current_exe().unwrap().to_string_lossy())
    );
}

#[test]
fn an_exited_ancestor_stays_known_while_a_descendant_lives_and_goes_after() {
    const S: u64 = 1_000_000_000;
    let mut t = ProcessTable::new(Some(0));
    let (grand, parent, child) = (PID + 10, PID + 11, PID + 12);
    t.on_exec(&exec(grand, S, S + 1, "/opt/grand", "grand"));
    let mut e = exec(parent, 2 * S, 2 * S + 1, "/opt/parent", "parent");
    e.task.ppid = Some(grand);
    e.task.parent_start_ns = Some(S);
    t.on_exec(&e);
    let mut e = exec(child, 3 * S, 3 * S + 1, "/opt/child", "child");
    e.task.ppid = Some(parent);
    e.task.parent_start_ns = Some(2 * S);
    t.on_exec(&e);
    // The parent's later image does not change what it ran when the child started.
    t.on_exec(&exec(parent, 2 * S, 4 * S, "/opt/later", "later"));
    let chain = t.ancestry(child, 3 * S);
    let exes: Vec<_> = chain.iter().map(|a| a.image.exe.as_deref()).collect();
    assert_eq!(exes, [Some("/opt/parent"), Some("/opt/grand")]);
    assert_eq!((chain[0].pid, chain[0].start_ns), (parent, 2 * S));
    // Grandparent and parent exit long ago: kept, because the child lives.
    let gone = |t: &mut ProcessTable, pid, start_ns| {
        t.on_exit(&Task {
            pid,
            start_ns: Some(start_ns),
            ..Task::default()
        });
        for e in t.entries.values_mut() {
            if e.exited.is_some() {
                e.exited = Some(Instant::now() - EXIT_GRACE);
            }
        }
    };
    gone(&mut t, grand, S);
    gone(&mut t, parent, 2 * S);
    t.maintain();
    assert_eq!(t.ancestry(child, 3 * S).len(), 2);
    // Once the child goes, the chain goes with it, one generation per upkeep.
    gone(&mut t, child, 3 * S);
    t.maintain();
    t.maintain();
    t.maintain();
    assert!(t.is_empty(), "{} left", t.len());
}
