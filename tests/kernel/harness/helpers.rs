//! The C helpers in tests/helpers: compiled once per run (or prebuilt in a guest), and the
//! processes that hold sockets for a test.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// A C helper from tests/helpers, compiled once per test run.
fn c_helper(name: &'static str) -> &'static Path {
    static HELPERS: std::sync::Mutex<Vec<(&'static str, &'static Path)>> =
        std::sync::Mutex::new(Vec::new());
    let mut built = HELPERS.lock().unwrap();
    if let Some((_, path)) = built.iter().find(|(n, _)| *n == name) {
        return path;
    }
    let file = format!("pw-{}", name.replace('_', "-"));
    // Prebuilt (in a guest without a compiler, `cargo xtask vm-test` puts them there).
    if let Some(dir) = std::env::var_os("PORTWATCH_TEST_HELPERS") {
        let path: &'static Path = Box::leak(Path::new(&dir).join(&file).into_boxed_path());
        built.push((name, path));
        return path;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/helpers/{name}.c"));
    // Not under /tmp: programs run from where anyone may write are findings of their own
    // (`suspicious-location`), which the tests of other rules do not expect.
    let dir = Path::new("/var/lib/portwatch-tests").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    // Some tests run helpers as an unprivileged user: the directory must be reachable whatever
    // the umask.
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&dir, mode).unwrap();
    let out = dir.join(file);
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run cc (gcc is needed for the helpers)");
    assert!(status.success(), "compiling {}", src.display());
    let path: &'static Path = Box::leak(out.into_boxed_path());
    built.push((name, path));
    path
}

/// tests/helpers/listen_once.c: listens on a loopback port and exits at once.
pub fn listen_once_helper() -> &'static Path {
    c_helper("listen_once")
}

/// tests/helpers/bind_burst.c: waits for a line on stdin, then binds N UDP sockets.
pub fn bind_burst_helper() -> &'static Path {
    c_helper("bind_burst")
}

/// tests/helpers/hold_sockets.c: holds a TCP listener and a UDP socket until killed.
pub fn hold_sockets_helper() -> &'static Path {
    c_helper("hold_sockets")
}

/// tests/helpers/uring_listen.c: binds, listens and accepts through io_uring only.
pub fn uring_listen_helper() -> &'static Path {
    c_helper("uring_listen")
}

/// A helper process that is killed when dropped, so a failing test leaves none behind.
pub struct Helper(pub Child);

impl Helper {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Kills it now and waits for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts tests/helpers/hold_sockets through `prefix` (a command that ends by exec'ing its
/// last argument, which is the helper, e.g. `unshare -n sh -c '... exec "$0"'`), and returns it
/// with its (TCP, UDP) ports once both sockets are open.
pub fn hold_sockets_via(prefix: &[&str]) -> (Helper, u16, u16) {
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(hold_sockets_helper())
        .stdout(Stdio::piped());
    started(cmd)
}

/// Spawns `cmd` (tests/helpers/hold_sockets, maybe through a prefix) and returns it with the
/// (TCP, UDP) ports it prints once both sockets are open.
pub fn started(mut cmd: Command) -> (Helper, u16, u16) {
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut ports = line.split_whitespace().map(|p| p.parse::<u16>().unwrap());
    let (Some(tcp), Some(udp)) = (ports.next(), ports.next()) else {
        panic!("{cmd:?}: no ports ({line:?})");
    };
    (Helper(child), tcp, udp)
}

/// Starts tests/helpers/hold_sockets (or a copy of it at `exe`) under the command name `comm`
/// (any bytes; the kernel keeps 15) and returns it with its (TCP, UDP) ports once both sockets
/// are open.
pub fn hold_sockets_named(exe: Option<&Path>, comm: &[u8]) -> (Helper, u16, u16) {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = Command::new(exe.unwrap_or(hold_sockets_helper()));
    cmd.env("PW_COMM", std::ffi::OsStr::from_bytes(comm))
        .stdout(Stdio::piped());
    started(cmd)
}

/// Starts tests/helpers/hold_sockets (as `uid` when given) and returns it with its (TCP, UDP)
/// ports once both sockets are open.
pub fn hold_sockets(args: &[String], uid: Option<u32>) -> (Helper, u16, u16) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(hold_sockets_helper());
    cmd.args(args).stdout(Stdio::piped());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    started(cmd)
}

/// tests/helpers/churn.c: a flood of listener births (TCP listens, UDP binds) for N seconds.
pub fn churn_helper() -> &'static Path {
    c_helper("churn")
}

/// tests/helpers/image_tricks.c: a listener exec'd through /proc/self/exe, or deleted before it
/// listens, or with its arguments rewritten.
pub fn image_tricks_helper() -> &'static Path {
    c_helper("image_tricks")
}

/// tests/helpers/listen_on_line.c: waits for a line on stdin, then listens on 127.0.0.1:PORT.
pub fn listen_on_line_helper() -> &'static Path {
    c_helper("listen_on_line")
}
