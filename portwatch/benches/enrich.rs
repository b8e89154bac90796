//! Per-event cost of the daemon's userspace path, measured on this machine (not a test):
//! decoding a record, enriching it with its process context, and formatting the JSON line.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p portwatch --bench enrich`).
use std::{hint::black_box, time::Instant};

use portwatch::{
    clock::{self, Clock},
    enrich::{Enricher, procfs},
    output::{
        format::{Encoder, Native},
        record::Record,
    },
    pipeline::decode::{self, KernelRecord},
};
use portwatch_common::{EventKind, FLAG_SOCK, SockEvent, TASK_READ};

const EVENTS: u32 = 200_000;

/// A listen record from this process, as the kernel would send it.
fn record_bytes() -> Vec<u8> {
    let me = std::process::id();
    let stat = procfs::stat(me).expect("/proc/self/stat");
    let parent = procfs::stat(stat.ppid).expect("parent's stat");
    let tick = procfs::ns_per_tick();
    // SAFETY: all-zero is a valid SockEvent.
    let mut r: SockEvent = unsafe { std::mem::zeroed() };
    r.header.kind = EventKind::Listen as u8;
    r.header.flags = FLAG_SOCK;
    r.task.ts_ns = clock::boottime_ns();
    r.task.pid = me;
    r.task.tid = me;
    r.task.ppid = stat.ppid;
    r.task.start_ns = stat.start_ticks * tick;
    r.task.parent_start_ns = parent.start_ticks * tick;
    r.task.flags = TASK_READ;
    r.task.cgroup_id = 1;
    r.task.netns = 4026531840;
    r.task.comm[..5].copy_from_slice(b"bench");
    r.fd = 3;
    r.backlog = 128;
    r.protocol = 6;
    r.sock_type = 1;
    r.family = 2;
    r.local_port = 8080;
    r.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    // SAFETY: reading the bytes of a POD value.
    unsafe {
        std::slice::from_raw_parts(
            (&r as *const SockEvent).cast::<u8>(),
            size_of::<SockEvent>(),
        )
    }
    .to_vec()
}

fn per_event(name: &str, start: Instant) -> f64 {
    let ns = start.elapsed().as_nanos() as f64 / f64::from(EVENTS);
    println!("{name:<36} {ns:>9.0} ns/event");
    ns
}

fn main() {
    let bytes = record_bytes();
    let clock = Clock::now();
    let mut enricher = Enricher::new(Some(0));
    let seeded = Instant::now();
    enricher.seed_from_proc();
    println!(
        "seeded the process table from /proc: {} processes in {:.1} ms",
        enricher.known_processes(),
        seeded.elapsed().as_secs_f64() * 1e3
    );
    let KernelRecord::Socket(event) = decode::decode(&bytes).expect("decodes").record else {
        unreachable!("a listen record")
    };
    // Warm the caches (users, cgroup paths) as a running daemon would have.
    let _ = enricher.context(&event.task, &clock);

    let t = Instant::now();
    for _ in 0..EVENTS {
        black_box(decode::decode(black_box(&bytes)).expect("decodes"));
    }
    let decode_ns = per_event("decode", t);

    let t = Instant::now();
    for _ in 0..EVENTS {
        black_box(enricher.context(black_box(&event.task), &clock));
    }
    let enrich_ns = per_event("enrich (process, user, cgroup; cached)", t);

    let mut line = Vec::with_capacity(1024);
    let t = Instant::now();
    for _ in 0..EVENTS {
        line.clear();
        let process = enricher.context(&event.task, &clock);
        Native.encode(0, &Record::socket(&event, process, &clock), &mut line);
        black_box(&line);
    }
    let full_ns = per_event("enrich + format the JSON line", t);
    println!(
        "decode + enrich + format                    {:>9.0} ns/event",
        decode_ns + full_ns
    );
    println!(
        "enrichment alone: {enrich_ns:.0} ns/event ({:.2} ms per 1000 events)",
        enrich_ns / 1e3
    );
    println!("line length: {} bytes", line.len());
}
