//! The stream's rules one at a time, fed hand-made kernel records: the snapshot's listeners are
//! not reported twice, UDP sockets that leave with their owner are closed, and every lost event
//! has its number in `seq`.
use std::collections::VecDeque;

use portwatch_common::{AF_INET, EventKind, ExitEvent, FLAG_SOCK, SockEvent};
use serde_json::Value;

use super::{
    decode::tests::{bytes, sock_event},
    stream::Stream,
};
use crate::{
    clock::Clock,
    enrich::Enricher,
    model::{
        loss::{KindCounts, LossCounts},
        net::Proto,
    },
    output::{Output, format::Native},
    state::listeners::ListenerTable,
    testkit::{FixedCounters, FixedSockets, NETNS, SharedSink, listener, records, watch_filters},
};

const S: u64 = 1_000_000_000;
const CLOCK: Clock = Clock::fixed_at(0, 5 * S);
/// Above pid_max: /proc never knows it.
const PID: u32 = 4_000_000_200;

struct Run {
    stream: Stream<SharedSink>,
    out: SharedSink,
    counters: FixedCounters,
    sockets: FixedSockets,
}

impl Run {
    fn new() -> Self {
        let out = SharedSink::default();
        let counters = FixedCounters::default();
        let sockets = FixedSockets::default();
        let stream = Stream::new(
            Output::new(Box::new(Native), out.clone()),
            Enricher::new(Some(0)),
            Box::new(counters.clone()),
            Box::new(sockets.clone()),
            None,
            watch_filters(&[]),
            ListenerTable::new(false),
        );
        Self {
            stream,
            out,
            counters,
            sockets,
        }
    }

    fn feed(&mut self, records: &[Vec<u8>]) {
        let mut q: VecDeque<Vec<u8>> = records.iter().cloned().collect();
        self.stream.drain(&mut q, &CLOCK).unwrap();
        self.stream.flush().unwrap();
    }

    /// The records written so far, of `event`, with their seq.
    fn of(&self, event: &str) -> Vec<Value> {
        let records = records(&self.out);
        records
            .into_iter()
            .filter(|r| r["event"] == event)
            .collect()
    }
}

/// A record of `kind` on `proto` port `port`, socket `inode`, numbered `seq` on `cpu`.
fn socket(kind: EventKind, proto: u16, port: u16, inode: u64, cpu: u32, seq: u64) -> Vec<u8> {
    let mut r: SockEvent = sock_event(kind);
    r.task.pid = PID;
    r.task.tid = PID;
    r.task.ts_ns = 10 * S + seq;
    r.task.netns = NETNS;
    r.header.flags = FLAG_SOCK;
    r.header.cpu = cpu;
    r.header.seq = seq;
    r.family = AF_INET as u8;
    r.protocol = proto;
    r.local_port = port;
    r.inode = inode;
    bytes(&r)
}

fn exit(pid: u32, seq: u64) -> Vec<u8> {
    // SAFETY: all-zero is a valid ExitEvent.
    let mut e: ExitEvent = unsafe { std::mem::zeroed() };
    e.header.kind = EventKind::Exit as u8;
    e.header.seq = seq;
    e.task = sock_event(EventKind::Exit).task;
    e.task.pid = pid;
    e.task.tid = pid;
    bytes(&e)
}

#[test]
fn a_snapshot_listener_is_reported_once_and_its_inode_forgotten_at_close() {
    let mut run = Run::new();
    let snapshot = [
        listener(Proto::Tcp, "0.0.0.0:22", 900, &[]),
        listener(Proto::Udp, "0.0.0.0:53", 901, &[]),
    ];
    run.stream.snapshot(&snapshot, &CLOCK).unwrap();
    run.feed(&[
        // Queued while the snapshot was taken: both already reported.
        socket(EventKind::Listen, 6, 22, 900, 0, 0),
        socket(EventKind::Bind, 17, 53, 901, 0, 1),
        // A TCP bind of the same socket is no new listener: reported.
        socket(EventKind::Bind, 6, 22, 900, 0, 2),
        socket(EventKind::Close, 6, 22, 900, 0, 3),
        // The inode is reused by a new listener after the close: a new listener, reported.
        socket(EventKind::Listen, 6, 2222, 900, 0, 4),
    ]);
    assert_eq!(run.of("listener").len(), 2);
    let listens = run.of("listen");
    assert_eq!(listens.len(), 1, "{listens:?}");
    assert_eq!(listens[0]["port"], 2222);
    assert!(run.of("bind").iter().all(|b| b["protocol"] == "tcp"));
    assert_eq!(run.of("bind").len(), 1);
    let close = &run.of("close")[0];
    assert_eq!(close["lifetime_since_start"], true, "{close}");
}

#[test]
fn udp_sockets_gone_with_their_owner_are_closed_and_others_kept() {
    let mut run = Run::new();
    run.feed(&[
        socket(EventKind::Bind, 17, 5353, 902, 0, 0),
        socket(EventKind::Bind, 17, 5354, 903, 0, 1),
    ]);
    // An unrelated process exits: nothing is checked.
    run.feed(&[exit(PID + 1, 2)]);
    run.stream.tick(&CLOCK).unwrap();
    assert!(run.of("close").is_empty());
    // The owner exits; sock_diag still lists 903 (another process holds it now).
    *run.sockets.0.borrow_mut() = vec![903];
    run.feed(&[exit(PID, 3)]);
    run.stream.tick(&CLOCK).unwrap();
    let closes = run.of("close");
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0]["port"], 5353);
    assert_eq!(closes[0]["reason"], "owner exited");
    assert_eq!(closes[0]["pid"], PID);
    // Reported once: a later check does not close it again.
    run.feed(&[exit(PID, 4)]);
    run.stream.tick(&CLOCK).unwrap();
    assert_eq!(run.of("close").len(), 1);
}

/// A UDP close from the kernel ends its socket; when a close record is lost, the loss counter
/// makes sock_diag be checked, the socket is closed as "close not seen", and its close record,
/// if it turns up after all, is not reported a second time.
#[test]
fn lost_closes_are_found_by_a_check_and_never_reported_twice() {
    let mut run = Run::new();
    run.feed(&[
        socket(EventKind::Bind, 17, 5353, 902, 0, 0),
        socket(EventKind::Bind, 17, 5354, 903, 0, 1),
        socket(EventKind::Close, 17, 5353, 902, 0, 2),
    ]);
    let closes = run.of("close");
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0]["inode"], 902);
    assert!(
        closes[0]["lifetime_s"].as_f64().unwrap() > 0.0,
        "{}",
        closes[0]
    );
    assert!(closes[0].get("reason").is_none());

    // The next close record of CPU 0 is lost; sock_diag no longer lists 903.
    run.counters.0.set(LossCounts {
        ring_buffer_full: KindCounts {
            close: 1,
            ..KindCounts::default()
        },
        lost_total: 1,
        ..LossCounts::default()
    });
    *run.sockets.0.borrow_mut() = vec![];
    run.stream.tick(&CLOCK).unwrap();
    run.stream.tick(&CLOCK).unwrap();
    let closes = run.of("close");
    assert_eq!(closes.len(), 2, "{closes:?}");
    assert_eq!(closes[1]["inode"], 903);
    assert_eq!(closes[1]["reason"], "close not seen");
    run.feed(&[socket(EventKind::Close, 17, 5354, 903, 1, 0)]);
    assert_eq!(run.of("close").len(), 2, "reported once");
}

#[test]
fn the_gaps_in_seq_are_the_losses_counted() {
    let mut run = Run::new();
    run.feed(&[
        socket(EventKind::Bind, 17, 1000, 1, 0, 0),
        // CPU 0 lost records 1 and 2; CPU 1 lost its first three.
        socket(EventKind::Bind, 17, 1001, 2, 0, 3),
        socket(EventKind::Bind, 17, 1002, 3, 1, 3),
        // Undecodable: its place is left empty too.
        vec![EventKind::Bind as u8, 0],
        socket(EventKind::Bind, 17, 1003, 4, 0, 4),
    ]);
    // The kernel counted those five, plus two not yet revealed by a gap (the last records of a
    // CPU) and one in-flight table overflow.
    run.counters.0.set(LossCounts {
        ring_buffer_full: KindCounts {
            bind: 7,
            ..KindCounts::default()
        },
        in_flight_table_full: KindCounts {
            listen: 1,
            ..KindCounts::default()
        },
        ..LossCounts::default()
    });
    run.stream.tick(&CLOCK).unwrap();
    run.stream.finish("SIGTERM", &CLOCK).unwrap();
    let records = records(&run.out);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let gaps: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum::<u64>() + seqs[0];
    let stop = records.last().unwrap();
    assert_eq!(stop["event"], "stop");
    assert_eq!(stop["lost_total"], 7 + 1 + 1, "{stop}");
    assert_eq!(stop["decode_errors"], 1, "{stop}");
    assert_eq!(gaps, 9, "seq {seqs:?}");
    // The numbers revealed by gaps sit where the records were lost.
    assert_eq!(seqs[..4], [0, 3, 7, 9], "{seqs:?}");
}

/// Births lost on the way (here: shed by the flood limit) make the stream list the sockets
/// again: a listener it does not know is reported with `reason`, once; one it knows is not;
/// its listen record, if it turns up after all, is not reported a second time.
#[test]
fn a_listener_whose_birth_was_lost_is_found_by_a_listing_and_reported_once() {
    let mut run = Run::new();
    run.feed(&[socket(EventKind::Listen, 6, 7001, 951, 0, 0)]);
    *run.sockets.1.borrow_mut() = vec![
        listener(Proto::Tcp, "0.0.0.0:7001", 951, &[]),
        listener(Proto::Tcp, "0.0.0.0:7002", 950, &[]),
    ];
    // Nothing lost: no listing.
    run.stream.tick(&CLOCK).unwrap();
    assert!(run.of("listener").is_empty());
    run.counters.0.set(LossCounts {
        shed: crate::model::loss::ShedCounts { bind: 0, listen: 1 },
        ..LossCounts::default()
    });
    run.stream.tick(&CLOCK).unwrap();
    let found = run.of("listener");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["port"], 7002);
    assert_eq!(found[0]["reason"], "listen not seen");
    // More losses, half a second on: listed again, nothing new to report.
    run.counters.0.set(LossCounts {
        shed: crate::model::loss::ShedCounts { bind: 0, listen: 2 },
        ..LossCounts::default()
    });
    run.stream.tick(&Clock::fixed_at(0, 6 * S)).unwrap();
    assert_eq!(run.of("listener").len(), 1);
    run.feed(&[socket(EventKind::Listen, 6, 7002, 950, 0, 1)]);
    assert_eq!(run.of("listen").len(), 1, "the late listen is not reported");
}

/// Each process and kind the kernel shed births of gets a `flood` record with the count since
/// its last one, at most once a second.
#[test]
fn flood_records_name_each_process_with_its_new_counts() {
    let mut run = Run::new();
    let state = |listen, bind, last_s: u64| portwatch_common::FloodState {
        start_ns: 2 * S,
        shed: [bind, listen],
        first_shed_ns: 3 * S,
        last_shed_ns: last_s * S,
        uid: 65534,
        gid: 65534,
        comm: *b"churn\0\0\0\0\0\0\0\0\0\0\0",
        ..portwatch_common::FloodState::default()
    };
    let shed = |listen, bind| LossCounts {
        shed: crate::model::loss::ShedCounts { bind, listen },
        ..LossCounts::default()
    };
    *run.counters.1.borrow_mut() = vec![(PID, state(7, 5, 4))];
    run.counters.0.set(shed(7, 5));
    run.stream.tick(&CLOCK).unwrap();
    let floods = run.of("flood");
    assert_eq!(floods.len(), 2, "{floods:?}");
    let listen = floods.iter().find(|f| f["kind"] == "listen").unwrap();
    assert_eq!(
        (listen["count"].as_u64(), listen["total"].as_u64()),
        (Some(7), Some(7))
    );
    assert_eq!(listen["pid"], PID);
    assert_eq!(listen["comm"], "churn");
    assert_eq!(listen["interval_s"], 1.0);
    // Three more listens shed: not before a second has passed, then only listen, count 3.
    *run.counters.1.borrow_mut() = vec![(PID, state(10, 5, 5))];
    run.counters.0.set(shed(10, 5));
    run.stream.tick(&Clock::fixed_at(0, 5 * S + S / 2)).unwrap();
    assert_eq!(run.of("flood").len(), 2);
    run.stream.tick(&Clock::fixed_at(0, 6 * S)).unwrap();
    let floods = run.of("flood");
    assert_eq!(floods.len(), 3, "{floods:?}");
    assert_eq!(floods[2]["kind"], "listen");
    assert_eq!(
        (floods[2]["count"].as_u64(), floods[2]["total"].as_u64()),
        (Some(3), Some(10))
    );
}

/// A sink that refuses everything while `refusing` is set, else keeps lines in memory.
#[derive(Clone, Default)]
struct Refusing {
    refusing: std::rc::Rc<std::cell::Cell<bool>>,
    kept: SharedSink,
}

impl crate::output::sink::Sink for Refusing {
    fn take(
        &mut self,
        lines: crate::output::sink::Lines,
    ) -> std::io::Result<crate::output::sink::Dropped> {
        if self.refusing.get() {
            return Ok(lines.dropped());
        }
        self.kept.take(lines)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A listen record an output refused (its queue full) is made good: the listener, still
/// listed, is reported again as a `listener` record; one that closed meanwhile is not.
#[test]
fn a_birth_an_output_refused_is_reported_again_while_the_listener_lives() {
    let sink = Refusing::default();
    let sockets = FixedSockets::default();
    let mut stream = Stream::new(
        Output::new(Box::new(Native), sink.clone()),
        Enricher::new(Some(0)),
        Box::new(FixedCounters::default()),
        Box::new(sockets.clone()),
        None,
        watch_filters(&[]),
        ListenerTable::new(false),
    );
    sink.refusing.set(true);
    let mut q: VecDeque<Vec<u8>> = [
        socket(EventKind::Listen, 6, 7101, 960, 0, 0),
        socket(EventKind::Listen, 6, 7102, 961, 0, 1),
    ]
    .into_iter()
    .collect();
    stream.drain(&mut q, &CLOCK).unwrap();
    stream.flush().unwrap();
    sink.refusing.set(false);
    // 961 closed meanwhile (its close record refused too): only 960 is listed.
    *sockets.1.borrow_mut() = vec![listener(Proto::Tcp, "0.0.0.0:7101", 960, &[])];
    stream.tick(&CLOCK).unwrap();
    let written = records(&sink.kept);
    let again: Vec<&Value> = written
        .iter()
        .filter(|r| r["event"] == "listener")
        .collect();
    assert_eq!(again.len(), 1, "{written:?}");
    assert_eq!(again[0]["port"], 7101);
    assert_eq!(again[0]["reason"], "listen not delivered");
    // The loss record counts the two refused.
    let loss = written.iter().find(|r| r["event"] == "loss").unwrap();
    assert_eq!(loss["output_dropped"], 2, "{loss}");
}
