//! The programs started with a socket as standard streams, while they live: a reverse shell
//! starts many programs on its socket (its rc files' too), and only the first is the alarm.
use rustc_hash::FxHashMap;

use crate::model::verdict::Severity;

struct Session {
    /// The first live program started on the socket.
    pid: u32,
    /// The worst finding raised in the session so far.
    worst: Option<Severity>,
}

/// Sessions by socket inode, each gone when its first program exits.
#[derive(Default)]
pub struct StdioSessions {
    by_inode: FxHashMap<u64, Session>,
    /// Each session's inode by its first program's pid, to forget it on exit.
    by_pid: FxHashMap<u32, u64>,
}

impl StdioSessions {
    /// `pid` started on socket `inode`: the pid of the session it joins, or None when it opens
    /// one.
    pub fn started(&mut self, inode: u64, pid: u32) -> Option<u32> {
        if let Some(s) = self.by_inode.get(&inode) {
            return Some(s.pid);
        }
        self.by_inode.insert(inode, Session { pid, worst: None });
        if let Some(old) = self.by_pid.insert(pid, inode) {
            self.by_inode.remove(&old);
        }
        None
    }

    /// Whether a finding of `severity` in `inode`'s session is news: worse than any before.
    pub fn raises(&mut self, inode: u64, severity: Option<Severity>) -> bool {
        let Some(s) = self.by_inode.get_mut(&inode) else {
            return true;
        };
        if severity > s.worst {
            s.worst = severity;
            true
        } else {
            false
        }
    }

    pub fn exited(&mut self, pid: u32) {
        if let Some(inode) = self.by_pid.remove(&pid) {
            self.by_inode.remove(&inode);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_inode.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_raises_once_per_severity_and_ends_with_its_first_program() {
        let mut s = StdioSessions::default();
        assert_eq!(s.started(7, 100), None);
        assert!(s.raises(7, Some(Severity::Medium)));
        // A child on the same socket joins; the same finding is not news, a worse one is.
        assert_eq!(s.started(7, 101), Some(100));
        assert!(!s.raises(7, Some(Severity::Medium)));
        assert!(s.raises(7, Some(Severity::Critical)));
        assert!(!s.raises(7, Some(Severity::High)));
        // Another socket is another session; a child's exit ends nothing.
        assert_eq!(s.started(8, 102), None);
        s.exited(101);
        assert_eq!(s.len(), 2);
        s.exited(100);
        assert_eq!(s.len(), 1);
        assert_eq!(s.started(7, 103), None);
        s.exited(102);
        s.exited(103);
        assert_eq!(s.len(), 0);
    }
}
