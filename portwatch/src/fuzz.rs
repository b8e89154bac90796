//! Property tests of every parser of input portwatch does not control (its fuzz targets): the
//! kernel's records, sock_diag answers, /proc files, cgroup paths, passwd files, baselines and
//! the text form of names. Whatever the bytes, none may panic, and what one accepts comes back
//! as it was given. `cargo test` runs each `FUZZ_CASES` times (256 by default); `cargo xtask
//! fuzz` runs them for minutes, with a fresh seed each round.
use std::net::SocketAddr;

use proptest::{collection::vec, prelude::*};

use portwatch_common::{SockEvent, TASK_READ};

use crate::{
    enrich::{
        cgroup,
        container::{self, docker, http, podman},
        procfs, users,
    },
    host::caps::effective as effective_caps,
    judge::baseline::{self, Baseline, Subject},
    model::{
        net::Proto,
        process::ProcessContext,
        task::{Comm, Task},
        text,
    },
    pipeline::decode::{KernelRecord, decode},
    state::sockdiag::parse_sockets,
    testkit,
};

fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Failures are reported with their input; no files are left in the checkout.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The bytes of a `SockEvent` with these fields (the rest as the bytes say).
fn sock_event_bytes(mut raw: Vec<u8>, kind: u8) -> Vec<u8> {
    raw.resize(size_of::<SockEvent>(), 0);
    raw[0] = kind;
    raw
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kernel_records_of_any_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn socket_records_decode_to_the_fields_they_hold(
        raw in vec(any::<u8>(), size_of::<SockEvent>()),
        kind in 1u8..=4,
        read in any::<bool>(),
    ) {
        let mut bytes = sock_event_bytes(raw, kind);
        // SAFETY: the length is a SockEvent's, and any bytes are a valid SockEvent.
        let mut ev: SockEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        if read {
            ev.task.flags |= TASK_READ;
        } else {
            ev.task.flags &= !TASK_READ;
        }
        // SAFETY: a SockEvent is plain old data; its bytes are read, not kept.
        bytes = unsafe {
            std::slice::from_raw_parts((&raw const ev).cast::<u8>(), size_of::<SockEvent>())
        }
        .to_vec();
        if let Ok(d) = decode(&bytes) {
            let KernelRecord::Socket(s) = d.record else {
                return Err(TestCaseError::fail("a socket kind decoded as another record"));
            };
            prop_assert_eq!(s.task.pid, ev.task.pid);
            prop_assert_eq!(s.task.tid, ev.task.tid);
            prop_assert_eq!(s.task.comm, Comm::new(&ev.task.comm));
            prop_assert_eq!(s.task.ppid, read.then_some(ev.task.ppid));
            prop_assert_eq!(s.fd, (ev.fd >= 0).then_some(ev.fd));
        }
    }

    #[test]
    fn sock_diag_answers_of_any_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        let mut out = Vec::new();
        let _ = parse_sockets(&bytes, Proto::Tcp, &mut out);
        let _ = parse_sockets(&bytes, Proto::Udp, &mut out);
    }

    #[test]
    fn proc_stat_gives_back_any_command_name(
        comm in vec(1u8..=255, 0..=15),
        ppid in any::<u32>(),
        start in any::<u64>(),
        junk in vec(any::<u8>(), 0..300),
    ) {
        let _ = procfs::parse_stat(&junk);
        let line = [
            format!("{} (", ppid.wrapping_add(1)).as_bytes(),
            &comm,
            format!(") S {ppid} 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000 10")
                .as_bytes(),
        ]
        .concat();
        let stat = procfs::parse_stat(&line).expect("a well-formed stat line");
        prop_assert_eq!(stat.comm, Comm::new(&comm));
        prop_assert_eq!(stat.ppid, ppid);
        prop_assert_eq!(stat.start_ticks, start);
    }

    #[test]
    fn proc_status_cgroup_and_passwd_text_of_any_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        let text = text::escape_lines(&bytes);
        let _ = effective_caps(&text);
        let _ = cgroup::preferred_path(&text);
        let _ = container::classify(&text);
        let _ = container::unit(&text);
        let _ = users::parse(&text);
        let _ = Baseline::parse(&text, "fuzz");
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = cgroup::preferred_path(&lossy);
        let _ = Baseline::parse(&lossy, "fuzz");
    }

    #[test]
    fn container_runtimes_state_and_api_answers_of_any_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..400),
        json in r#"[\[\]{}",:0-9a-zA-Z/ ]{0,200}"#,
    ) {
        for b in [&bytes[..], json.as_bytes()] {
            let _ = docker::parse(b, "fuzz");
            let _ = podman::find(b, "x");
            let _ = http::body(b);
        }
    }

    #[test]
    fn passwd_files_give_back_every_name(names in vec(("[a-z_][a-z0-9_-]{0,15}", any::<u32>()), 0..20)) {
        let file: String = names.iter().map(|(n, id)| format!("{n}:x:{id}:0::/:/bin/sh\n")).collect();
        let parsed = users::parse(&file);
        for (name, id) in &names {
            // The first entry for an id wins, as with getpwuid.
            let first = &names.iter().find(|(_, i)| i == id).unwrap().0;
            prop_assert_eq!(parsed.get(id), Some(first));
            let _ = name;
        }
    }

    #[test]
    fn names_of_any_bytes_come_back_from_their_text(bytes in vec(any::<u8>(), 0..64)) {
        let written = text::escape(&bytes);
        prop_assert_eq!(text::unescape(&written), Some(bytes.clone()));
        prop_assert!(!written.chars().any(char::is_control), "{:?}", written);
    }

    #[test]
    fn a_rendered_baseline_allows_every_listener_it_was_made_from(
        exes in vec(vec(any::<u8>(), 1..24), 1..6),
        ports in vec(1u16.., 1..6),
    ) {
        let listeners: Vec<_> = exes
            .iter()
            .zip(&ports)
            .map(|(exe, port)| {
                let exe = format!("/{}", text::escape(exe));
                let context = ProcessContext {
                    user: Some("root".into()),
                    exe: Some(exe.as_str().into()),
                    ..ProcessContext::default()
                };
                let task = Task { uid: 0, ..Task::default() };
                (
                    testkit::listener(Proto::Tcp, &format!("127.0.0.1:{port}"), 1, &[]),
                    testkit::listener_owner(Some(task), context),
                )
            })
            .collect();
        let rendered = baseline::render(&listeners, "now");
        let parsed = Baseline::parse(&rendered, "fuzz")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{rendered}")))?;
        for (l, owner) in &listeners {
            let local: SocketAddr = l.socket.local;
            let s = Subject {
                proto: Proto::Tcp,
                address: local.ip(),
                port: local.port(),
                uid: Some(0),
                user: Some("root"),
                exe: owner.process.exe.as_deref(),
            };
            prop_assert_eq!(parsed.check(&s), None, "{}", rendered);
        }
    }
}
