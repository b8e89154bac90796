//! The root of the cgroup v2 hierarchy, opened as a directory, for the cgroup socket programs.
//!
//! The mount the host has is used when it shows the whole hierarchy (`/sys/fs/cgroup`, or
//! `/sys/fs/cgroup/unified` on hybrid hosts). Otherwise (no cgroup2 mount, or one that shows a
//! sub-tree, as in a container) portwatch makes a detached mount of its own with the new mount
//! API (fsopen/fsmount): it is never attached to any path and goes away with its descriptor, so
//! nothing is left on the host.
use std::{
    ffi::CString,
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
};

use crate::host::cgroup::v2_root;

/// The cgroup v2 root directory's inode: kernfs gives the root cgroup id 1.
const ROOT_INO: u64 = 1;

pub fn open() -> Result<File, String> {
    if let Some(path) = v2_root() {
        if let Ok(dir) = File::open(path) {
            if dir.metadata().is_ok_and(|m| m.ino() == ROOT_INO) {
                return Ok(dir);
            }
        }
    }
    detached_mount().map_err(|e| {
        format!("no cgroup v2 root: the host has no cgroup2 mount of the whole hierarchy and mounting one failed ({e})")
    })
}

fn check(ret: libc::c_long) -> io::Result<i32> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as i32)
    }
}

fn detached_mount() -> io::Result<File> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let fstype = CString::new("cgroup2").expect("no NUL");
    // SAFETY: plain syscalls with valid arguments; each returned fd is owned at once.
    unsafe {
        let fs = OwnedFd::from_raw_fd(check(libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            FSOPEN_CLOEXEC,
        ))?);
        check(libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        ))?;
        let mnt = OwnedFd::from_raw_fd(check(libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            0,
        ))?);
        // The mount's fd is an O_PATH one, which the BPF link cannot use: open the directory.
        let dot = CString::new(".").expect("no NUL");
        let dir = check(libc::c_long::from(libc::openat(
            mnt.as_raw_fd(),
            dot.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )))?;
        Ok(File::from_raw_fd(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways give the hierarchy's root: the host's mount and a detached one of our own.
    #[test]
    fn opens_the_root_both_ways() {
        let host = open().expect("cgroup v2 root");
        assert_eq!(host.metadata().unwrap().ino(), ROOT_INO);
        let own = detached_mount().expect("detached cgroup2 mount");
        assert_eq!(own.metadata().unwrap().ino(), ROOT_INO);
    }
}
