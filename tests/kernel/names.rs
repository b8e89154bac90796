//! Command names a process chooses (prctl PR_SET_NAME: any bytes but NUL, 15 kept) never cost it
//! its identity: its pid, user and executable stay in `ls`, the snapshot, live events, baseline
//! alerts and the uid filter, and the name is written byte for byte (`\xNN` for a byte that is
//! not UTF-8 or a control character, `\\` for a backslash).
use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::Path};

use serde_json::Value;

use crate::{
    harness::{
        Daemon, Helper, hold_sockets_helper, hold_sockets_named, require_root, shared, started,
        write_baseline,
    },
    inventory::ls_json,
};

/// (the name the process takes, the name records write).
const NAMES: [(&[u8], &str); 6] = [
    (b"pw-\xffodd", "pw-\\xffodd"),
    (b"pw-\xc3", "pw-\\xc3"),
    (b"pw\nline", "pw\\x0aline"),
    (b"pw) x (y", "pw) x (y"),
    (b"pw back\\slash", "pw back\\\\slash"),
    // The kernel keeps 15 bytes.
    (b"pw-0123456789abcdef", "pw-0123456789ab"),
];

/// `record` names the helper `h` fully: its pid, the name it took, root, its executable, and
/// no gap (nothing portwatch failed to learn about it).
fn names_its_owner(record: &Value, h: &Helper, comm: &str) {
    assert_eq!(record["pid"], h.id(), "{record}");
    assert_eq!(record["comm"], comm, "{record}");
    assert_eq!(record["user"], "root", "{record}");
    assert_eq!(
        record["exe"],
        hold_sockets_helper().to_str().unwrap(),
        "{record}"
    );
    assert!(record.get("gaps").is_none(), "{record}");
}

#[test]
fn chosen_command_names_keep_their_owner_in_ls_and_the_snapshot() {
    require_root();
    let _shared = shared();
    let held: Vec<(Helper, u16, u16)> = NAMES
        .iter()
        .map(|(n, _)| hold_sockets_named(None, n))
        .collect();
    let ls = ls_json();
    // With --uid 0 as well: a listener whose owner was not read would be filtered out.
    let mut d = Daemon::start(&["--uid", "0"]);
    for ((h, tcp, _), (_, comm)) in held.iter().zip(NAMES) {
        let listed = ls
            .iter()
            .find(|v| v["port"] == *tcp && v["protocol"] == "tcp")
            .unwrap_or_else(|| panic!("{comm:?}: port {tcp} not in ls"));
        names_its_owner(listed, h, comm);
        let snapshot = d.expect("its listener in the snapshot", |v| {
            v["event"] == "listener" && v["port"] == *tcp && v["protocol"] == "tcp"
        });
        names_its_owner(&snapshot, h, comm);
    }
}

#[test]
fn chosen_command_names_keep_their_owner_in_live_records_and_baseline_alerts() {
    require_root();
    let _shared = shared();
    let dir = std::env::temp_dir().join(format!("portwatch-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("baseline.txt");
    // Allows nothing these listeners are.
    write_baseline(&file, b"tcp 1 all root /nonexistent\n");
    let mut d = Daemon::start(&["--uid", "0", "--baseline", file.to_str().unwrap()]);
    let helper = hold_sockets_helper();
    for (name, comm) in NAMES {
        // Exec'd by a relative path, as a shell in its directory would: the absolute one comes
        // from /proc/PID/exe, which must not depend on the name.
        let mut cmd = std::process::Command::new(Path::new(".").join(helper.file_name().unwrap()));
        cmd.current_dir(helper.parent().unwrap())
            .env("PW_COMM", OsStr::from_bytes(name))
            .stdout(std::process::Stdio::piped());
        let (h, tcp, _) = started(cmd);
        let listen = d.expect("its listen", |v| {
            v["event"] == "listen" && v["pid"] == h.id() && v["port"] == tcp
        });
        names_its_owner(&listen, &h, comm);
        // The alert names the owner (not `? ?`).
        assert_eq!(
            listen["alert"],
            format!(
                "not in baseline {}: no rule allows tcp {tcp} loopback root {}",
                file.display(),
                hold_sockets_helper().display()
            ),
            "{listen}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_executable_whose_path_is_not_utf8_is_filtered_and_written_byte_for_byte() {
    require_root();
    let _shared = shared();
    let dir = std::env::temp_dir().join(format!("portwatch-names-exe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let odd = dir.join(OsStr::from_bytes(b"pw-\xff\\hold"));
    std::fs::copy(hold_sockets_helper(), &odd).unwrap();
    let written = format!("{}/pw-\\xff\\\\hold", dir.display());
    // --exe takes the path as the OS gives it (bytes); another program is filtered out.
    let mut d = Daemon::start_os(&[OsStr::new("--exe"), odd.as_os_str()]);
    // The other program listens first: its record, had it passed, would come before.
    let (_plain, plain_port, _) = hold_sockets_named(None, b"pw-plain");
    let (h, tcp, _) = hold_sockets_named(Some(&odd), b"pw-odd");
    let listen = d.expect("its listen", |v| v["event"] == "listen" && v["port"] == tcp);
    assert_eq!(listen["pid"], h.id(), "{listen}");
    assert_eq!(listen["exe"], written, "{listen}");
    assert!(
        d.seen.iter().all(|v| v["port"] != plain_port),
        "the other program passed --exe"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cgroup_whose_name_is_not_utf8_is_written_byte_for_byte() {
    require_root();
    let _shared = shared();
    let name = [&b"pw-\xff-"[..], std::process::id().to_string().as_bytes()].concat();
    let dir = Path::new(&crate::harness::cgroup2_root()).join(OsStr::from_bytes(&name));
    std::fs::create_dir(&dir).unwrap();
    // Removed last, once its processes (dropped before it) are gone, even when the test fails.
    struct Removed<'a>(&'a Path);
    impl Drop for Removed<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(self.0);
        }
    }
    let _removed = Removed(&dir);
    let written = format!("/pw-\\xff-{}", std::process::id());
    // Moved into the cgroup before it execs the helper: the snapshot's owner (read from
    // /proc/PID/cgroup) and the live records (the kernel's cgroup id) both name it.
    let in_cgroup = || {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo $$ > \"$CG/cgroup.procs\" && exec \"$0\""])
            .arg(hold_sockets_helper())
            .env("CG", &dir)
            .stdout(std::process::Stdio::piped());
        started(cmd)
    };
    let (before, old_port, _) = in_cgroup();
    let mut d = Daemon::start(&[]);
    let snapshot = d.expect("its listener in the snapshot", |v| {
        v["event"] == "listener" && v["port"] == old_port && v["protocol"] == "tcp"
    });
    assert_eq!(snapshot["cgroup"], written, "{snapshot}");
    let (after, new_port, _) = in_cgroup();
    let listen = d.expect("its listen", |v| {
        v["event"] == "listen" && v["port"] == new_port
    });
    assert_eq!(listen["pid"], after.id(), "{listen}");
    assert_eq!(listen["cgroup"], written, "{listen}");
    drop((before, after, d));
}
