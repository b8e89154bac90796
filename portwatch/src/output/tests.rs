//! Unit tests of `output`: numbering, buffering, whole lines.
use super::*;

fn snapshot_complete(n: usize) -> Record {
    Record::SnapshotComplete(record::SnapshotRecord {
        time: crate::clock::Timestamp::default(),
        listeners: n,
    })
}

#[test]
fn lines_are_numbered_buffered_and_written_whole() {
    let mut sink = Vec::new();
    {
        let mut out = Output::new(Box::new(format::Native), sink::Writer(&mut sink));
        out.write(&snapshot_complete(1)).unwrap();
        out.skip(2); // two lost events
        out.write(&snapshot_complete(2)).unwrap();
        out.flush().unwrap();
        // Enough lines to pass the buffer size, and one left for drop to write.
        for _ in 0..BUFFER_BYTES / 64 {
            out.write(&snapshot_complete(3)).unwrap();
        }
    }
    let text = String::from_utf8(sink).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + BUFFER_BYTES / 64);
    assert!(lines[0].starts_with("{\"seq\":0,"));
    assert!(lines[1].starts_with("{\"seq\":3,"));
    let last = format!("{{\"seq\":{},", 3 + BUFFER_BYTES / 64);
    assert!(lines.last().unwrap().starts_with(&last));
    assert!(text.ends_with("}\n"));
}
