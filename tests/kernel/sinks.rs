//! File sinks on the real kernel: the same records as stdout in their own format, rotation by
//! size and Debian's logrotate with SIGHUP losing and duplicating nothing (read back by a reader
//! that follows the files by inode), and a full file system costing only counted records.
use std::{
    collections::BTreeMap,
    io::Read,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{Daemon, binds, record_kind, record_seq as seq};

/// A fresh directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portwatch-sink-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn parse_lines(bytes: &[u8], what: &str) -> Vec<Value> {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "{what} ends in a half line"
    );
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{what}: a bad line ({e}): {}", l.escape_ascii()))
        })
        .collect()
}

/// What a stream's stop record says: (its sequence number, lost_total).
fn stop_counts(records: &[Value]) -> (u64, u64) {
    let stop = records.last().unwrap();
    assert_eq!(record_kind(stop), "stop", "the last record: {stop}");
    let counts = if stop["lost_total"].is_null() {
        &stop["unmapped"]["portwatch"]
    } else {
        stop
    };
    (seq(stop), counts["lost_total"].as_u64().unwrap())
}

#[test]
fn a_file_gets_every_record_of_stdout_in_its_own_format() {
    let dir = scratch("same");
    let path = dir.join("events.json");
    let spec = format!("file:{},format=ocsf", path.display());
    let mut d = Daemon::start(&["--output", "stdout", "--output", &spec]);
    binds(20);
    d.sync();
    let (status, stdout, _) = d.stop_with(libc::SIGINT);
    assert!(status.success());
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path:?}");
    let file = parse_lines(&std::fs::read(&path).unwrap(), "the file");
    // The same records under the same numbers, each in its sink's format.
    let numbers = |records: &[Value]| records.iter().map(seq).collect::<Vec<_>>();
    assert_eq!(numbers(&file), numbers(&stdout));
    for (s, f) in stdout.iter().zip(&file) {
        assert_eq!(record_kind(s), record_kind(f), "{s}\n{f}");
    }
    // Each stop record counts its own sink; with two, it lists both.
    let stop = stdout.last().unwrap();
    assert_eq!(
        stop["sinks"][1]["sink"],
        spec.split(',').next().unwrap(),
        "{stop}"
    );
    assert_eq!(stop["sinks"][1]["dropped"], 0, "{stop}");
    assert_eq!(stop_counts(&file).1, 0);
    crate::formats::check("ocsf", &file);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lines of every file that ever was at `path`, followed by inode as a log shipper does:
/// a rotated file stays open and is read to its end until the reader stops.
struct Follower {
    stop: Arc<AtomicBool>,
    /// Files opened so far.
    opened: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

impl Follower {
    fn start(path: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(1));
        let (path, done, count) = (path.to_owned(), Arc::clone(&stop), Arc::clone(&opened));
        // The file there now is opened before this returns: a reader thread slow to start (a
        // loaded machine) would otherwise find it renamed already and miss its records.
        let first = std::fs::File::open(&path).expect("the daemon's file");
        let thread = std::thread::spawn(move || {
            let mut files: BTreeMap<u64, (std::fs::File, Vec<u8>)> = BTreeMap::new();
            files.insert(first.metadata().unwrap().ino(), (first, Vec::new()));
            loop {
                let last_round = done.load(Ordering::Acquire);
                if let Ok(meta) = std::fs::metadata(&path) {
                    if !files.contains_key(&meta.ino()) {
                        if let Ok(f) = std::fs::File::open(&path) {
                            files.insert(f.metadata().unwrap().ino(), (f, Vec::new()));
                            count.store(files.len(), Ordering::Release);
                        }
                    }
                }
                for (f, bytes) in files.values_mut() {
                    let _ = f.read_to_end(bytes);
                }
                if last_round {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            files.into_values().flat_map(|(_, bytes)| bytes).collect()
        });
        Self {
            stop,
            opened,
            thread,
        }
    }

    /// Waits (bounded) until `n` files have been opened: the next rotation may come then
    /// without a file going unread, however late this thread runs on a loaded machine.
    fn wait_files(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.opened.load(Ordering::Acquire) < n {
            assert!(Instant::now() < deadline, "the reader never found file {n}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(self) -> Vec<u8> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap()
    }
}

/// Every record of `stdout` is in `lines` exactly once, and nothing else is.
fn assert_same_records(stdout: &[Value], lines: &[Value]) {
    let mut numbers: Vec<u64> = lines.iter().map(seq).collect();
    numbers.sort_unstable();
    let dups = numbers.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(dups, 0, "records written twice");
    let expected: Vec<u64> = stdout.iter().map(seq).collect();
    if numbers != expected {
        // Which ones, and what the daemon said of its sinks, so a failure can be told apart:
        // a reader that missed a file, or records the daemon did not write.
        let missing: Vec<String> = stdout
            .iter()
            .filter(|r| numbers.binary_search(&seq(r)).is_err())
            .map(|r| format!("{} {}", seq(r), record_kind(r)))
            .take(20)
            .collect();
        panic!(
            "{} records in the files, {} on stdout; missing (the first 20): {missing:?}; stdout's last record: {}",
            numbers.len(),
            expected.len(),
            stdout.last().map(Value::to_string).unwrap_or_default()
        );
    }
}

#[test]
fn size_rotation_keeps_every_record_once_within_the_limit() {
    let dir = scratch("rotate");
    let path = dir.join("events.json");
    let spec = format!("file:{},max-size=64K,backups=100", path.display());
    let mut d = Daemon::start(&["--output", "stdout", "--output", &spec]);
    binds(1500);
    d.sync();
    let (status, stdout, _) = d.stop_with(libc::SIGINT);
    assert!(status.success());
    let mut all = Vec::new();
    let mut files = 0;
    for n in (1..=100).rev() {
        let rotated = PathBuf::from(format!("{}.{n}", path.display()));
        if let Ok(bytes) = std::fs::read(&rotated) {
            assert!(
                bytes.len() <= 64 << 10,
                "{rotated:?}: {} bytes",
                bytes.len()
            );
            assert_eq!(
                std::fs::metadata(&rotated).unwrap().permissions().mode() & 0o777,
                0o600
            );
            all.extend(parse_lines(&bytes, &rotated.display().to_string()));
            files += 1;
        }
    }
    all.extend(parse_lines(
        &std::fs::read(&path).unwrap(),
        "the current file",
    ));
    assert!(
        files >= 10,
        "1500 records of ~600 bytes in 64 KiB files: {files} rotated"
    );
    // In order across the files, too: oldest file first.
    let numbers: Vec<u64> = all.iter().map(seq).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_same_records(&stdout, &all);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn logrotate_and_sighup_lose_and_duplicate_nothing() {
    let dir = scratch("logrotate");
    let path = dir.join("events.json");
    let spec = format!("file:{},max-size=0", path.display());
    let mut d = Daemon::start(&["--output", "stdout", "--output", &spec]);
    let pid = d.start_record()["pid"].as_u64().unwrap();
    let conf = dir.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n  rotate 10\n  missingok\n  nocompress\n  postrotate\n    kill -HUP {pid}\n  endscript\n}}\n",
            path.display()
        ),
    )
    .unwrap();
    let follower = Follower::start(&path);
    for round in 0..4 {
        binds(300);
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(dir.join("state"))
            .arg(&conf)
            .output()
            .expect("run logrotate (Debian's logrotate package)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        d.expect_stderr("output files reopened");
        follower.wait_files(round + 2);
    }
    binds(300);
    d.sync();
    let (status, stdout, _) = d.stop_with(libc::SIGINT);
    assert!(status.success());
    let followed = parse_lines(&follower.finish(), "the followed files");
    assert_same_records(&stdout, &followed);
    // And the files on disk hold them too: four rotated ones and the current one.
    let mut on_disk = Vec::new();
    for n in 1..=4 {
        on_disk.extend(parse_lines(
            &std::fs::read(format!("{}.{n}", path.display())).unwrap(),
            "a rotated file",
        ));
    }
    on_disk.extend(parse_lines(
        &std::fs::read(&path).unwrap(),
        "the current file",
    ));
    on_disk.sort_by_key(seq);
    assert_same_records(&stdout, &on_disk);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs on {dir:?}");
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_costs_only_counted_records_and_never_a_half_line() {
    let dir = scratch("enospc");
    let fs = Tmpfs::mount(&dir, "1m");
    let path = dir.join("events.json");
    // Leave some 100 KiB: room for the first records only.
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![0u8; 920 << 10]).unwrap();
    let spec = format!("file:{},max-size=0", path.display());
    let mut d = Daemon::start(&["--output", "stdout", "--output", &spec]);
    binds(1000);
    d.sync();
    d.expect_stderr("No space left on device");
    // Room again: what comes now is written, the stop record too.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut written_again = false;
    while !written_again && Instant::now() < deadline {
        binds(1);
        d.sync();
        written_again = d.try_stderr("writing again");
    }
    assert!(
        written_again,
        "the file sink did not write again once there was room"
    );
    let (status, stdout, _) = d.stop_with(libc::SIGINT);
    assert!(
        status.success(),
        "portwatch keeps running through a full disk"
    );
    let file = parse_lines(&std::fs::read(&path).unwrap(), "the file");
    let (last, lost) = stop_counts(&file);
    assert!(
        lost > 0,
        "a full disk lost records: {}",
        file.last().unwrap()
    );
    assert_eq!(file.last().unwrap()["output_dropped"], lost);
    // Delivered + counted lost = numbered, in the file's own stream.
    assert_eq!(last + 1, file.len() as u64 + lost);
    // stdout lost nothing, and its stop record names the file's drops.
    let stop = stdout.last().unwrap();
    assert_eq!(stop["lost_total"], 0, "{stop}");
    assert_eq!(stop["sinks"][1]["dropped"], lost, "{stop}");
    drop(fs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_configuration_file_sets_the_outputs_and_a_bad_one_is_refused_with_its_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch("config");
    let path = dir.join("events.json");
    let conf = dir.join("portwatch.toml");
    std::fs::write(
        &conf,
        format!(
            "# outputs as flags would give them\n[[output]]\nsink = \"stdout\"\n\n[[output]]\nsink = \"file:{}\"\nformat = \"ecs\"\nmax-size = \"1M\"\n",
            path.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&["--config", conf.to_str().unwrap()]);
    binds(5);
    d.sync();
    let (status, stdout, _) = d.stop_with(libc::SIGINT);
    assert!(status.success());
    let file = parse_lines(&std::fs::read(&path).unwrap(), "the file");
    assert!(
        file.iter().all(|v| v["ecs"]["version"] == "9.4.0"),
        "ECS, as the file says"
    );
    assert_eq!(
        file.iter().map(seq).collect::<Vec<_>>(),
        stdout.iter().map(seq).collect::<Vec<_>>()
    );

    // A bad value: refused before anything is attached, naming the file, the line and the fix.
    std::fs::write(&conf, "format = \"ocsf\"\n\n[filters]\nports = [22]\n").unwrap();
    let (code, _, err) = crate::harness::run_to_exit(Command::new(crate::harness::BIN).args([
        "watch",
        "--config",
        conf.to_str().unwrap(),
    ]));
    assert_eq!(code, 2, "{err}");
    let expected = format!(
        "portwatch: error: config {} line 4: unknown field `ports`",
        conf.display()
    );
    assert!(err.starts_with(&expected), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    // One others could write: it could send every record elsewhere.
    std::fs::write(&conf, "format = \"ocsf\"\n").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = crate::harness::run_to_exit(Command::new(crate::harness::BIN).args([
        "watch",
        "--config",
        conf.to_str().unwrap(),
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("writable by its group or by everyone"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
