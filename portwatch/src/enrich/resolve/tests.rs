use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

#[test]
fn paths_are_resolved_as_the_process_resolves_them() {
    let me = std::process::id();
    let mountinfo = mounts::of(me).unwrap();
    let dir = std::env::temp_dir().join(format!("pw-walk-{me}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("real")).unwrap();
    fs::set_permissions(dir.join("real"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("real/x.py"), "x").unwrap();
    symlink(dir.join("real"), dir.join("abs")).unwrap();
    symlink("real/x.py", dir.join("rel")).unwrap();
    symlink("loop", dir.join("loop")).unwrap();
    let real = fs::canonicalize(dir.join("real/x.py")).unwrap();
    let real = real.to_str().unwrap();
    let d = dir.to_str().unwrap();
    for named in [
        format!("{d}/abs/x.py"),
        format!("{d}/rel"),
        format!("/{d}//real/../real/./x.py"),
    ] {
        let found = resolve(me, &mountinfo, &named).unwrap();
        assert_eq!(found.path, real, "{named}");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut found.open().unwrap(), &mut text).unwrap();
        assert_eq!(text, "x");
        // /tmp, above it, is anyone's.
        assert!(found.writable_above, "{named}");
    }
    assert!(resolve(me, &mountinfo, &format!("{d}/loop")).is_none());
    assert!(resolve(me, &mountinfo, &format!("{d}/none")).is_none());
    assert!(resolve(me, &mountinfo, &format!("{d}/real/x.py/y")).is_none());
    // Nothing is local in an empty mount table: nothing is looked up.
    assert!(resolve(me, "", &format!("{d}/rel")).is_none());
    // A FIFO is found, but never opened: a writer waiting for a reader stays waiting.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let writer_path = fifo.clone();
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let _ = tid_tx.send(unsafe { libc::gettid() });
        let opened = fs::OpenOptions::new().write(true).open(writer_path);
        let _ = tx.send(opened.is_ok());
    });
    // The writer is waiting in its open (asleep in the kernel) before the walk looks.
    let tid = tid_rx.recv().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fs::read_to_string(format!("/proc/self/task/{tid}/stat")).map_or(true, |s| {
        s.rsplit(')').next().is_some_and(|r| !r.starts_with(" S"))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never waited"
        );
        std::thread::yield_now();
    }
    let found = resolve(me, &mountinfo, fifo.to_str().unwrap()).unwrap();
    assert!(found.open().is_none());
    let waited = rx.recv_timeout(std::time::Duration::from_millis(500));
    assert!(
        waited.is_err(),
        "the FIFO was opened: its writer got through"
    );
    // Let the writer go.
    drop(fs::File::open(&fifo).unwrap());
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(5)), Ok(true));
    // A directory is found, but is no file to read.
    assert!(resolve(me, &mountinfo, d).unwrap().open().is_none());
    assert_eq!(own_proc(5, "/proc/self/fd/3"), "/proc/5/fd/3");
    let exe = resolve(me, &mountinfo, "/usr/bin/env").unwrap();
    assert!(!exe.writable_above, "/usr/bin is root's");
    assert_eq!(lexical(me, "//tmp/./a/../x.py"), "/tmp/x.py");
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(lexical(me, "x.py"), cwd.join("x.py").to_str().unwrap());
    fs::remove_dir_all(&dir).unwrap();
}
