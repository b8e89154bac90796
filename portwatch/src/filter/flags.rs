//! Each filter flag's value checked against the host at start: a value that can never match
//! (a file that is not a network namespace, a directory outside the cgroup hierarchy, pid 0, a
//! uid of -1, a relative executable) is refused in one line naming the flag, the value and the
//! fix, instead of starting a watch that shows nothing.
use std::{
    fs,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

/// `NS_GET_NSTYPE` (linux/nsfs.h): the type of the namespace an nsfs file is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
/// What `NS_GET_NSTYPE` answers for each namespace type (`CLONE_NEW*`), to name a wrong one.
const NAMESPACE_TYPES: [(libc::c_int, &str); 8] = [
    (libc::CLONE_NEWNET, "network"),
    (libc::CLONE_NEWPID, "pid"),
    (libc::CLONE_NEWNS, "mount"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUSER, "user"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
    (0x80, "time"),
];
/// statfs(2)'s f_type of a cgroup v2 file system.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn usage(flag: &str, value: &str, problem: impl std::fmt::Display) -> Error {
    Error::Usage(format!("--{flag} `{value}`: {problem}"))
}

/// `--netns`: an inode number, or a path that is a network namespace (`/proc/PID/ns/net`,
/// `/run/netns/NAME`).
pub fn netns(value: &str) -> Result<u32> {
    let bad = |problem: String| usage("netns", value, problem);
    if let Ok(n) = value.parse::<u32>() {
        // A namespace's inode is known only once it exists: a number no process, thread or
        // `ip netns` name has now can only be a mistake.
        let known = crate::host::netns::all()
            .map(|all| all.iter().any(|ns| ns.inode == n))
            .unwrap_or(true);
        if !known {
            return Err(bad(
                "no network namespace on this host has this inode (see `lsns -t net`)".into(),
            ));
        }
        return Ok(n);
    }
    let file = fs::File::open(value).map_err(|e| {
        bad(format!(
            "{e} (give an inode number, /proc/PID/ns/net or /run/netns/NAME)"
        ))
    })?;
    // SAFETY: an ioctl without arguments on a descriptor we own.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind == libc::CLONE_NEWNET {
        let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
        return Ok(meta.ino() as u32);
    }
    let is = NAMESPACE_TYPES
        .iter()
        .find(|(t, _)| *t == kind)
        .map_or_else(
            || "not a namespace".to_owned(),
            |(_, name)| format!("a {name} namespace, not a network one"),
        );
    Err(bad(format!(
        "{is} (give an inode number, /proc/PID/ns/net or /run/netns/NAME)"
    )))
}

/// `--cgroup`: an id, or a directory of the cgroup v2 hierarchy, absolute or relative to its
/// mount (never to the working directory), that stays inside it.
pub fn cgroup(value: &str, root: Option<&Path>) -> Result<u64> {
    if let Ok(n) = value.parse::<u64>() {
        return Ok(n);
    }
    let bad = |problem: String| usage("cgroup", value, problem);
    let root = root.ok_or_else(|| bad("no cgroup v2 hierarchy is mounted".into()))?;
    let given = Path::new(value);
    let path: PathBuf = if given.starts_with(root) {
        given.to_path_buf()
    } else {
        root.join(value.trim_start_matches('/'))
    };
    let outside = |p: &Path| {
        bad(format!(
            "{} is not a cgroup: it is outside the cgroup v2 hierarchy at {}",
            p.display(),
            root.display()
        ))
    };
    // `..` is resolved before the file system is asked, so it cannot lead outside unnoticed.
    let lexical = path.components().fold(PathBuf::new(), |mut p, c| {
        match c {
            std::path::Component::ParentDir => {
                p.pop();
            }
            std::path::Component::CurDir => {}
            other => p.push(other),
        }
        p
    });
    if !lexical.starts_with(root) {
        return Err(outside(&lexical));
    }
    let found = fs::canonicalize(&lexical).map_err(|e| {
        bad(format!(
            "{e} at {} (give an id, or a path in the hierarchy such as /system.slice)",
            lexical.display()
        ))
    })?;
    if !found.starts_with(root) || !is_cgroup2(&found) {
        return Err(outside(&found));
    }
    let meta = fs::metadata(&found).map_err(|e| bad(e.to_string()))?;
    Ok(meta.ino())
}

fn is_cgroup2(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string and a zeroed statfs buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0;
    ok && st.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// `--pid`: 1 up to the host's `kernel.pid_max`.
pub fn pid(p: u32) -> Result<u32> {
    let max = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(4_194_304);
    if p == 0 || p >= max {
        return Err(usage(
            "pid",
            &p.to_string(),
            format!(
                "not a process id on this host (1 to {}, kernel.pid_max)",
                max - 1
            ),
        ));
    }
    Ok(p)
}

/// `--uid`: any but 4294967295, which is (uid_t)-1, "no uid".
pub fn uid(u: u32) -> Result<u32> {
    if u == u32::MAX {
        return Err(usage(
            "uid",
            &u.to_string(),
            "is (uid_t)-1, which no process has (0 to 4294967294)",
        ));
    }
    Ok(u)
}

/// `--exe`: an absolute path, as records name executables.
pub fn exe(path: &Path) -> Result<&Path> {
    if !path.is_absolute() {
        return Err(usage(
            "exe",
            &path.display().to_string(),
            "not an absolute path (records name executables by absolute path, e.g. /usr/sbin/nginx)",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_namespaces_are_told_from_other_files() {
        let mine = fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
        assert_eq!(netns("/proc/self/ns/net").unwrap(), mine);
        assert_eq!(netns(&mine.to_string()).unwrap(), mine);
        assert!(
            netns("12345")
                .unwrap_err()
                .to_string()
                .contains("no network namespace")
        );
        let err = |v: &str| netns(v).unwrap_err().to_string();
        assert!(err("/etc/passwd").contains("`/etc/passwd`: not a namespace"));
        assert!(err("/proc/self/ns/pid").contains("a pid namespace, not a network one"));
        assert!(err("/no/such").contains("--netns `/no/such`"));
    }

    #[test]
    fn cgroups_are_paths_in_the_hierarchy_never_in_the_working_directory() {
        let Some(root) = crate::host::cgroup::v2_root() else {
            return; // no cgroup v2 here: nothing a path could name
        };
        let root_ino = fs::metadata(root).unwrap().ino();
        assert_eq!(cgroup("/", Some(root)).unwrap(), root_ino);
        assert_eq!(
            cgroup(root.to_str().unwrap(), Some(root)).unwrap(),
            root_ino
        );
        assert_eq!(cgroup("77", Some(root)).unwrap(), 77);
        let err = |v: &str| cgroup(v, Some(root)).unwrap_err().to_string();
        assert!(
            err("../../etc").contains("outside the cgroup v2 hierarchy"),
            "{}",
            err("../../etc")
        );
        assert!(err("/etc").contains("--cgroup `/etc`"));
        assert!(
            cgroup("/x", None)
                .unwrap_err()
                .to_string()
                .contains("no cgroup v2")
        );
    }

    #[test]
    fn pids_uids_and_executables_that_cannot_match_are_refused() {
        assert_eq!(pid(1).unwrap(), 1);
        assert!(
            pid(0)
                .unwrap_err()
                .to_string()
                .contains("--pid `0`: not a process id")
        );
        assert!(pid(u32::MAX).is_err());
        assert_eq!(uid(0).unwrap(), 0);
        assert!(uid(u32::MAX).unwrap_err().to_string().contains("(uid_t)-1"));
        assert!(exe(Path::new("/usr/sbin/sshd")).is_ok());
        assert!(
            exe(Path::new("relative"))
                .unwrap_err()
                .to_string()
                .contains("not an absolute path")
        );
    }
}
