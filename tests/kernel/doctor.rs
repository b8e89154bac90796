//! `portwatch doctor`: on this kernel every path is seen, each through the hook the machine's
//! facts say it gets, and the command says so with exit code 0; with `--verbose`, the kernel
//! programs say which of them sent each of the canary's records.
use std::{process::Command, time::Duration};

use serde_json::Value;

use crate::harness::{
    BIN, expected_attach, forced_attach_args, require_root, run_to_exit, run_to_exit_within, shared,
};

/// The table's rows as (path, hook, seen): the lines after the header, up to a blank line.
fn table(out: &str) -> Vec<[&str; 3]> {
    out.lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|row| {
            let cells: Vec<&str> = row
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let [path, hook, seen] = cells[..] else {
                panic!("a row of three cells: {row:?}");
            };
            [path, hook, seen]
        })
        .collect()
}

/// The lines of the section `title` of doctor's verbose output.
fn section<'a>(out: &'a str, title: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn doctor_sees_every_path_through_the_expected_hooks() {
    require_root();
    let _shared = shared();
    // The attach types forced for this run (`cargo xtask vm-test` forces kprobes, then the
    // tracepoints), as every daemon of the run gets them.
    let (code, out, err) = run_to_exit(Command::new(BIN).arg("doctor").args(forced_attach_args()));
    assert_eq!(code, 0, "{out}{err}");
    let rows = table(&out);
    assert!(rows.len() >= 12, "{out}");
    let expected = expected_attach();
    for [path, hook, seen] in &rows {
        let seen = *seen;
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
        assert!(rows.iter().any(|r| r[0] == path), "{path}: {out}");
    }
}

/// The bound on `doctor --verbose`: its programs keep their logging branches, which the verifier
/// walks too (1.2 s more system time here; 20 s for the whole doctor alone in a TCG guest, and
/// past 60 s there while the other tests load theirs).
const VERBOSE_LOAD: Duration = Duration::from_secs(300);

#[test]
fn doctor_verbose_has_the_programs_say_which_of_them_sent_each_record() {
    require_root();
    let _shared = shared();
    let (code, out, err) = run_to_exit_within(
        Command::new(BIN)
            .args(["doctor", "--verbose"])
            .args(forced_attach_args()),
        VERBOSE_LOAD,
    );
    assert_eq!(code, 0, "{out}{err}");
    // Each hook's attach type, as the table reports it ("bind (tracepoint)", "io_uring (tp_btf)");
    // None for a hook no row names (io_uring's where the kernel functions see its calls).
    let attach = |hook: &str| -> Option<String> {
        table(&out)
            .iter()
            .filter_map(|r| r[1].split_once(" ("))
            .find(|(h, _)| *h == hook)
            .map(|(_, a)| a.trim_end_matches(')').to_owned())
    };
    let attach_of = |hook: &str| attach(hook).unwrap_or_else(|| panic!("no {hook} row: {out}"));
    let records: Vec<Value> = section(&out, "The canary's records:")
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    let lines = section(&out, "The kernel programs' diagnostics about it:");
    let sent: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(" sent by the "))
        .collect();
    let mut checked = 0;
    for r in &records {
        let kind = r["event"].as_str().unwrap();
        if !["bind", "listen", "accept", "close"].contains(&kind) || r["reason"].is_string() {
            continue; // the daemon's own records (a close it inferred) come from no program
        }
        // The program that should have sent it: io_uring's hook where it is attached (else the
        // kernel functions see io_uring's calls), the cgroup program for a UDP close.
        let program = if r["via"] == "io_uring" && attach("io_uring").is_some() {
            "io_uring tp_btf".to_owned()
        } else if kind == "close" && r["protocol"] == "udp" {
            attach_of("udp_close")
        } else {
            attach_of(kind)
        };
        let errno = r["errno_code"].as_i64().unwrap_or(0);
        let fd = r["fd"].as_i64().unwrap_or(-1);
        // The kernel's port is the bound one: 0 for a bind that failed.
        let port = if errno == 0 {
            r["port"].as_i64().unwrap()
        } else {
            0
        };
        let want = format!(
            "pid {} tid {}: {kind} sent by the {program} program, fd {fd} port {port} errno {errno}",
            r["pid"], r["tid"]
        );
        assert!(
            sent.iter().any(|l| l.ends_with(&want)),
            "no line `{want}` for {r}\n{out}"
        );
        checked += 1;
    }
    // bind, listen, accept, a failed bind, a UDP bind and close, a second namespace's bind and
    // listen, three TCP closes; io_uring's where the kernel has them.
    assert!(checked >= 10, "{checked} records checked\n{out}");
    // Nothing but the canary's, and no socket it could not read.
    assert!(lines.iter().all(|l| !l.contains("unreadable")), "{out}");
}
