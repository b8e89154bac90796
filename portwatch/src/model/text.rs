//! Names from the kernel and /proc (command names, executables, arguments, cgroup paths) are
//! bytes, and a process chooses them: they need not be UTF-8. They are written as text that
//! keeps every byte and never lets two names look alike: UTF-8 as it is, except that a byte
//! that is not UTF-8 and a control character (a newline would break a table row or a baseline
//! line) are `\xNN` (two lowercase hex digits), and a backslash is `\\`. Baseline rules and
//! filters are compared in that form, so they can name any byte string.
use std::{borrow::Cow, ffi::OsStr, os::unix::ffi::OsStrExt};

/// `bytes` as text (borrowed when there is nothing to escape, as in almost every name).
pub fn escape(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c == '\\' || c.is_control()) => Cow::Borrowed(s),
        _ => Cow::Owned(escape_owned(bytes)),
    }
}

fn escape_owned(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                // Byte by byte: U+0085 is `\xc2\x85`, never the lone byte 0x85's `\x85`.
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A path or other OS string (a link's target, a flag's value) as text.
pub fn escape_os(s: &OsStr) -> Cow<'_, str> {
    escape(s.as_bytes())
}

/// A file of lines (/proc/PID/cgroup) as text: each line escaped, the newlines kept.
pub fn escape_lines(raw: &[u8]) -> String {
    let lines: Vec<Cow<'_, str>> = raw.split(|&b| b == b'\n').map(escape).collect();
    lines.join("\n")
}

/// The bytes `text` stands for: the inverse of `escape`. None when it has a backslash that is
/// not `\\` or `\xNN`.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', more @ ..] => {
                out.push(b'\\');
                rest = more;
            }
            [b'x', hi, lo, more @ ..] => {
                let hex = std::str::from_utf8(&[*hi, *lo]).ok()?.to_owned();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
                rest = more;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_names_are_written_as_they_are_and_others_byte_for_byte() {
        assert!(matches!(
            escape(b"nginx: worker"),
            Cow::Borrowed("nginx: worker")
        ));
        assert_eq!(escape("caf\u{e9} )( \"".as_bytes()), "caf\u{e9} )( \"");
        assert_eq!(escape(b"two\nlines\t"), "two\\x0alines\\x09");
        assert_eq!(escape(b"pw-\xff\xfeodd"), "pw-\\xff\\xfeodd");
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        // A cut UTF-8 sequence (the kernel's 15-byte comm limit) is bytes too.
        assert_eq!(escape(b"ab\xc3"), "ab\\xc3");
    }

    #[test]
    fn names_that_differ_never_look_alike() {
        // The literal text `\xff` and the byte 0xff.
        assert_ne!(escape(b"\\xff"), escape(b"\xff"));
        for name in [
            &b"pw-\xff"[..],
            b"\\xff",
            b"\\",
            b"\\\\x41",
            b"caf\xc3\xa9",
            b"\x00\x01\n",
            "\u{85}".as_bytes(),
            b"\x85",
            b"",
        ] {
            assert_eq!(unescape(&escape(name)).as_deref(), Some(name), "{name:?}");
        }
        assert_eq!(unescape("bad\\q"), None);
        assert_eq!(unescape("cut\\x4"), None);
        assert_eq!(unescape("bad\\xzz"), None);
    }
}
