//! Reading processes from /proc: used to seed the process table at start-up and as a fallback for
//! processes the kernel hooks did not describe. Every read checks the process start time, so a
//! pid that was reused in the meantime is never mistaken for the process asked about.
use std::{
    fs,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::model::{
    task::{Comm, split_args},
    text,
};

/// Nanoseconds per clock tick, the unit of /proc/PID/stat's start time.
pub fn ns_per_tick() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / hz as u64
    } else {
        10_000_000
    }
}

/// The fields of /proc/PID/stat portwatch uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: Comm,
    pub ppid: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Parses /proc/PID/stat as bytes: the command name is whatever the process chose (any bytes,
/// spaces and parentheses included, not necessarily UTF-8), so it ends at the last `)`.
pub fn parse_stat(raw: &[u8]) -> Option<Stat> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    let comm = Comm::new(raw.get(open + 1..close)?);
    // After ") ": state(3) ppid(4) ... starttime(22); fields counted from 1 as in proc(5).
    let rest = std::str::from_utf8(raw.get(close + 2..)?).ok()?;
    let rest: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        start_ticks: rest.get(19)?.parse().ok()?,
    })
}

fn dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read(dir(pid).join("stat")).ok()?)
}

/// What /proc says about a process, if it is still the one started at `start_ticks`.
#[derive(Clone, Debug, Default)]
pub struct ProcInfo {
    pub exe: Option<String>,
    pub exe_file: Option<ExeFile>,
    pub args: Option<Vec<Vec<u8>>>,
    /// `portwatch_common::args_fingerprint` of the raw command line.
    pub args_print: Option<u64>,
    pub comm: Comm,
    pub ppid: u32,
    pub cgroup: Option<String>,
}

pub fn read(pid: u32, start_ticks: Option<u64>) -> Option<ProcInfo> {
    let (stat, ((exe, exe_file), raw, cgroup)) = consistent(pid, start_ticks, |d| {
        (
            read_exe_file(d),
            fs::read(d.join("cmdline")).ok(),
            read_cgroup(d),
        )
    })?;
    Some(ProcInfo {
        exe,
        exe_file,
        args_print: raw.as_deref().map(portwatch_common::args_fingerprint),
        args: raw.as_deref().map(split_cmdline),
        comm: stat.comm,
        ppid: stat.ppid,
        cgroup,
    })
}

/// /proc/PID/exe of the process started at `start_ticks`.
pub fn exe(pid: u32, start_ticks: u64) -> Option<String> {
    consistent(pid, Some(start_ticks), read_exe)?.1
}

/// The arguments of the process started at `start_ticks` as they are now (/proc/PID/cmdline),
/// after it rewrote them (the NULs a new title was padded with are not arguments), with the
/// fingerprint of what was read (`portwatch_common::args_fingerprint`).
pub fn cmdline(pid: u32, start_ticks: u64) -> Option<(Vec<Vec<u8>>, u64)> {
    let raw = consistent(pid, Some(start_ticks), |d| fs::read(d.join("cmdline")).ok())?.1?;
    let print = portwatch_common::args_fingerprint(&raw);
    Some((split_cmdline(&raw), print))
}

/// /proc/PID/cmdline as arguments. A process that rewrote its argument area pads its new
/// title with NULs, which are not arguments: trailing ones are dropped (so is a true empty
/// last argument, which /proc cannot tell from padding).
fn split_cmdline(raw: &[u8]) -> Vec<Vec<u8>> {
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    split_args(&raw[..end])
}

/// The inode number of the file at `path` (escaped as `text::escape` writes names), following
/// symlinks; None when there is none or the name does not round-trip.
pub fn inode_of(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| m.ino())
}

/// The executable file a process runs, by identity: what the kernel reads at its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExeFile {
    pub id: crate::model::task::FileId,
    /// 0: deleted (or a memfd).
    pub links: u64,
}

/// /proc/PID/exe as a path (without the " (deleted)" the kernel appends to a file with no
/// links left: `ExeFile::links` says so), and the file itself.
fn read_exe_file(d: &Path) -> (Option<String>, Option<ExeFile>) {
    let file = cached_stat(&d.join("exe"));
    let exe = read_exe(d).map(|p| match (file, p.strip_suffix(" (deleted)")) {
        (Some(f), Some(path)) if f.links == 0 => path.to_owned(),
        _ => p,
    });
    (exe, file)
}

/// The cgroup path (`cgroup::preferred_path`) of the process started at `start_ticks`.
pub fn cgroup(pid: u32, start_ticks: u64) -> Option<String> {
    consistent(pid, Some(start_ticks), read_cgroup)?.1
}

fn read_exe(d: &Path) -> Option<String> {
    fs::read_link(d.join("exe"))
        .ok()
        .map(|p| text::escape_os(p.as_os_str()).into_owned())
}

/// Cgroup paths are names a process (a container runtime, a delegated user) chooses: bytes,
/// kept as `text::escape` writes them.
fn read_cgroup(d: &Path) -> Option<String> {
    fs::read(d.join("cgroup"))
        .ok()
        .and_then(|raw| crate::enrich::cgroup::preferred_path(&text::escape_lines(&raw)))
}

/// Runs `read` on /proc/PID if it is the process started at `start_ticks` (any, if None) both
/// before and after: otherwise what was read may describe a successor under a reused pid.
fn consistent<T>(
    pid: u32,
    start_ticks: Option<u64>,
    read: impl FnOnce(&Path) -> T,
) -> Option<(Stat, T)> {
    let before = stat(pid)?;
    if start_ticks.is_some_and(|t| t != before.start_ticks) {
        return None;
    }
    let value = read(&dir(pid));
    let after = stat(pid)?;
    (after.start_ticks == before.start_ticks).then_some((before, value))
}

/// Every numeric directory of /proc.
pub fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The task context of a live process, from /proc, shaped like the kernel's (for processes that
/// were already running when portwatch started, such as the owners of existing listeners).
pub fn task(pid: u32, boot_ns: u64) -> Option<crate::model::task::Task> {
    use std::os::unix::fs::MetadataExt;
    let st = stat(pid)?;
    // Only the numeric Uid and Gid lines are read; the Name line may hold any bytes.
    let status = fs::read(dir(pid).join("status")).ok()?;
    let status = String::from_utf8_lossy(&status);
    let first_id = |key: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let tick = ns_per_tick();
    let parent = stat(st.ppid);
    Some(crate::model::task::Task {
        boot_ns,
        pid,
        tid: pid,
        uid: first_id("Uid:")?,
        gid: first_id("Gid:")?,
        comm: st.comm,
        cgroup_id: crate::enrich::cgroup::v2_id_of(pid).unwrap_or(0),
        ppid: Some(st.ppid),
        parent_start_ns: parent.map(|p| p.start_ticks * tick),
        start_ns: Some(st.start_ticks * tick),
        netns: fs::metadata(dir(pid).join("ns/net"))
            .ok()
            .map(|m| m.ino() as u32),
        loginuid: fs::read_to_string(dir(pid).join("loginuid"))
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        running: crate::model::task::Running::default(),
    })
}

/// Socket inode → the processes holding it, from every /proc/PID/fd.
pub fn socket_owners() -> std::collections::HashMap<u64, Vec<u32>> {
    let mut owners: std::collections::HashMap<u64, Vec<u32>> = std::collections::HashMap::new();
    for pid in pids() {
        let Ok(fds) = fs::read_dir(dir(pid).join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            // A socket's link is ASCII; any other file's may be any bytes.
            if let Some(inode) = target
                .as_os_str()
                .as_bytes()
                .strip_prefix(b"socket:[")
                .and_then(|t| t.strip_suffix(b"]"))
                .and_then(|t| std::str::from_utf8(t).ok()?.parse().ok())
            {
                let holders = owners.entry(inode).or_default();
                if !holders.contains(&pid) {
                    holders.push(pid);
                }
            }
        }
    }
    owners
}

/// What the kernel already knows of the file `path` names (its device, inode and links),
/// without asking its file system: a FUSE or NFS server is not waited on (`statx` with
/// `AT_STATX_DONT_SYNC`).
fn cached_stat(path: &Path) -> Option<ExeFile> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroes are a valid statx; the call fills it or fails.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_INO | libc::STATX_NLINK;
    // SAFETY: a valid C string and a statx to fill.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            name.as_ptr(),
            libc::AT_STATX_DONT_SYNC,
            mask,
            &raw mut st,
        )
    };
    (r == 0).then(|| ExeFile {
        id: crate::model::task::FileId {
            dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
        },
        links: u64::from(st.stx_nlink),
    })
}

/// The exec'd file name with symlinks resolved, as /proc/PID/exe shows it (so a process seen
/// at exec and one read from /proc name their executable the same way, e.g. for baselines).
/// Resolved in portwatch's own mount namespace, hence only for processes that share it (or are
/// already gone, and most likely did); otherwise the name stays as the kernel gave it. Both as
/// `text::escape` writes them.
pub fn resolve_exe(pid: u32, filename: &[u8]) -> String {
    use std::os::unix::fs::MetadataExt;
    let mnt_ns = |p: &str| fs::metadata(p).ok().map(|m| m.ino());
    let theirs = mnt_ns(&format!("/proc/{pid}/ns/mnt"));
    let given = || text::escape(filename).into_owned();
    if theirs.is_some() && theirs != mnt_ns("/proc/self/ns/mnt") {
        return given();
    }
    // An exec through a descriptor (fexecve, /proc/self/fd/N: a memfd, a deleted file) names
    // the exec'ing process's own files, which portwatch must not resolve as its own: the
    // process's /proc/PID/exe says what runs ("/memfd:x (deleted)").
    let by_fd = [&b"/proc/self/"[..], b"/proc/thread-self/", b"/dev/fd/"]
        .iter()
        .any(|p| filename.starts_with(p));
    if by_fd {
        return fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| text::escape_os(p.as_os_str()).into_owned())
            .unwrap_or_else(|_| given());
    }
    // Walked by descriptor, never into a mount a server answers for (`resolve`): from the
    // process's working directory, or from this daemon's root when it is gone.
    let Ok(name) = std::str::from_utf8(filename) else {
        return given();
    };
    let walk = |p: u32| super::resolve::resolve(p, &super::mounts::of(p)?, name);
    walk(pid)
        .or_else(|| {
            name.starts_with('/')
                .then(|| walk(std::process::id()))
                .flatten()
        })
        .map_or_else(given, |found| {
            text::escape(found.path.as_bytes()).into_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let rest = " S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 \
                    1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        for comm in [&b"a) b (c"[..], b"\xff\xfe)", b"new\nline", b"("] {
            let text = [&b"1234 ("[..], comm, b")", rest.as_bytes()].concat();
            assert_eq!(
                parse_stat(&text),
                Some(Stat {
                    comm: Comm::new(comm),
                    ppid: 77,
                    start_ticks: 98765
                }),
                "{comm:?}"
            );
        }
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        let info = read(me, Some(s.start_ticks)).unwrap();
        assert_eq!(
            info.exe.unwrap(),
            std::env::current_exe().unwrap().to_string_lossy()
        );
        assert_eq!(
            read(me, Some(s.start_ticks + 1)).map(|_| ()),
            None,
            "wrong start time"
        );
    }

    #[test]
    fn resolves_symlinked_executables_like_proc_exe() {
        let dir = std::env::temp_dir().join(format!("pw-resolve-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let link = dir.join("sh-link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
        let me = std::process::id();
        let resolved = resolve_exe(me, link.as_os_str().as_bytes());
        assert_eq!(
            resolved,
            fs::canonicalize("/bin/sh").unwrap().to_string_lossy()
        );
        assert_eq!(resolve_exe(me, b"/no/such/file"), "/no/such/file");
        assert_eq!(resolve_exe(me, b"/no/such/\xff"), "/no/such/\\xff");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn splits_arguments() {
        assert_eq!(
            split_args(b"a\0\0b\0"),
            vec![b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert_eq!(split_args(b""), Vec::<Vec<u8>>::new());
        assert_eq!(split_args(b"x"), vec![b"x".to_vec()]);
    }
}
