//! A newc cpio writer for the initramfs.
use super::*;

/// A cpio archive in the "newc" format the kernel unpacks as its initramfs.
#[derive(Default)]
pub(super) struct Cpio {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len(),
            0,
            0, // dev major, minor
            0,
            0, // rdev major, minor
            name.len() + 1,
            0, // checksum
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub(super) fn dir(&mut self, name: &str) {
        if self.dirs.insert(name.to_owned()) {
            self.entry(name, 0o040_755, &[]);
        }
    }

    /// Every directory leading to `path` (absolute, on the host).
    pub(super) fn dir_for(&mut self, path: &Path) {
        let mut at = String::new();
        for part in path.iter().skip(1) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(&part.to_string_lossy());
            self.dir(&at.clone());
        }
    }

    pub(super) fn file(&mut self, name: &str, data: &[u8], mode: u32) {
        self.entry(name, 0o100_000 | mode, data);
    }

    /// The host file `from` at the guest path `at` (absolute).
    pub(super) fn host_file(&mut self, from: &Path, at: &Path, mode: u32) -> Result<()> {
        if let Some(parent) = at.parent() {
            self.dir_for(parent);
        }
        let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        let name = at.to_string_lossy();
        self.file(name.trim_start_matches('/'), &data, mode);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("bin/x", b"abc", 0o755);
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
