//! Real container runtimes for the tests, set up offline: an image holding only a static
//! busybox (Debian's busybox-static), imported into podman (run with runc), docker (Debian's
//! docker.io; its dockerd started here when none answers, with `--iptables=false
//! --bridge=none`, and stopped when the tests exit) and containerd (`ctr`, against the
//! containerd dockerd runs), once: a later run finds it there. Every container is removed when
//! its guard drops; the working directory goes at exit.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::run_to_exit_within;

/// A runtime command (pulling nothing, starting a container) finishes in seconds; this only
/// bounds a failing one.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// Runs `cmd` (bounded) and returns its stdout; fails the test with its stderr otherwise.
pub fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run_to_exit_within(cmd, COMMAND_LIMIT);
    assert_eq!(code, 0, "{cmd:?} failed: {err}");
    out
}

/// This run's working directory (the image's root and tar, dockerd's log), removed at exit
/// with the dockerd this run started.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portwatch-runtimes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: registers a plain function without arguments, once.
        unsafe { libc::atexit(at_exit) };
        dir
    })
}

/// A tar of a root holding a static busybox and the applets the tests run, made once.
fn busybox_root() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let installed =
            ok(Command::new("dpkg-query").args(["-W", "-f=${Status}", "busybox-static"]));
        assert!(
            installed.ends_with(" installed"),
            "the container tests need Debian's busybox-static (`cargo xtask setup` installs it)"
        );
        let root = work_dir().join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "nc", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = work_dir().join("busybox.tar");
        ok(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        tar
    })
}

/// docker's and podman's command lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    Podman,
    Docker,
}

impl Cli {
    fn command(self) -> Command {
        match self {
            Cli::Podman => Command::new("podman"),
            // Debian's client, whatever else is on PATH.
            Cli::Docker => Command::new("/usr/bin/docker"),
        }
    }

    /// The image's name as the runtime reports it (`container.image`).
    pub fn image(self) -> &'static str {
        static PODMAN: OnceLock<()> = OnceLock::new();
        static DOCKER: OnceLock<()> = OnceLock::new();
        match self {
            Cli::Podman => {
                PODMAN.get_or_init(|| import(self, "localhost/portwatch-test:busybox"));
                "localhost/portwatch-test:busybox"
            }
            Cli::Docker => {
                DOCKER.get_or_init(|| {
                    docker_daemon();
                    import(self, "portwatch-test:busybox");
                });
                "portwatch-test:busybox"
            }
        }
    }

    /// Starts a container named `name` running `cmd` with the runtime's flags `flags`.
    pub fn run(self, name: &str, flags: &[&str], cmd: &[&str]) -> Container {
        let image = self.image();
        let mut c = self.command();
        c.args(["run", "-d", "--name", name]);
        if self == Cli::Podman {
            // crun refuses this hybrid cgroup host; podman's default ulimits make runc's
            // setrlimit fail.
            c.args(["--runtime", "/usr/sbin/runc"]);
            c.args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ]);
        }
        // A leftover of an interrupted run would hold the name.
        let _ = run_to_exit_within(self.command().args(["rm", "-f", name]), COMMAND_LIMIT);
        let id = ok(c.args(flags).arg(image).args(cmd)).trim().to_owned();
        Container {
            cli: self,
            name: name.to_owned(),
            id,
        }
    }
}

/// Imports the image unless an earlier run did (each import would leave the last one behind,
/// untagged).
fn import(cli: Cli, image: &str) {
    let exists = match cli {
        Cli::Podman => cli.command().args(["image", "exists", image]).status(),
        Cli::Docker => cli
            .command()
            .args(["image", "inspect", image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status(),
    };
    if !exists.is_ok_and(|s| s.success()) {
        ok(cli.command().arg("import").arg(busybox_root()).arg(image));
    }
}

/// A running container, removed when dropped.
pub struct Container {
    pub cli: Cli,
    pub name: String,
    pub id: String,
}

impl Container {
    /// `inspect`'s document of it.
    pub fn inspect(&self) -> Value {
        let out = ok(self.cli.command().args(["inspect", &self.name]));
        let v: Value = serde_json::from_str(&out).expect("inspect prints JSON");
        v[0].clone()
    }

    /// Its main process's pid, once it runs (bounded).
    pub fn pid(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pid = self.inspect()["State"]["Pid"].as_u64().unwrap_or(0);
            if pid != 0 {
                return pid;
            }
            assert!(Instant::now() < deadline, "{} never ran", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts it at once (no grace period: busybox as pid 1 ignores SIGTERM).
    pub fn restart(&self) {
        ok(self.cli.command().args(["restart", "-t", "0", &self.name]));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run_to_exit_within(
            self.cli.command().args(["rm", "-f", &self.name]),
            COMMAND_LIMIT,
        );
    }
}

/// The dockerd this run started (none when one was running already).
static DOCKERD: Mutex<Option<Child>> = Mutex::new(None);

/// A dockerd that answers: the machine's, else one started now and stopped at exit.
fn docker_daemon() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let answers = || {
            Command::new("/usr/bin/docker")
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if answers() {
            return;
        }
        let log =
            std::env::temp_dir().join(format!("portwatch-dockerd-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start dockerd (Debian's docker.io)");
        *DOCKERD.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answers() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// At exit: stops the dockerd this run started (and the containerd it runs), waiting for it,
/// and removes the working directory.
extern "C" fn at_exit() {
    if let Some(mut child) = DOCKERD.lock().ok().and_then(|mut d| d.take()) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(work_dir());
}

/// containerd's own client against the containerd dockerd runs (or the machine's), in a
/// namespace of the tests' own.
pub struct Ctr {
    socket: &'static str,
}

pub const CTR_NAMESPACE: &str = "portwatch-test";
pub const CTR_IMAGE: &str = "docker.io/library/portwatch-test:busybox";

impl Ctr {
    pub fn new() -> Self {
        static SOCKET: OnceLock<&'static str> = OnceLock::new();
        let socket = SOCKET.get_or_init(|| {
            Cli::Docker.image();
            let socket = [
                "/run/containerd/containerd.sock",
                "/run/docker/containerd/containerd.sock",
            ]
            .into_iter()
            .find(|s| Path::new(s).exists())
            .expect("a containerd socket");
            let ctr = || {
                let mut c = Command::new("ctr");
                c.args(["-a", socket, "-n", CTR_NAMESPACE]);
                c
            };
            if !ok(ctr().args(["images", "ls", "-q"]))
                .lines()
                .any(|l| l == CTR_IMAGE)
            {
                // containerd imports what `docker save` writes.
                let archive = work_dir().join("busybox-image.tar");
                ok(Command::new("/usr/bin/docker")
                    .args(["save", "-o"])
                    .arg(&archive)
                    .arg(Cli::Docker.image()));
                ok(ctr().args(["images", "import"]).arg(&archive));
            }
            socket
        });
        Self { socket }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("ctr");
        c.args(["-a", self.socket, "-n", CTR_NAMESPACE]);
        c
    }

    /// Starts container (and task) `id` running `cmd`; removed when the guard drops.
    pub fn run(&self, id: &str, cmd: &[&str]) -> CtrContainer {
        ok(self.command().args(["run", "-d", CTR_IMAGE, id]).args(cmd));
        CtrContainer {
            ctr: Self {
                socket: self.socket,
            },
            id: id.to_owned(),
        }
    }
}

pub struct CtrContainer {
    ctr: Ctr,
    pub id: String,
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        let _ = run_to_exit_within(
            self.ctr.command().args(["task", "rm", "-f", &self.id]),
            COMMAND_LIMIT,
        );
        let _ = run_to_exit_within(
            self.ctr.command().args(["containers", "rm", &self.id]),
            COMMAND_LIMIT,
        );
    }
}
