//! Unit tests of `queued`: what a full queue drops, keeps and hands back.
use std::sync::mpsc::{Receiver, Sender, channel};

use super::*;
use crate::output::sink::{Heading, Mark};

/// A destination that writes only when the test lets it, one message at a time.
struct Gated {
    go: Receiver<()>,
    wrote: Sender<Vec<u8>>,
}

impl Destination for Gated {
    fn write(&mut self, lines: &Lines, progress: &Progress) -> io::Result<()> {
        let _ = self.go.recv();
        progress.wrote(&lines.bytes);
        let _ = self.wrote.send(lines.bytes.to_vec());
        Ok(())
    }
}

/// `n` lines of 100 bytes, urgent or not, the urgent ones births of inodes from `first`.
fn lines(n: usize, urgent: bool, first: u64) -> Lines {
    lines_worth(n, if urgent { Worth::Urgent } else { Worth::Bulk }, first)
}

fn lines_worth(n: usize, worth: Worth, first: u64) -> Lines {
    let urgent = worth > Worth::Bulk;
    let tag = match worth {
        Worth::Bulk => b'b',
        Worth::Urgent => b'u',
        Worth::Vital => b'v',
    };
    let mut bytes = Vec::new();
    let mut marks = Vec::new();
    for i in 0..n {
        bytes.extend_from_slice(&[tag; 99]);
        bytes.push(b'\n');
        marks.push(Mark {
            end: bytes.len() as u32,
            worth,
            event: true,
            birth: if urgent { first + i as u64 } else { 0 },
            heading: Heading::default(),
        });
    }
    Lines {
        count: n as u64,
        held: bytes.len(),
        bytes: bytes.into(),
        marks: Some(marks.into()),
        heading: Heading::default(),
    }
}

#[test]
fn a_full_queue_drops_bulk_lines_for_urgent_ones_and_refuses_only_when_none_are_left() {
    let (go, gate) = channel();
    let (wrote, written) = channel();
    let mut q = Queued::new(Gated { go: gate, wrote }, 1100, "test-queue").unwrap();
    // The thread takes the first line and waits at the gate (its 100 bytes still count);
    // 10 bulk lines fill the queue behind it.
    assert_eq!(q.take(lines(1, false, 0)).unwrap(), Dropped::default());
    while !lock(&q.shared.waiting).messages.is_empty() {
        std::thread::yield_now();
    }
    assert_eq!(q.take(lines(10, false, 0)).unwrap(), Dropped::default());
    // A mixed batch: its bulk line is refused, its urgent ones push out queued bulk ones.
    let mut mixed = lines(3, true, 100).bytes.to_vec();
    mixed.extend_from_slice(&lines(1, false, 0).bytes);
    let mut marks: Vec<Mark> = lines(3, true, 100).marks.unwrap().to_vec();
    marks.push(Mark {
        end: 400,
        worth: Worth::Bulk,
        event: true,
        birth: 0,
        heading: Heading::default(),
    });
    let refused = q
        .take(Lines {
            count: 4,
            held: 400,
            bytes: mixed.into(),
            marks: Some(marks.into()),
            heading: Heading::default(),
        })
        .unwrap();
    assert_eq!((refused.records, refused.births.len()), (1, 0));
    assert_eq!(q.lost(), 3, "three queued bulk lines dropped for them");
    assert_eq!(q.evicted_events(), 3);
    // Seven bulk and three urgent queued: seven more urgent lines take the bulk ones'
    // place; the next urgent ones find none left and are refused, births and all.
    assert_eq!(q.take(lines(7, true, 200)).unwrap(), Dropped::default());
    let refused = q.take(lines(2, true, 300)).unwrap();
    assert_eq!(refused.records, 2);
    assert_eq!(refused.births, [300, 301]);
    assert_eq!(q.lost(), 10);
    // Everything taken and kept is written, in order: the urgent lines only.
    for _ in 0..4 {
        go.send(()).unwrap();
    }
    drop(go);
    // The bulk chunk, emptied, is not written at all.
    let mut out = Vec::new();
    for _ in 0..3 {
        out.extend(written.recv_timeout(Duration::from_secs(5)).unwrap());
    }
    let text = String::from_utf8(out).unwrap();
    let kinds: String = text.lines().map(|l| char::from(l.as_bytes()[0])).collect();
    assert_eq!(kinds, "buuuuuuuuuu");
    assert_eq!(q.settle(Duration::from_secs(1)), 0);
}

/// A vital line (a listener found by listing, a loss record) makes room by dropping urgent
/// ones, whose births come back to be reported again; nothing queued before a loss record
/// is dropped, since that record counted what was dropped before it.
#[test]
fn vital_lines_push_out_urgent_ones_but_not_past_a_loss_record() {
    let (go, gate) = channel();
    let (wrote, written) = channel();
    let mut q = Queued::new(Gated { go: gate, wrote }, 700, "test-queue").unwrap();
    assert_eq!(q.take(lines(1, false, 0)).unwrap(), Dropped::default());
    while !lock(&q.shared.waiting).messages.is_empty() {
        std::thread::yield_now();
    }
    // Behind the one in the thread's hands: two bulk lines, a loss record, three births.
    assert_eq!(q.take(lines(2, false, 0)).unwrap(), Dropped::default());
    let loss = [&[b'l'; 99][..], b"\n"].concat();
    assert_eq!(
        q.take(Lines::copied(&loss, Heading::default())).unwrap(),
        Dropped::default()
    );
    assert_eq!(q.take(lines(3, true, 10)).unwrap(), Dropped::default());
    // Full (700). A vital line takes the newest birth's place, not the bulk lines'.
    let refused = q.take(lines_worth(1, Worth::Vital, 90)).unwrap();
    assert_eq!(refused, Dropped::default());
    assert_eq!(
        q.undelivered(),
        [12],
        "the birth it pushed out, to report again"
    );
    // An urgent line cannot push out urgent ones: refused, its birth with it.
    let refused = q.take(lines(1, true, 20)).unwrap();
    assert_eq!(refused.births, [20]);
    for _ in 0..5 {
        go.send(()).unwrap();
    }
    let mut out = Vec::new();
    for _ in 0..5 {
        out.extend(written.recv_timeout(Duration::from_secs(5)).unwrap());
    }
    let text = String::from_utf8(out).unwrap();
    let kinds: String = text.lines().map(|l| char::from(l.as_bytes()[0])).collect();
    assert_eq!(kinds, "bbbluuv");
}
