//! Every format, byte for byte: kernel records built from the ABI structs go through the whole
//! stream (decode, enrich, listener table, baseline, loss sequencing, output) and the lines must
//! equal `tests/golden/stream.jsonl` (native), `stream.ecs.jsonl` and `stream.ocsf.jsonl`.
//! Everything the records name is chosen so that the machine cannot change the result: pids
//! above pid_max, paths that do not exist, uid 0 and an unknown uid, a cgroup id that is no
//! directory, a clock whose "now" is fixed, a fixed host.
//! `PORTWATCH_BLESS=1 cargo test golden` rewrites the files after an intended change.
use std::{collections::VecDeque, net::Ipv6Addr};

use portwatch_common::{
    AF_INET, AF_INET6, EventKind, ExitEvent, FLAG_REQ_ADDR, FLAG_SOCK, SockEvent,
};

use crate::{
    clock::Clock,
    enrich::Enricher,
    host::{Host, OsRelease},
    judge::baseline::Baseline,
    model::{
        health::{Connections, Health},
        listener::Listener,
        loss::{KindCounts, LossCounts},
        net::Proto,
    },
    output::{Output, format::Format, sink::Writer},
    pipeline::{
        decode::tests::{bytes, exec_event, sock_event},
        stream::Stream,
    },
    state::listeners::ListenerTable,
    testkit::{FixedCounters, FixedSockets, NETNS, listener, watch_filters},
};

/// The golden files, one per format, under `tests/golden/`.
const GOLDEN: [(Format, &str, &str); 3] = [
    (
        Format::Native,
        "stream.jsonl",
        include_str!("../../tests/golden/stream.jsonl"),
    ),
    (
        Format::Ecs,
        "stream.ecs.jsonl",
        include_str!("../../tests/golden/stream.ecs.jsonl"),
    ),
    (
        Format::Ocsf,
        "stream.ocsf.jsonl",
        include_str!("../../tests/golden/stream.ocsf.jsonl"),
    ),
];

/// The host the SIEM formats name: fixed, whatever machine runs the test.
fn host() -> Host {
    Host {
        hostname: Some("golden".into()),
        machine_id: Some("0123456789abcdef0123456789abcdef".into()),
        boot_id: Some("01234567-89ab-cdef-0123-456789abcdef".into()),
        kernel: Some("6.12.0-golden".into()),
        architecture: "x86_64",
        os: OsRelease {
            name: Some("Debian GNU/Linux".into()),
            version: Some("13".into()),
            id: Some("debian".into()),
            family: Some("debian".into()),
        },
    }
}

/// Booted at 2026-01-01T00:00:00Z: the snapshot is taken 9 s after boot, before the live
/// records; the stream is drained, ticked and stopped at 170 s, after them.
const BOOT: i128 = 1_767_225_600 * 1_000_000_000;
const AT_START: Clock = Clock::fixed_at(BOOT, 9 * S);
const LATER: Clock = Clock::fixed_at(BOOT, 170 * S);

const S: u64 = 1_000_000_000;
const LAUNCHER: u32 = 4_000_000_100;
const SERVER: u32 = 4_000_000_101;
const RESOLVER: u32 = 4_000_000_102;
const SHELL: u32 = 4_000_000_103;
const SHELL_CHILD: u32 = 4_000_000_104;
/// No cgroup directory has this inode.
const CGROUP: u64 = 0xdead_beef_0000;
const NOBODY_KNOWS: u32 = 4_000_000;

fn task(r: &mut SockEvent, pid: u32, start_ns: u64, at_ns: u64) {
    r.task.pid = pid;
    r.task.tid = pid;
    r.task.ppid = LAUNCHER;
    r.task.parent_start_ns = 2 * S;
    r.task.start_ns = start_ns;
    r.task.ts_ns = at_ns;
    r.task.uid = 0;
    r.task.gid = 0;
    r.task.cgroup_id = CGROUP;
    r.task.netns = NETNS;
    r.task.comm = [0; 16];
    r.task.comm[..6].copy_from_slice(b"server");
}

fn v4(addr: [u8; 4]) -> [u8; 16] {
    let mut a = [0; 16];
    a[..4].copy_from_slice(&addr);
    a
}

/// A socket record of `SERVER`, numbered `seq` on CPU 0.
fn server(kind: EventKind, seq: u64, at_ns: u64) -> SockEvent {
    let mut r = sock_event(kind);
    task(&mut r, SERVER, 3 * S, at_ns);
    r.header.seq = seq;
    r.header.flags = FLAG_SOCK;
    r.family = AF_INET as u8;
    r.protocol = 6;
    r.sock_type = 1;
    r
}

fn records() -> VecDeque<Vec<u8>> {
    let mut out = VecDeque::new();
    let mut launcher = exec_event(b"/opt/golden/launcher", b"launcher\0");
    launcher.task.pid = LAUNCHER;
    launcher.task.tid = LAUNCHER;
    launcher.task.start_ns = 2 * S;
    launcher.task.ts_ns = 2 * S + 1;
    out.push_back(bytes(&launcher));
    let mut exec = exec_event(b"/opt/golden/server", b"server\0--port\x008080\0");
    exec.header.seq = 1;
    exec.task.pid = SERVER;
    exec.task.tid = SERVER;
    exec.task.ppid = LAUNCHER;
    exec.task.parent_start_ns = 2 * S;
    exec.task.start_ns = 3 * S;
    exec.task.ts_ns = 3 * S + 1;
    out.push_back(bytes(&exec));

    // bind 0.0.0.0:8080, then listen on it.
    let mut bind = server(EventKind::Bind, 2, 10 * S);
    bind.header.flags |= FLAG_REQ_ADDR;
    bind.local_port = 8080;
    bind.req_family = AF_INET as u8;
    bind.req_port = 8080;
    bind.inode = 1001;
    out.push_back(bytes(&bind));
    let mut listen = server(EventKind::Listen, 3, 10 * S + 500);
    listen.local_port = 8080;
    listen.backlog = 511;
    listen.inode = 1001;
    out.push_back(bytes(&listen));

    // A bind refused with EADDRINUSE: the port asked for is the one reported.
    let mut taken = server(EventKind::Bind, 4, 10 * S + 900);
    taken.header.flags |= FLAG_REQ_ADDR;
    taken.header.errno = 98;
    taken.req_family = AF_INET as u8;
    taken.req_port = 22;
    taken.fd = 4;
    out.push_back(bytes(&taken));

    // The snapshot's port-22 listener, re-announced by a record queued during start-up.
    let mut raced = server(EventKind::Listen, 5, 10 * S + 950);
    raced.local_port = 22;
    raced.inode = 900;
    out.push_back(bytes(&raced));

    // Two records lost on CPU 1 before its first one (revealed by its sequence), then a
    // connection accepted over IPv4-mapped IPv6.
    let mut accept = server(EventKind::Accept, 2, 11 * S);
    accept.header.cpu = 1;
    accept.family = AF_INET6 as u8;
    accept.local_addr = "::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
    accept.local_port = 8080;
    accept.remote_addr = "::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
    accept.remote_port = 50000;
    accept.fd = 5;
    accept.inode = 1002;
    accept.listener_inode = 1001;
    out.push_back(bytes(&accept));

    // A record that cannot be decoded: its place in the stream stays empty.
    out.push_back(vec![EventKind::Bind as u8, 0, 0]);

    // Another program, run by an unknown uid, binds UDP [::]:5353 next to the snapshot's socket.
    let mut udp = server(EventKind::Bind, 6, 11 * S + 500);
    task(&mut udp, RESOLVER, 4 * S, 11 * S + 500);
    udp.task.uid = NOBODY_KNOWS;
    udp.task.gid = NOBODY_KNOWS;
    udp.task.comm[..8].copy_from_slice(b"resolver");
    udp.family = AF_INET6 as u8;
    udp.protocol = 17;
    udp.sock_type = 2;
    udp.local_port = 5353;
    udp.inode = 902;
    out.push_back(bytes(&udp));

    // A listen whose task the kernel could not read, on 127.0.0.1:9000.
    let mut unread = server(EventKind::Listen, 7, 11 * S + 700);
    unread.task.flags = 0;
    unread.local_addr = v4([127, 0, 0, 1]);
    unread.local_port = 9000;
    unread.inode = 1003;
    out.push_back(bytes(&unread));

    // The listener closes after 1.5 s and one connection; then the snapshot's port-22 one.
    let mut close = server(EventKind::Close, 8, 10 * S + 1_500_000_500);
    close.local_port = 8080;
    close.inode = 1001;
    close.fd = -1;
    out.push_back(bytes(&close));
    let mut old = server(EventKind::Close, 9, 150 * S);
    old.local_port = 22;
    old.inode = 900;
    old.fd = -1;
    out.push_back(bytes(&old));

    // The resolver exits, and its UDP socket with it (sock_diag no longer lists 902).
    // SAFETY: all-zero is a valid ExitEvent.
    let mut exit: ExitEvent = unsafe { std::mem::zeroed() };
    exit.header.kind = EventKind::Exit as u8;
    exit.header.seq = 10;
    exit.task = udp.task;
    exit.task.ts_ns = 160 * S;
    out.push_back(bytes(&exit));

    // A reverse shell: the launcher's child starts sh with its three standard streams on a
    // TCP connection to 203.0.113.9:4444; what sh then runs on it joins its session.
    let mut shell = exec_event(b"/opt/golden/sh", b"sh\0-i\0");
    shell.header.seq = 11;
    shell.task = udp.task;
    shell.task.pid = SHELL;
    shell.task.tid = SHELL;
    shell.task.uid = 0;
    shell.task.gid = 0;
    shell.task.start_ns = 161 * S;
    shell.task.ts_ns = 161 * S + 1;
    shell.task.comm = [0; 16];
    shell.task.comm[..2].copy_from_slice(b"sh");
    shell.stdio_sockets = 0b111;
    shell.stdio.family = AF_INET as u8;
    shell.stdio.protocol = 6;
    shell.stdio.sock_type = 1;
    shell.stdio.local_addr = v4([10, 0, 0, 5]);
    shell.stdio.local_port = 40000;
    shell.stdio.remote_addr = v4([203, 0, 113, 9]);
    shell.stdio.remote_port = 4444;
    shell.stdio.inode = 1004;
    out.push_back(bytes(&shell));
    let mut child = exec_event(b"/opt/golden/id", b"id\0");
    child.header.seq = 12;
    child.task = shell.task;
    child.task.pid = SHELL_CHILD;
    child.task.tid = SHELL_CHILD;
    child.task.ppid = SHELL;
    child.task.parent_start_ns = 161 * S;
    child.task.start_ns = 162 * S;
    child.task.ts_ns = 162 * S + 1;
    child.task.comm = [0; 16];
    child.task.comm[..2].copy_from_slice(b"id");
    child.stdio_sockets = 0b011;
    child.stdio = shell.stdio;
    out.push_back(bytes(&child));
    out
}

fn snapshot() -> Vec<Listener> {
    let mut udp = listener(Proto::Udp, "[::]:5353", 901, &[]);
    udp.socket.v6only = Some(false);
    vec![listener(Proto::Tcp, "0.0.0.0:22", 900, &[]), udp]
}

/// A listener whose owner is unknown, with the health sock_diag gives.
fn unowned_listener() -> Listener {
    let mut l = listener(Proto::Tcp, "[::1]:9000", 950, &[]);
    l.socket.uid = 4_000_000;
    l.socket.health = Some(Health {
        accept_queue: Some(1),
        accept_queue_max: Some(128),
        connections: Some(Connections {
            established: 3,
            close_wait: 1,
            syn_recv: 0,
        }),
        drops: Some(2),
        ..Health::default()
    });
    l
}

fn run(format: Format) -> Vec<u8> {
    let filters = watch_filters(&[]);
    let baseline = Baseline::parse("tcp 22 all root /usr/sbin/sshd\n", "golden.baseline").unwrap();
    let counters = FixedCounters::default();
    let sockets = FixedSockets::new(&[901]);
    let mut sink = Vec::new();
    {
        let mut stream = Stream::new(
            Output::new(format.encoder_on(&host()), Writer(&mut sink)),
            Enricher::new(Some(0)),
            Box::new(counters.clone()),
            Box::new(sockets.clone()),
            Some(baseline),
            filters,
            ListenerTable::new(false),
        );
        stream.snapshot(&snapshot(), &AT_START).unwrap();
        stream.drain(&mut records(), &LATER).unwrap();
        // A listen lost to a full ring: the listing after it finds the listener, whose owner no
        // /proc/PID/fd shows; then `--stats` writes its health and that of the server's.
        sockets.1.borrow_mut().extend([
            unowned_listener(),
            listener(Proto::Tcp, "127.0.0.1:9000", 1003, &[SERVER]),
        ]);
        counters.0.set(LossCounts {
            ring_buffer_full: KindCounts {
                accept: 2,
                listen: 1,
                ..KindCounts::default()
            },
            socket_read_errors: 1,
            ..LossCounts::default()
        });
        stream.tick(&LATER).unwrap();
        stream.stats(&LATER).unwrap();
        stream.finish("SIGTERM", &LATER).unwrap();
    }
    sink
}

#[test]
fn every_format_is_byte_for_byte_its_golden_file() {
    for (format, name, golden) in GOLDEN {
        let got = run(format);
        if std::env::var_os("PORTWATCH_BLESS").is_some() {
            let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::write(path, &got).unwrap();
            continue;
        }
        let got = String::from_utf8(got).unwrap();
        for (i, (g, want)) in got.lines().zip(golden.lines()).enumerate() {
            assert_eq!(g, want, "{name}: line {} differs", i + 1);
        }
        assert_eq!(got.lines().count(), golden.lines().count(), "{name}: {got}");
        assert_eq!(got, golden, "{name}");
    }
}
