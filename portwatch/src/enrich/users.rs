//! uid and gid to names, from /etc/passwd and /etc/group (read again when they change).
//!
//! Files only, on purpose: NSS lookups (LDAP, sssd) can block the event loop for seconds. Ids
//! found in neither file are reported as gaps.
use std::{
    collections::HashMap,
    fs,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

struct IdFile {
    path: PathBuf,
    names: HashMap<u32, String>,
    mtime: Option<SystemTime>,
    checked: Option<Instant>,
}

const RECHECK_EVERY: Duration = Duration::from_secs(2);

impl IdFile {
    fn new(path: &str) -> Self {
        Self {
            path: PathBuf::from(path),
            names: HashMap::new(),
            mtime: None,
            checked: None,
        }
    }

    fn get(&mut self, id: u32) -> Option<&str> {
        if self.checked.is_none_or(|t| t.elapsed() >= RECHECK_EVERY) {
            self.checked = Some(Instant::now());
            let mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
            if mtime != self.mtime {
                self.mtime = mtime;
                // One name that is not UTF-8 must not cost every other name: escaped, as
                // records write names (`text::escape_lines` keeps the lines and the colons).
                self.names = fs::read(&self.path)
                    .map(|raw| parse(&crate::model::text::escape_lines(&raw)))
                    .unwrap_or_default();
            }
        }
        self.names.get(&id).map(String::as_str)
    }
}

/// `name:password:id:...` lines (passwd and group share the first three fields).
pub fn parse(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(':');
        if let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) {
            if let Ok(id) = id.parse() {
                // The first entry for an id wins, as with getpwuid.
                names.entry(id).or_insert_with(|| name.to_owned());
            }
        }
    }
    names
}

pub struct Users {
    passwd: IdFile,
    group: IdFile,
}

impl Users {
    pub fn new() -> Self {
        Self {
            passwd: IdFile::new("/etc/passwd"),
            group: IdFile::new("/etc/group"),
        }
    }

    pub fn user(&mut self, uid: u32) -> Option<&str> {
        self.passwd.get(uid)
    }

    pub fn group(&mut self, gid: u32) -> Option<&str> {
        self.group.get(gid)
    }
}

impl Default for Users {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines() {
        let names = parse(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbad line\nwww:x:33:33::/:/bin/sh\ndup:x:33:1::/:/x\n",
        );
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&33).map(String::as_str), Some("www"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn resolves_root_on_this_machine() {
        let mut users = Users::new();
        assert_eq!(users.user(0), Some("root"));
        assert_eq!(users.group(0), Some("root"));
    }
}
