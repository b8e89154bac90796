//! Writing JSON object members straight into a line buffer, for the records written once per
//! event: serde's generic path (every key escaped, one call and a string per field) cost more
//! than the rest of the daemon's work per event. Rarer records and nested values go through
//! serde; string escaping is serde_json's everywhere.
use std::{io::Write as _, net::IpAddr};

use serde::Serialize;

/// Appends `,"key":value` members to a JSON object being written in `out` (after its first
/// member, so every member starts with a comma).
pub struct Members<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Members<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    /// `key` is a field name: ASCII without quotes or backslashes, so it is written as is.
    fn key(&mut self, key: &'static str) {
        debug_assert!(!needs_escape(key.as_bytes()), "{key}");
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    /// A string portwatch makes itself (a time, a protocol or errno name): nothing in it needs
    /// escaping, so it is not scanned.
    pub fn plain(&mut self, key: &'static str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        debug_assert!(
            value.is_ascii() && !needs_escape(value),
            "{}",
            value.escape_ascii()
        );
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value);
        self.out.push(b'"');
    }

    pub fn int(&mut self, key: &'static str, value: impl itoa::Integer) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    pub fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub fn ip(&mut self, key: &'static str, ip: IpAddr) {
        self.key(key);
        self.out.push(b'"');
        write_ip(self.out, ip);
        self.out.push(b'"');
    }

    /// A nested value, through serde.
    pub fn value(&mut self, key: &'static str, value: &impl Serialize) {
        self.key(key);
        serialize(self.out, value);
    }

    /// The members of `value` (a struct) as members of this object, like `#[serde(flatten)]`.
    pub fn flatten(&mut self, value: &impl Serialize) {
        let start = self.out.len();
        serialize(self.out, value);
        match self.out[start..] {
            [b'{', b'}'] => self.out.truncate(start),
            [b'{', ..] => {
                self.out[start] = b',';
                self.out.pop(); // its closing brace
            }
            _ => debug_assert!(false, "flatten takes structs"),
        }
    }

    /// A nested object, `,"key":{...}`, whose members `members` writes.
    pub fn object(&mut self, key: &'static str, members: impl FnOnce(&mut Members)) {
        self.key(key);
        object(self.out, members);
    }

    /// A nested array of strings.
    pub fn strs<'s>(&mut self, key: &'static str, items: impl IntoIterator<Item = &'s str>) {
        self.key(key);
        self.out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            string(self.out, item);
        }
        self.out.push(b']');
    }

    /// Members written by `Members` elsewhere (each with its leading comma), as they are.
    pub fn append(&mut self, members: &str) {
        self.out.extend_from_slice(members.as_bytes());
    }

    /// Preformatted members (`"a":1,"b":2`, no braces), or nothing when empty.
    pub fn raw(&mut self, members: &str) {
        if !members.is_empty() {
            self.out.push(b',');
            self.out.extend_from_slice(members.as_bytes());
        }
    }
}

/// Writes a JSON object whose members `members` writes (the first one's comma dropped).
pub fn object(out: &mut Vec<u8>, members: impl FnOnce(&mut Members)) {
    out.push(b'{');
    let start = out.len();
    members(&mut Members::new(out));
    if out.get(start) == Some(&b',') {
        out.remove(start);
    }
    out.push(b'}');
}

/// `members` as they would be written in an object: each with its leading comma.
pub fn members(write: impl FnOnce(&mut Members)) -> Box<str> {
    let mut out = Vec::new();
    write(&mut Members::new(&mut out));
    String::from_utf8(out).map_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into(), Into::into)
}

/// Writes `s` as a JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        serialize(out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// What serde_json escapes: control characters, quotes and backslashes.
fn needs_escape(s: &[u8]) -> bool {
    s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

fn serialize(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    // Into a Vec, with string keys: the values records hold cannot fail to serialise.
    let _ = serde_json::to_writer(out, value);
}

/// An address as text. IPv4 by hand, as records carry one or two and `fmt` costs more than
/// the rest of the record; IPv6 through `Display`, which knows its compression rules.
pub fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}"); // into a Vec: cannot fail
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn object(write: impl FnOnce(&mut Members)) -> Value {
        let mut out = b"{\"first\":0".to_vec();
        write(&mut Members::new(&mut out));
        out.push(b'}');
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", out.escape_ascii()))
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for s in [
            "plain",
            "",
            "a\"b",
            "back\\slash",
            "new\nline",
            "\u{1}",
            "ünï",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn members_make_one_valid_object() {
        #[derive(Serialize)]
        struct Inner {
            x: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            y: Option<u8>,
        }
        #[derive(Serialize)]
        struct Empty {
            #[serde(skip_serializing_if = "Option::is_none")]
            z: Option<u8>,
        }
        let v = object(|m| {
            m.str("s", "q\"uote");
            m.plain("p", "tcp");
            m.int("n", -3i32);
            m.int("big", u64::MAX);
            m.bool("t", true);
            m.ip("v4", "10.0.200.7".parse().unwrap());
            m.ip("v6", "::ffff:127.0.0.1".parse().unwrap());
            m.value("list", &[1, 2]);
            m.flatten(&Inner { x: 1, y: None });
            m.flatten(&Empty { z: None });
            m.raw("\"pre\":\"formatted\"");
            m.raw("");
        });
        assert_eq!(
            v,
            json!({
                "first": 0, "s": "q\"uote", "p": "tcp", "n": -3, "big": u64::MAX, "t": true,
                "v4": "10.0.200.7", "v6": "::ffff:127.0.0.1", "list": [1, 2], "x": 1,
                "pre": "formatted"
            })
        );
    }

    #[test]
    fn writes_addresses_like_display() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "127.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "fe80::1:2",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().as_bytes());
        }
    }
}
