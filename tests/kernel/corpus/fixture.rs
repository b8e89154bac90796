//! The files the corpus's cases run: copies of Debian's tools under other names, small servers
//! in Python, Perl, Tcl and JavaScript, in packaged-looking places (`/opt`) and in the places
//! an intruder drops them (/tmp, /var/tmp, /dev/shm, a directory anyone may write to, a hidden
//! one), and what the real services need (an ssh host key, a TLS certificate). Removed at drop.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

/// Where the fixture's files are; every other place is below one of these.
pub const OPT: &str = "/opt/portwatch-corpus";
const PLACES: [&str; 8] = [
    OPT,
    "/tmp/portwatch-corpus",
    "/var/tmp/portwatch-corpus",
    "/srv/portwatch-corpus-upload",
    "/root/.cache/portwatch-corpus",
    "/root/.local/share/.portwatch-corpus",
    "/root/.local/bin/portwatch-corpus",
    "/root/.local/share/pipx/portwatch-corpus",
];
const SHM_SCRIPT: &str = "/dev/shm/portwatch-corpus-srv.py";

/// A JavaScript module (for `--import data:...`) serving 127.0.0.1:$PORT.
pub const SRV_MJS: &str = "import net from 'node:net'; \
    net.createServer((c) => c.end()).listen(+process.env.PORT, '127.0.0.1');";

/// A Python server: listens on 127.0.0.1:$PORT (its last argument, else $PORT) and waits.
const SRV_PY: &str = "import os, socket, sys, time
port = int(sys.argv[-1]) if sys.argv[-1].isdigit() else int(os.environ['PORT'])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port))
s.listen()
time.sleep(60)
";

/// The same, after naming itself like a kernel thread (prctl PR_SET_NAME, as ps shows one).
const COMM_PY: &str = "import ctypes, os, socket, time
ctypes.CDLL(None).prctl(15, b'[kworker/2:0]', 0, 0, 0)
s = socket.socket()
s.bind(('127.0.0.1', int(os.environ['PORT'])))
s.listen()
time.sleep(60)
";

/// The same, after deleting its own executable.
const UNLINK_PY: &str = "import os, socket, time
os.unlink(os.readlink('/proc/self/exe'))
s = socket.socket()
s.bind(('127.0.0.1', int(os.environ['PORT'])))
s.listen()
time.sleep(60)
";

/// The same, after deleting the file $DELETE names (a program a loader ran).
const UNLINK_ENV_PY: &str = "import os, socket, time
os.unlink(os.environ['DELETE'])
s = socket.socket()
s.bind(('127.0.0.1', int(os.environ['PORT'])))
s.listen()
time.sleep(60)
";

/// python run from memory by the dynamic loader: its content in a memfd kept across exec.
const LOADER_MEMFD_PY: &str = "import os, sys
fd = os.memfd_create('x', 0)
os.write(fd, open(os.path.realpath('/usr/bin/python3'), 'rb').read())
code = open(sys.argv[2]).read()
os.execv(sys.argv[1], [sys.argv[1], f'/proc/self/fd/{fd}', '-c', code])
";

/// netcat run from memory: its content in a memfd, exec'd by descriptor under another name.
const MEMFD_PY: &str = "import os
fd = os.memfd_create('kworker')
os.write(fd, open('/usr/bin/nc.openbsd', 'rb').read())
os.execv(f'/proc/self/fd/{fd}', ['kworker', '-l', '127.0.0.1', os.environ['PORT']])
";

/// A reverse shell: connects to $PORT, its socket as the shell's standard streams.
const REVERSE_PY: &str = "import os, socket
s = socket.create_connection(('127.0.0.1', int(os.environ['PORT'])))
for fd in (0, 1, 2):
    os.dup2(s.fileno(), fd)
os.execv('/bin/sh', ['sh', '-c', 'sleep 30'])
";

/// A Perl server that renames itself like nginx's worker.
const NGINX_PL: &str = "$0 = 'nginx: worker process';
use IO::Socket::INET;
my $s = IO::Socket::INET->new(Listen => 5, LocalAddr => \"127.0.0.1:$ENV{PORT}\", ReuseAddr => 1) or die;
sleep 60;
";

/// A plain Perl server.
const PLAIN_PL: &str = "use IO::Socket::INET;
my $s = IO::Socket::INET->new(Listen => 5, LocalAddr => \"127.0.0.1:$ENV{PORT}\", ReuseAddr => 1) or die;
sleep 60;
";

const SRV_TCL: &str = "proc accept {c a p} { close $c }
socket -server accept -myaddr 127.0.0.1 $env(PORT)
vwait forever
";

const SRV_RB: &str = "require 'socket'
s = TCPServer.new('127.0.0.1', ENV['PORT'].to_i)
sleep 60
";

const SRV_JS: &str =
    "require('net').createServer((c) => c.end()).listen(+process.env.PORT, '127.0.0.1');\n";
const PRE_JS: &str = "process.title = process.title;\n";

pub struct Fixture;

impl Fixture {
    pub fn new() -> Self {
        Self::remove();
        for dir in PLACES {
            fs::create_dir_all(dir).unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(PLACES[3], fs::Permissions::from_mode(0o1777)).unwrap();
        let opt = Path::new(OPT);
        for (name, text) in [
            ("srv.py", SRV_PY),
            ("comm.py", COMM_PY),
            ("unlink.py", UNLINK_PY),
            ("unlink_env.py", UNLINK_ENV_PY),
            ("loader_memfd.py", LOADER_MEMFD_PY),
            ("memfd.py", MEMFD_PY),
            ("reverse.py", REVERSE_PY),
            ("nginx.pl", NGINX_PL),
            ("plain.pl", PLAIN_PL),
            ("srv.tcl", SRV_TCL),
            ("srv.js", SRV_JS),
            ("srv.rb", SRV_RB),
            ("index.php", "<?php echo 'ok';\n"),
            ("pre.js", PRE_JS),
            ("decoy.tcl", "exit 0\n"),
        ] {
            write(&opt.join(name), text, 0o644);
        }
        write(Path::new(SHM_SCRIPT), SRV_PY, 0o644);
        write(&Path::new(PLACES[5]).join("srv.py"), SRV_PY, 0o644);
        // Debian's tools under other names, in other places.
        let python = fs::canonicalize("/usr/bin/python3").unwrap();
        let ldso = fs::canonicalize(ldso()).unwrap();
        for (tool, copy) in [
            (ldso.as_path(), format!("{OPT}/sys-helper")),
            (&python, format!("{OPT}/.sysd")),
            (&python, format!("{}/sub/python3", PLACES[3])),
            (&python, format!("{}/.cargo/bin/python3", PLACES[4])),
            (&python, format!("{}/python3", PLACES[7])),
            (&python, format!("{}/gone/python3", PLACES[1])),
            (&python, format!("{}/pyx", PLACES[6])),
            (&python, format!("{OPT}/app/.venv/bin/python3")),
            (
                Path::new("/usr/bin/nc.openbsd"),
                format!("{}/httpd", PLACES[4]),
            ),
            (Path::new("/usr/bin/nc.openbsd"), format!("{OPT}/apache2")),
            (Path::new("/usr/bin/socat"), format!("{OPT}/dbus-helper")),
            (Path::new("/usr/bin/dash"), format!("{OPT}/kthelper")),
            (Path::new("/usr/bin/bash"), format!("{OPT}/apache-worker")),
            (Path::new("/usr/bin/zsh"), format!("{OPT}/update-agent")),
            (&python, format!("{OPT}/sysmon")),
            (Path::new("/usr/bin/perl"), format!("{OPT}/logrotate-d")),
            (&python, format!("{OPT}/gone/python3")),
            (&python, format!("{}/python3", PLACES[1])),
            (&python, format!("{}/python3", PLACES[2])),
            (&python, format!("{}/python3", PLACES[3])),
        ] {
            let copy = PathBuf::from(copy);
            fs::create_dir_all(copy.parent().unwrap()).unwrap();
            fs::copy(tool, &copy).unwrap();
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        }
        // A program of nobody's: python with one byte of its build-id changed.
        let sshd = format!("{}/sshd", PLACES[6]);
        let mut bytes = fs::read(&python).unwrap();
        let note = b"GNU\0";
        let at = bytes
            .windows(16)
            .position(|w| w[4..8] == [20, 0, 0, 0] && w[8..12] == [3, 0, 0, 0] && &w[12..] == note)
            .expect("python3's build-id note");
        bytes[at + 16] ^= 0xff;
        write_bytes(Path::new(&sshd), &bytes, 0o755);
        std::os::unix::fs::symlink("/dev/shm", opt.join("shm")).unwrap();
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(opt.join("hostkey")));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=corpus",
            ])
            .arg("-keyout")
            .arg(opt.join("key.pem"))
            .arg("-out")
            .arg(opt.join("cert.pem")));
        fs::create_dir_all("/run/sshd").unwrap();
        // A PostgreSQL cluster of its own, owned by Debian's postgres user.
        let pg = opt.join("pg");
        run(Command::new("install")
            .args(["-d", "-o", "postgres", "-g", "postgres"])
            .arg(&pg));
        run(Command::new("setpriv")
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(format!("{}/initdb", pg_bin()))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&pg));
        Self
    }

    /// chronyd's configuration: an NTP server on 127.0.0.1:`port`, no command port, no clock
    /// to set.
    pub fn chrony_conf(port: u16) -> String {
        let path = format!("{OPT}/chrony-{port}.conf");
        let conf = format!(
            "port {port}\nbindaddress 127.0.0.1\ncmdport 0\nallow 127.0.0.1\nlocal stratum 10\n\
             pidfile {OPT}/chrony-{port}.pid\n"
        );
        write(Path::new(&path), &conf, 0o644);
        path
    }

    fn remove() {
        for dir in PLACES {
            let _ = fs::remove_dir_all(dir);
        }
        let _ = fs::remove_file(SHM_SCRIPT);
    }

    /// An nginx configuration serving 127.0.0.1:`port`, in the foreground.
    pub fn nginx_conf(port: u16) -> String {
        let path = format!("{OPT}/nginx-{port}.conf");
        let conf = format!(
            "daemon off; pid {OPT}/nginx-{port}.pid; error_log stderr; events {{}}
http {{ access_log off; client_body_temp_path {OPT}; proxy_temp_path {OPT};
  fastcgi_temp_path {OPT}; uwsgi_temp_path {OPT}; scgi_temp_path {OPT};
  server {{ listen 127.0.0.1:{port}; }} }}\n"
        );
        write(Path::new(&path), &conf, 0o644);
        path
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        Self::remove();
    }
}

/// The newest installed PostgreSQL's programs.
pub fn pg_bin() -> String {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian's postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    found.sort();
    found.pop().unwrap().to_string_lossy().into_owned()
}

fn write(path: &Path, text: &str, mode: u32) {
    write_bytes(path, text.as_bytes(), mode);
}

fn write_bytes(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// This machine's dynamic loader.
pub fn ldso() -> &'static str {
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a dynamic loader")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
