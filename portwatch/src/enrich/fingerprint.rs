//! A file's identity by content: its ELF build-id (what the linker wrote from the code, the
//! same in every copy under any name), else a hash of the whole file. A copy is still known;
//! a file rebuilt or patched is not, which the rules on behaviour and place are for.
use std::{
    fs::File,
    hash::{DefaultHasher, Hasher},
    io::{self, Read, Seek, SeekFrom},
};

/// What a file's content is known by.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Fingerprint {
    /// The GNU build-id note's bytes.
    BuildId(Box<[u8]>),
    /// A hash of the content and its length (files without a build-id).
    Content(u64, u64),
}

/// Files hashed whole at most this big; a larger one without a build-id has no fingerprint.
/// Small, so that a stream of large new executables costs the daemon little: each is read once
/// (cached by device and inode), and tools without a build-id are small.
const HASH_MAX: u64 = 8 << 20;
/// Program headers read at most.
const PHDRS_MAX: usize = 64;

/// The fingerprint of `file` (read from its start).
pub fn of(file: &mut File) -> io::Result<Option<Fingerprint>> {
    if let Some(id) = build_id(file)? {
        return Ok(Some(Fingerprint::BuildId(id)));
    }
    let len = file.metadata()?.len();
    if len > HASH_MAX {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = DefaultHasher::new();
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.write(&buf[..n]);
    }
    Ok(Some(Fingerprint::Content(hasher.finish(), len)))
}

/// An ELF file's byte order and word size, from its identification bytes.
struct Elf {
    wide: bool,
    little: bool,
}

impl Elf {
    fn u16(&self, b: &[u8]) -> u64 {
        let a = [b[0], b[1]];
        u64::from(if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }

    fn u32(&self, b: &[u8]) -> u64 {
        let a = [b[0], b[1], b[2], b[3]];
        u64::from(if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }

    fn word(&self, b: &[u8]) -> u64 {
        if !self.wide {
            return self.u32(b);
        }
        let a: [u8; 8] = b[..8].try_into().unwrap_or_default();
        if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    }
}

/// The GNU build-id from the file's PT_NOTE segments, if it is an ELF file that has one.
fn build_id(file: &mut File) -> io::Result<Option<Box<[u8]>>> {
    let mut head = [0u8; 64];
    file.seek(SeekFrom::Start(0))?;
    if read_full(file, &mut head)? < 52 || head[..4] != *b"\x7fELF" {
        return Ok(None);
    }
    let elf = Elf {
        wide: head[4] == 2,
        little: head[5] == 1,
    };
    let (phoff, phentsize, phnum) = if elf.wide {
        (
            elf.word(&head[32..]),
            elf.u16(&head[54..]),
            elf.u16(&head[56..]),
        )
    } else {
        (
            elf.u32(&head[28..]),
            elf.u16(&head[42..]),
            elf.u16(&head[44..]),
        )
    };
    let entry = phentsize as usize;
    if entry < if elf.wide { 56 } else { 32 } || phnum as usize > PHDRS_MAX {
        return Ok(None);
    }
    let mut table = vec![0u8; entry * phnum as usize];
    file.seek(SeekFrom::Start(phoff))?;
    if read_full(file, &mut table)? < table.len() {
        return Ok(None);
    }
    for ph in table.chunks_exact(entry) {
        const PT_NOTE: u64 = 4;
        if elf.u32(ph) != PT_NOTE {
            continue;
        }
        let (offset, size) = if elf.wide {
            (elf.word(&ph[8..]), elf.word(&ph[32..]))
        } else {
            (elf.u32(&ph[4..]), elf.u32(&ph[16..]))
        };
        if size > 4096 {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset))?;
        if read_full(file, &mut notes)? < notes.len() {
            continue;
        }
        if let Some(id) = gnu_build_id(&elf, &notes) {
            return Ok(Some(id.into()));
        }
    }
    Ok(None)
}

/// The NT_GNU_BUILD_ID note's descriptor among `notes`.
fn gnu_build_id<'a>(elf: &Elf, mut notes: &'a [u8]) -> Option<&'a [u8]> {
    const NT_GNU_BUILD_ID: u64 = 3;
    let align = |n: u64| (n as usize).div_ceil(4) * 4;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (elf.u32(notes), elf.u32(&notes[4..]), elf.u32(&notes[8..]));
        let name_end = 12 + align(namesz);
        let desc_end = name_end.checked_add(align(descsz))?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && notes[12..12 + namesz as usize] == *b"GNU\0" {
            return Some(&notes[name_end..name_end + descsz as usize]);
        }
        notes = &notes[desc_end..];
    }
    None
}

/// Reads until `buf` is full or the file ends; how much it read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(path: &str) -> Option<Fingerprint> {
        of(&mut File::open(path).unwrap()).unwrap()
    }

    #[test]
    fn a_copy_has_its_originals_build_id_and_a_script_is_hashed() {
        let exe = std::env::current_exe().unwrap();
        let original = fingerprint("/proc/self/exe").unwrap();
        let dir = std::env::temp_dir().join(format!("pw-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("httpd");
        std::fs::copy(&exe, &copy).unwrap();
        let copied = fingerprint(copy.to_str().unwrap()).unwrap();
        // Rust test binaries carry a build-id on Debian's toolchain (`--build-id` by default).
        assert!(matches!(original, Fingerprint::BuildId(_)), "{original:?}");
        assert_eq!(copied, original);
        let script = dir.join("s.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let a = fingerprint(script.to_str().unwrap()).unwrap();
        std::fs::write(&script, "#!/bin/sh\necho ho\n").unwrap();
        let b = fingerprint(script.to_str().unwrap()).unwrap();
        assert!(matches!(a, Fingerprint::Content(_, 18)), "{a:?}");
        assert_ne!(a, b);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
