//! `portwatch doctor`: on this kernel every path is seen, each through the hook the machine's
//! facts say it gets, and the command says so with exit code 0.
use std::process::Command;

use crate::harness::{BIN, expected_attach, forced_attach_args, require_root, run_to_exit, shared};

#[test]
fn doctor_sees_every_path_through_the_expected_hooks() {
    require_root();
    let _shared = shared();
    // The attach types forced for this run (`cargo xtask vm-test` forces kprobes, then the
    // tracepoints), as every daemon of the run gets them.
    let (code, out, err) = run_to_exit(Command::new(BIN).arg("doctor").args(forced_attach_args()));
    assert_eq!(code, 0, "{out}{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert!(rows.len() >= 12, "{out}");
    let expected = expected_attach();
    for row in &rows {
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let [path, hook, seen] = cells[..] else {
            panic!("a row of three cells: {row:?}");
        };
        // A path the kernel lacks (io_uring bind and listen before 6.11) is named, not passed.
        assert!(
            seen == "yes" || seen.starts_with("not tested: this kernel has no IORING_OP_BIND"),
            "{path}: {seen}\n{out}"
        );
        let (name, attach) = hook.split_once(" (").unwrap();
        let attach = attach.trim_end_matches(')');
        if let Some((_, want)) = expected.iter().find(|(h, _)| h == name) {
            assert_eq!(attach, want, "{path}: {out}");
        }
    }
    for path in [
        "bind(2)",
        "io_uring accept",
        "UDP close by a running process",
        "listen(2) in a new network namespace",
        "its listener in the snapshot and ls",
    ] {
        assert!(rows.iter().any(|r| r.starts_with(path)), "{path}: {out}");
    }
}
