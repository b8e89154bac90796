//! Encoded lines as sinks take them: whole records, each marked with what it is worth to a
//! full queue, so one can drop what matters least and say what it dropped.
use std::sync::Arc;

use bytes::Bytes;

use crate::model::verdict::Level;

/// Whole encoded records, shared by the sinks of one format.
#[derive(Clone)]
pub struct Lines {
    pub bytes: Bytes,
    /// How many records.
    pub count: u64,
    /// The memory `bytes` keeps alive (its buffer's capacity), which a queue's bound counts.
    pub held: usize,
    /// Each line, in order (None: loss and stop records, every line `Vital`, none an event or
    /// a birth; a queue drops nothing it took before them, which counted what was dropped).
    pub marks: Option<Arc<[Mark]>>,
    /// Every line's heading when there are no marks (a loss or stop record).
    pub heading: Heading,
}

/// What a line says before its text where a receiver wants it (syslog's severity and MSGID):
/// taken from the record, never parsed back out of the encoded line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heading {
    /// How much it asks of its reader.
    pub level: Level,
    /// The record's `event` (`Record::event`).
    pub kind: &'static str,
}

impl Default for Heading {
    fn default() -> Self {
        Self {
            level: Level::Info,
            kind: "-",
        }
    }
}

/// What a full queue keeps longest, least first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Worth {
    /// Accepts, closes, failed and TCP binds, health records without a finding.
    #[default]
    Bulk,
    /// Listener births and what was judged (a detection, a baseline alert).
    Urgent,
    /// portwatch's own records, and the listeners it found by listing (the last word on a
    /// listener whose birth was lost).
    Vital,
}

/// One line of `Lines`: where it ends and what a full queue may drop first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// Offset just past its newline.
    pub end: u32,
    pub worth: Worth,
    /// An event record (counted in the stop record's `events`).
    pub event: bool,
    /// The socket inode of a listener this line reports the birth of (0: none): one that is
    /// dropped is reported again while the listener lives.
    pub birth: u64,
    pub heading: Heading,
}

/// What a sink did not take of some lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub records: u64,
    pub events: u64,
    /// The births among them (`Mark::birth`).
    pub births: Vec<u64>,
}

impl Dropped {
    pub fn add(&mut self, other: Self) {
        self.records += other.records;
        self.events += other.events;
        self.births.extend(other.births);
    }
}

impl Lines {
    /// Lines copied into a buffer of their size, each with `heading`.
    pub fn copied(bytes: &[u8], heading: Heading) -> Self {
        Self {
            bytes: Bytes::copy_from_slice(bytes),
            count: super::lines(bytes),
            held: bytes.len(),
            marks: None,
            heading,
        }
    }

    /// Each line (its newline included) with its heading.
    pub fn each(&self) -> impl Iterator<Item = (&[u8], Heading)> {
        let mut start = 0;
        let mut marks = self.marks.as_deref().unwrap_or_default().iter();
        self.bytes
            .split_inclusive(|&b| b == b'\n')
            .map(move |line| {
                start += line.len();
                let heading = marks.next().map_or(self.heading, |m| {
                    debug_assert_eq!(m.end as usize, start);
                    m.heading
                });
                (line, heading)
            })
    }

    /// The most any of them is worth.
    pub fn top(&self) -> Worth {
        self.marks.as_ref().map_or(Worth::Vital, |m| {
            m.iter().map(|m| m.worth).max().unwrap_or_default()
        })
    }

    /// Whether a line is worth less than `worth` (a queue may drop it for one that is).
    pub fn has_below(&self, worth: Worth) -> bool {
        self.marks
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m.worth < worth))
    }

    /// All of them, as dropped.
    pub fn dropped(&self) -> Dropped {
        match &self.marks {
            None => Dropped {
                records: self.count,
                ..Dropped::default()
            },
            Some(marks) => Dropped {
                records: self.count,
                events: marks.iter().filter(|m| m.event).count() as u64,
                births: marks.iter().map(|m| m.birth).filter(|&b| b != 0).collect(),
            },
        }
    }

    /// These lines without their last ones worth less than `worth`, as many as it takes to
    /// free `need` bytes (all of them, at most), copied; and what that leaves out.
    pub fn without_below(&self, worth: Worth, need: usize) -> (Self, Dropped) {
        let Some(marks) = &self.marks else {
            return (self.clone(), Dropped::default());
        };
        // Newest first: which lines go.
        let mut freed = 0;
        let mut cut = vec![false; marks.len()];
        for (i, m) in marks.iter().enumerate().rev() {
            if freed >= need {
                break;
            }
            if m.worth < worth {
                let start = if i == 0 { 0 } else { marks[i - 1].end };
                freed += (m.end - start) as usize;
                cut[i] = true;
            }
        }
        let mut bytes = Vec::new();
        let mut kept = Vec::new();
        let mut dropped = Dropped::default();
        let mut start = 0;
        for (m, cut) in marks.iter().zip(cut) {
            let end = m.end as usize;
            if cut {
                dropped.records += 1;
                dropped.events += u64::from(m.event);
                if m.birth != 0 {
                    dropped.births.push(m.birth);
                }
            } else {
                bytes.extend_from_slice(&self.bytes[start..end]);
                kept.push(Mark {
                    end: bytes.len() as u32,
                    ..*m
                });
            }
            start = end;
        }
        let lines = Self {
            count: kept.len() as u64,
            held: bytes.len(),
            bytes: bytes.into(),
            marks: Some(kept.into()),
            heading: self.heading,
        };
        (lines, dropped)
    }
}
