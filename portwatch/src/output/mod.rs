//! The output side: format-neutral records (`record`) are numbered, encoded once per format in
//! use (`format`) into a buffer of whole lines, and handed, shared, to every sink (`sink`) of
//! that format. Each sink counts what it drops, and the loss and stop records each sink gets
//! count its own drops, so in every sink's stream the gaps in the sequence numbers are exactly
//! what that stream lost. Buffered; the event loop flushes after each drain of the ring buffer.
pub mod format;
pub mod record;
mod route;
pub mod sink;
pub mod spec;

use portwatch_common::EventKind;
use serde::Serialize;

use crate::error::{Error, Result};
use format::{Encoder, Format};
use record::{LossRecord, Record, StopRecord};
use route::Route;
use sink::{Dropped, Heading, Lines, Mark, Sink};

/// Lines are formatted straight into the output buffer, which is written out when it holds this
/// much (or at `flush`).
const BUFFER_BYTES: usize = 256 * 1024;

/// Below this, the lines are copied into a buffer of their size for the sinks; above, the buffer
/// itself is handed over and a new one takes its place (no copy of a storm's output).
const HAND_OVER: usize = 64 * 1024;

/// One format in use: its encoder and the lines encoded and not yet handed over.
struct Encoding {
    format: Format,
    encoder: Box<dyn Encoder>,
    buffer: Vec<u8>,
    /// Each record in `buffer`: where it ends, what it is worth to a full queue.
    marks: Vec<Mark>,
}

/// A sink's drops, as loss and stop records list them (unless stdout is the only sink).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SinkDrops {
    pub sink: String,
    pub dropped: u64,
    /// Records written shortened to fit the receiver (syslog).
    #[serde(skip_serializing_if = "is_zero")]
    pub truncated: u64,
}

const fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Numbered records, encoded into whole lines and written to every sink.
pub struct Output<S: Sink> {
    encodings: Vec<Encoding>,
    routes: Vec<Route<S>>,
    /// The next record's sequence number. Numbers of lost events are skipped (`skip`), so the
    /// gaps in a stream are exactly its losses.
    next_seq: u64,
    /// Records written, by kind (`WRITTEN_KINDS`), for the metrics.
    written: [u64; 5],
    /// Listener births a sink refused since the last `undelivered` (socket inodes; at most
    /// `UNDELIVERED_MAX`: beyond, `undelivered_overflow` says some were not kept).
    undelivered: Vec<u64>,
    undelivered_overflow: bool,
}

/// The listeners whose birth a sink dropped since the last time asked.
#[derive(Debug, Default)]
pub struct Undelivered {
    pub births: Vec<u64>,
    /// More were dropped than remembered: any live listener may be one.
    pub overflow: bool,
}

/// Births remembered as refused between two listings (`Output::undelivered`).
const UNDELIVERED_MAX: usize = 1 << 16;

/// The record kinds counted in `Output::written` (by `Record::event`).
const WRITTEN_KINDS: [&str; 5] = [
    EventKind::Bind.name(),
    EventKind::Listen.name(),
    EventKind::Accept.name(),
    EventKind::Close.name(),
    Record::LISTENER,
];

impl<S: Sink> Output<S> {
    /// One sink, in the format of `encoder`.
    pub fn new(encoder: Box<dyn Encoder>, sink: S) -> Self {
        let mut out = Self::empty();
        out.encodings.push(Encoding::new(Format::Native, encoder));
        out.routes.push(Route::new("stdout".into(), 0, sink));
        out
    }

    /// Sinks, each named and with its format.
    pub fn routes(sinks: Vec<(String, Format, S)>) -> Self {
        let mut out = Self::empty();
        for (name, format, sink) in sinks {
            let encoding = match out.encodings.iter().position(|e| e.format == format) {
                Some(i) => i,
                None => {
                    out.encodings.push(Encoding::new(format, format.encoder()));
                    out.encodings.len() - 1
                }
            };
            out.routes.push(Route::new(name, encoding, sink));
        }
        out
    }

    fn empty() -> Self {
        Self {
            encodings: Vec::new(),
            routes: Vec::new(),
            next_seq: 0,
            written: [0; 5],
            undelivered: Vec::new(),
            undelivered_overflow: false,
        }
    }

    /// Leaves `n` sequence numbers unused: events that were lost at this point of the stream.
    pub fn skip(&mut self, n: u64) {
        self.next_seq += n;
    }

    /// Whether loss and stop records list the sinks: not for stdout alone (the default, whose
    /// records stay as they always were).
    fn lists_sinks(&self) -> bool {
        self.routes.len() > 1 || self.routes.iter().any(|r| r.name != "stdout")
    }

    /// Every sink's drops so far (a change is worth a loss record).
    pub fn drops(&self) -> Vec<SinkDrops> {
        self.routes
            .iter()
            .map(|r| SinkDrops {
                sink: r.name.clone(),
                dropped: r.dropped(),
                truncated: r.sink.truncated(),
            })
            .collect()
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        match record {
            Record::Loss(r) => {
                return self.write_each(|route, drops| {
                    Record::Loss(LossRecord {
                        counts: r.counts.with_output_dropped(route.dropped()),
                        sinks: drops.clone(),
                        ..r.clone()
                    })
                });
            }
            Record::Stop(r) => {
                return self.write_each(|route, drops| {
                    Record::Stop(StopRecord {
                        counts: r.counts.with_output_dropped(route.dropped()),
                        sinks: drops.clone(),
                        events: route.events(),
                        ..r.clone()
                    })
                });
            }
            _ => {}
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(i) = WRITTEN_KINDS.iter().position(|&k| k == record.event()) {
            self.written[i] += 1;
        }
        let (worth, birth) = record.worth();
        let event = record.is_event();
        let heading = record.heading();
        let mut full = false;
        for e in &mut self.encodings {
            e.encoder.encode(seq, record, &mut e.buffer);
            e.marks.push(Mark {
                end: e.buffer.len() as u32,
                worth,
                event,
                birth,
                heading,
            });
            full |= e.buffer.len() >= BUFFER_BYTES;
        }
        if full {
            self.write_out()?;
        }
        Ok(())
    }

    /// A record made for each sink (loss and stop count that sink's own drops), under one
    /// number: what is buffered goes out first, so the record comes after it everywhere.
    fn write_each(
        &mut self,
        make: impl Fn(&Route<S>, &Option<Vec<SinkDrops>>) -> Record,
    ) -> Result<()> {
        self.write_out()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let drops = self.lists_sinks().then(|| self.drops());
        for route in &mut self.routes {
            let mut line = Vec::new();
            let record = make(route, &drops);
            self.encodings[route.encoding]
                .encoder
                .encode(seq, &record, &mut line);
            route.hand_over(Lines::copied(&line, record.heading()))?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.write_out()?;
        for route in &mut self.routes {
            route.sink.flush().map_err(Error::from_output)?;
        }
        Ok(())
    }

    /// Reopens every sink's destination (SIGHUP).
    pub fn reopen(&mut self) {
        for route in &mut self.routes {
            route.sink.reopen();
        }
    }

    /// Waits at most `limit` in all for the sinks to write out what they took; what one could
    /// not write by then is counted as dropped. The sinks that did not write everything.
    pub fn settle(&mut self, limit: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + limit;
        let mut unsettled = Vec::new();
        for route in &mut self.routes {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let unwritten = route.sink.settle(left);
            route.refused += unwritten;
            if unwritten > 0 {
                unsettled.push(route.name.clone());
            }
        }
        unsettled
    }

    /// A record `make` makes from sink `name`'s events, drops and every sink's drops (when
    /// records list them, `lists_sinks`), encoded
    /// in its format under the next sequence number, for another destination (stderr).
    pub fn encode_alone(
        &mut self,
        name: &str,
        make: impl Fn(u64, u64, Option<Vec<SinkDrops>>) -> Record,
    ) -> Vec<u8> {
        let drops = self.lists_sinks().then(|| self.drops());
        let route = self
            .routes
            .iter()
            .find(|r| r.name == name)
            .unwrap_or(&self.routes[0]);
        let record = make(route.events(), route.dropped(), drops);
        let mut line = Vec::new();
        self.encodings[route.encoding]
            .encoder
            .encode(self.next_seq, &record, &mut line);
        self.next_seq += 1;
        line
    }

    /// Records written so far, by kind.
    pub fn written(&self) -> Vec<(&'static str, u64)> {
        WRITTEN_KINDS.into_iter().zip(self.written).collect()
    }

    /// Each sink's drops with the memory waiting for it.
    pub fn queues(&self) -> Vec<(SinkDrops, usize)> {
        self.drops()
            .into_iter()
            .zip(self.routes.iter().map(|r| r.sink.queued()))
            .collect()
    }

    /// Event records the first sink took (tests, `doctor`).
    pub fn events(&self) -> u64 {
        self.routes.first().map_or(0, Route::events)
    }

    /// The listeners whose birth (listen, bind or listener record) a sink refused since the
    /// last call, by socket inode: the stream reports them again while they live.
    pub fn undelivered(&mut self) -> Undelivered {
        for i in 0..self.routes.len() {
            let evicted = self.routes[i].sink.undelivered();
            self.note_undelivered(Dropped {
                births: evicted,
                ..Dropped::default()
            });
        }
        let mut births = std::mem::take(&mut self.undelivered);
        births.sort_unstable();
        births.dedup();
        Undelivered {
            births,
            overflow: std::mem::take(&mut self.undelivered_overflow),
        }
    }

    fn note_undelivered(&mut self, dropped: Dropped) {
        let room = UNDELIVERED_MAX.saturating_sub(self.undelivered.len());
        self.undelivered_overflow |= dropped.births.len() > room;
        self.undelivered
            .extend(dropped.births.into_iter().take(room));
    }

    fn write_out(&mut self) -> Result<()> {
        for i in 0..self.encodings.len() {
            let e = &mut self.encodings[i];
            if e.buffer.is_empty() {
                continue;
            }
            let marks: std::sync::Arc<[Mark]> = std::mem::take(&mut e.marks).into();
            let count = marks.len() as u64;
            let lines = if e.buffer.len() < HAND_OVER {
                let lines = Lines {
                    bytes: bytes::Bytes::copy_from_slice(&e.buffer),
                    count,
                    held: e.buffer.len(),
                    marks: Some(marks),
                    heading: Heading::default(),
                };
                e.buffer.clear();
                lines
            } else {
                let buffer =
                    std::mem::replace(&mut e.buffer, Vec::with_capacity(BUFFER_BYTES + 4096));
                let held = buffer.capacity();
                Lines {
                    bytes: buffer.into(),
                    count,
                    held,
                    marks: Some(marks),
                    heading: Heading::default(),
                }
            };
            let mut refused = Dropped::default();
            for route in self.routes.iter_mut().filter(|r| r.encoding == i) {
                refused.add(route.hand_over(lines.clone())?);
            }
            self.note_undelivered(refused);
        }
        Ok(())
    }
}

impl Encoding {
    fn new(format: Format, encoder: Box<dyn Encoder>) -> Self {
        Self {
            format,
            encoder,
            buffer: Vec::with_capacity(BUFFER_BYTES + 4096),
            marks: Vec::new(),
        }
    }
}

/// Like `BufWriter`: what is still buffered goes out when the output is dropped (errors are
/// ignored there; `flush` reports them).
impl<S: Sink> Drop for Output<S> {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

#[cfg(test)]
mod tests;
