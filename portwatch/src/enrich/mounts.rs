//! Which file system a path is on, as a process sees it (`/proc/PID/mountinfo`). A file on a
//! file system that a user-space or network server answers for (FUSE, which an unprivileged
//! user may mount; NFS, SMB, 9p, ...) is never opened, read or stat'ed by portwatch: such a
//! server could stall the one thread that reads the ring buffer, forever. Such a program is
//! known by its name only, and its directory's mode is not read.

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

/// Process `pid`'s mount table, if readable.
pub fn of(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()
}

/// Whether `path` (absolute, in the process's root) is on a file system the kernel serves. A
/// path with a backslash (how portwatch writes bytes that are not printable text) is not
/// compared: it is taken for one that is not.
pub fn is_local(mountinfo: &str, path: &str) -> bool {
    !path.contains('\\') && fs_type(mountinfo, path).is_some_and(|t| LOCAL.contains(&t))
}

/// A mount point as mountinfo writes it, its space, tab, newline and backslash octal-escaped.
fn unescape(point: &str) -> std::borrow::Cow<'_, str> {
    if !point.contains('\\') {
        return std::borrow::Cow::Borrowed(point);
    }
    let mut out = String::with_capacity(point.len());
    let mut rest = point;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The type of the file system mounted last on the longest mount point above `path`.
fn fs_type<'a>(mountinfo: &'a str, path: &str) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4).map(unescape) else {
            continue;
        };
        let point = &*point;
        let Some(kind) = line
            .split_once(" - ")
            .and_then(|(_, r)| r.split(' ').next())
        else {
            continue;
        };
        let covers = point == "/"
            || path == point
            || path.strip_prefix(point).is_some_and(|r| r.starts_with('/'));
        if covers && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), kind));
        }
    }
    best.map(|(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:25 / /tmp rw,nosuid - tmpfs tmpfs rw
41 22 0:40 / /home/u/mnt rw,nosuid,nodev - fuse.sshfs host:/ rw,user_id=1000
42 22 0:41 / /srv/nfs rw - nfs4 server:/export rw
43 30 0:42 / /tmp/f rw - fuse /dev/fuse rw
44 22 0:43 / /home/u/a\\040b rw - fuse /dev/fuse rw
";

    #[test]
    fn programs_on_servers_file_systems_are_not_local() {
        assert!(is_local(MOUNTS, "/usr/bin/python3"));
        assert!(is_local(MOUNTS, "/tmp/x"));
        assert!(is_local(MOUNTS, "/home/u/mntx/y"), "not under /home/u/mnt");
        assert!(!is_local(MOUNTS, "/home/u/mnt/httpd"));
        assert!(!is_local(MOUNTS, "/srv/nfs/bin/x"));
        assert!(!is_local(MOUNTS, "/tmp/f/x"), "the deeper mount wins");
        assert!(
            !is_local("", "/usr/bin/x"),
            "an unreadable table: nothing is read"
        );
        assert!(
            !is_local(MOUNTS, "/home/u/a b/x"),
            "a mount point with a space"
        );
        assert!(
            !is_local(MOUNTS, "/home/u/a\\x09b/x"),
            "a path with escaped bytes"
        );
    }
}
