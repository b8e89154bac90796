//! Unit tests of `enrich`: contexts built once and rebuilt when their inputs change.
use super::*;

/// A pid far above pid_max, so /proc never knows it.
const PID: u32 = 4_000_000_002;

fn task(boot_ns: u64) -> Task {
    Task {
        boot_ns,
        pid: PID,
        tid: PID,
        comm: crate::model::task::Comm::new(b"x"),
        ppid: Some(0),
        parent_start_ns: Some(0),
        start_ns: Some(1_000),
        netns: Some(1),
        ..Task::default()
    }
}

fn exec(at_ns: u64, exe: &str) -> ExecRecord {
    ExecRecord {
        task: task(at_ns),
        filename: exe.as_bytes().to_vec(),
        exe_path: None,
        exe_detached: false,
        args: vec![exe.as_bytes().to_vec()],
        args_truncated: false,
        stdio: None,
    }
}

#[test]
fn a_context_is_built_once_and_rebuilt_when_its_inputs_change() {
    let clock = Clock::now();
    let mut e = Enricher::new(Some(0));
    e.on_exec(&exec(2_000, "/bin/first"));
    let first = e.context(&task(3_000), &clock);
    assert_eq!(first.exe.as_deref(), Some("/bin/first"));
    assert!(Arc::ptr_eq(&first, &e.context(&task(4_000), &clock)));

    // A new program (exec), a new uid, a new pid: each gives a new context.
    e.on_exec(&exec(5_000, "/bin/second"));
    let second = e.context(&task(6_000), &clock);
    assert_eq!(second.exe.as_deref(), Some("/bin/second"));
    let setuid = e.context(
        &Task {
            uid: 1000,
            ..task(7_000)
        },
        &clock,
    );
    assert!(!Arc::ptr_eq(&second, &setuid));
    assert_eq!(setuid.exe.as_deref(), Some("/bin/second"));
    e.on_exit(&task(8_000));
    assert!(!Arc::ptr_eq(&setuid, &e.context(&task(9_000), &clock)));
}
