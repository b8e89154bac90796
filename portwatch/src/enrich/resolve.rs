//! A path named in a command line (a script, the program a loader runs), resolved as its
//! process resolves it: against its working directory, in its root, symbolic links followed,
//! `..` and `//` undone. One component at a time, and nothing on a mount a server answers for
//! is touched (`mounts`): a link into a FUSE mount stops the walk before the daemon waits on it.
use std::fs;

use super::mounts;

/// Links followed at most, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// The canonical path `path` names for process `pid` (with its mountinfo), or None when it
/// does not exist, leaves the local file systems, or takes more than 40 links.
pub fn resolve(pid: u32, mountinfo: &str, path: &str) -> Option<String> {
    let mut todo: Vec<String> = Vec::new();
    push(&mut todo, path);
    if !path.starts_with('/') {
        push(&mut todo, &cwd(pid)?);
    }
    let mut done = String::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.truncate(done.rfind('/').unwrap_or(0));
                continue;
            }
            _ => {}
        }
        let next = format!("{done}/{part}");
        if !mounts::is_local(mountinfo, &next) {
            return None;
        }
        let here = format!("/proc/{pid}/root{next}");
        if !fs::symlink_metadata(&here).ok()?.is_symlink() {
            done = next;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let target = fs::read_link(&here).ok()?;
        let target = target.to_str()?;
        if target.starts_with('/') {
            done.clear();
        }
        push(&mut todo, target);
    }
    Some(if done.is_empty() {
        "/".to_owned()
    } else {
        done
    })
}

/// `path` made absolute against process `pid`'s working directory (when it can be read) with
/// `.`, `..` and `//` undone as text: what a path that cannot be resolved (gone, or somewhere
/// not to be touched) is judged by.
pub fn lexical(pid: u32, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let cwd = (!path.starts_with('/')).then(|| cwd(pid)).flatten();
    let Some(base) = cwd.as_deref().or(path.starts_with('/').then_some("")) else {
        return path.to_owned();
    };
    for part in base.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Process `pid`'s working directory as it names it: /proc shows it from this daemon's root,
/// so a container's is under the path of the container's root.
fn cwd(pid: u32) -> Option<String> {
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let root = fs::read_link(format!("/proc/{pid}/root")).ok()?;
    let inside = cwd.strip_prefix(&root).ok()?;
    Some(format!("/{}", inside.to_str()?))
}

/// `path`'s components onto the stack, its first on top.
fn push(todo: &mut Vec<String>, path: &str) {
    todo.extend(path.split('/').rev().map(str::to_owned));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_resolved_as_the_process_resolves_them() {
        let me = std::process::id();
        let mountinfo = mounts::of(me).unwrap();
        let dir = std::env::temp_dir().join(format!("pw-resolve-{me}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("real")).unwrap();
        fs::write(dir.join("real/x.py"), "").unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("abs")).unwrap();
        std::os::unix::fs::symlink("real/x.py", dir.join("rel")).unwrap();
        std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
        let real = fs::canonicalize(dir.join("real/x.py")).unwrap();
        let real = real.to_str().unwrap();
        let d = dir.to_str().unwrap();
        for named in [
            format!("{d}/abs/x.py"),
            format!("{d}/rel"),
            format!("/{d}//real/../real/./x.py"),
        ] {
            assert_eq!(
                resolve(me, &mountinfo, &named).as_deref(),
                Some(real),
                "{named}"
            );
        }
        assert_eq!(resolve(me, &mountinfo, &format!("{d}/loop")), None);
        assert_eq!(resolve(me, &mountinfo, &format!("{d}/none")), None);
        // Nothing is local in an empty mount table: nothing is touched.
        assert_eq!(resolve(me, "", &format!("{d}/rel")), None);
        assert_eq!(lexical(me, "//tmp/./a/../x.py"), "/tmp/x.py");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(lexical(me, "x.py"), cwd.join("x.py").to_str().unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}
