//! Which file system a path is on, as a process sees it (`/proc/PID/mountinfo`). A file on a
//! file system that a user-space or network server answers for (FUSE, which an unprivileged
//! user may mount; NFS, SMB, 9p, ...) is never opened, read or stat'ed by portwatch: such a
//! server could stall the one thread that reads the ring buffer, forever. Such a program is
//! known by its name only, and its directory's mode is not read. A descriptor's mount is known
//! exactly, by the id the kernel gives it (`local_fd`): paths are walked by descriptor
//! (`resolve`), never compared as text with mount points.

use std::os::fd::{AsRawFd, FromRawFd};

/// File systems whose files the kernel itself serves (disks, memory, images, overlays).
const LOCAL: [&str; 21] = [
    "ext4",
    "ext3",
    "ext2",
    "xfs",
    "btrfs",
    "tmpfs",
    "overlay",
    "squashfs",
    "vfat",
    "f2fs",
    "zfs",
    "erofs",
    "iso9660",
    "ramfs",
    "devtmpfs",
    "exfat",
    "ntfs3",
    "jfs",
    "nilfs2",
    "bcachefs",
    "hugetlbfs",
];

/// The most of a mount table read: past it (a namespace made with tens of thousands of
/// mounts to slow every lookup), the table is not known, and nothing is taken for local.
const MAX_TABLE: u64 = 1 << 20;

/// Process `pid`'s mount table, if readable and under 1 MiB.
pub fn of(pid: u32) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(format!("/proc/{pid}/mountinfo")).ok()?;
    let mut table = String::new();
    file.take(MAX_TABLE + 1).read_to_string(&mut table).ok()?;
    (table.len() as u64 <= MAX_TABLE).then_some(table)
}

/// Whether the file `fd` refers to (an `O_PATH` descriptor: nothing was asked of its file
/// system) is on a mount of a local file system in `mountinfo`, or in memory (a memfd). A mount
/// the table does not list (detached with `umount -l`, another namespace's) is not local.
pub fn local_fd(mountinfo: &str, fd: &impl AsRawFd) -> bool {
    let Some(id) = mount_id(fd.as_raw_fd()) else {
        return false;
    };
    if memfd_mount() == Some(id) {
        return true;
    }
    let id = id.to_string();
    mountinfo
        .lines()
        .find(|line| line.split(' ').next() == Some(id.as_str()))
        .and_then(|line| line.split_once(" - "))
        .and_then(|(_, rest)| rest.split(' ').next())
        .is_some_and(|kind| LOCAL.contains(&kind))
}

/// The mount id of descriptor `fd` of this process (`/proc/self/fdinfo`).
fn mount_id(fd: i32) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The kernel's own mount that every memfd is on, learnt from one of this process's.
fn memfd_mount() -> Option<u64> {
    static MOUNT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *MOUNT.get_or_init(|| {
        // SAFETY: a valid C string and flags; the descriptor is owned and closed below.
        let fd = unsafe { libc::memfd_create(c"portwatch-probe".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a descriptor memfd_create just returned, owned by nothing else.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        mount_id(owned.as_raw_fd())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptors_mount_is_known_by_its_id() {
        let me = std::process::id();
        let table = of(me).unwrap();
        // The machine's own programs are on a disk; /proc is served by the kernel, but is no
        // place for programs and not in the list.
        let env = std::fs::File::open("/usr/bin/env").unwrap();
        assert!(local_fd(&table, &env));
        let proc = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!local_fd(&table, &proc));
        assert!(!local_fd("", &env), "a mount the table does not list");
        // SAFETY: a valid C string; the descriptor is owned below.
        let fd = unsafe { libc::memfd_create(c"t".as_ptr(), 0) };
        // SAFETY: just returned, owned by nothing else.
        let memfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        assert!(local_fd("", &memfd), "a memfd is in memory");
    }
}
