//! What a program's executable is, by content: the host's own tools that the rules know by name
//! (shells, netcats, interpreters, busybox; the judge says which names) are fingerprinted once
//! at start-up (`Catalog`), and a program's executable, read through `/proc/PID/exe` (so a
//! deleted file and another mount namespace's file are read too), is looked up there. A copy of
//! `nc.openbsd` named `~/.cache/httpd` is still known as netcat.
//!
//! Each executable is read once per (device, inode), and once per process state
//! (`Process::identity`). The cache is bounded: it is emptied when full.
use std::{
    fs::{self, File},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustc_hash::FxHashMap;

use super::{
    fingerprint::{self, Fingerprint},
    loader, mounts,
    resolve::{self, Found},
};
use crate::{
    files::open_regular,
    model::process::{Identity, Loaded, Location, ProcessContext},
};

/// Where the host's tools are looked for.
const DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Executables remembered at most (by device and inode).
const CACHE_MAX: usize = 4096;

/// The host's tools by fingerprint: each one's real path (symlinks resolved: `nc` is
/// `/usr/bin/nc.openbsd`); and the other names each program in those directories goes by
/// (`redis-server` is a link to `redis-check-rdb`, which acts on the name it is called by).
#[derive(Default)]
pub struct Catalog {
    by_print: FxHashMap<Fingerprint, Arc<str>>,
    aliases: FxHashMap<PathBuf, Vec<Arc<str>>>,
}

impl Catalog {
    /// Fingerprints every file in the tool directories whose name `is_tool` (or whose real
    /// file's name) accepts.
    pub fn of_host(is_tool: &dyn Fn(&str) -> bool) -> Self {
        let mut catalog = Self::default();
        let mut seen = Vec::new();
        // On a merged-/usr host /bin is /usr/bin: each directory is read once.
        let mut dirs: Vec<PathBuf> = DIRS
            .iter()
            .filter_map(|d| fs::canonicalize(d).ok())
            .collect();
        dirs.dedup_by(|a, b| a == b);
        let mut read = Vec::new();
        for dir in dirs {
            if read.contains(&dir) {
                continue;
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            names.sort();
            for path in names {
                catalog.add(&path, is_tool, &mut seen);
            }
            read.push(dir);
        }
        // The dynamic loaders, which run any program named to them (`enrich::loader`).
        for dir in loader::PLACES {
            for name in loader::NAMES {
                catalog.add(&Path::new(dir).join(name), &|_| true, &mut seen);
            }
        }
        catalog
    }

    /// `path` in the catalog if `is_tool` accepts its name or its real file's, and as an
    /// alias of its real file when it is a link.
    fn add(&mut self, path: &Path, is_tool: &dyn Fn(&str) -> bool, seen: &mut Vec<PathBuf>) {
        let Ok(real) = fs::canonicalize(path) else {
            return;
        };
        let name = path.file_name().and_then(|n| n.to_str());
        if let Some(name) = name.filter(|_| real != path) {
            let names = self.aliases.entry(real.clone()).or_default();
            if !names.iter().any(|n| &**n == name) {
                names.push(Arc::from(name));
            }
        }
        let named = |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(is_tool);
        if seen.contains(&real) || !(named(path) || named(&real)) {
            return;
        }
        let print = open_regular(&real).and_then(|mut f| fingerprint::of(&mut f));
        if let (Ok(Some(print)), Some(text)) = (print, real.to_str()) {
            self.by_print
                .entry(print)
                .or_insert_with(|| Arc::from(text));
        }
        seen.push(real);
    }
}

/// The script an interpreter named `program` runs, from its arguments (the judge knows how
/// each interpreter reads them: `judge::rules::script`).
pub type ScriptOf = for<'a> fn(&str, &'a [String]) -> Option<&'a str>;

/// Executables examined so far, and the catalog they are compared with. The default examines
/// nothing (tests, and tools that judge nothing).
#[derive(Default)]
pub struct Identifier {
    catalog: Catalog,
    script_of: Option<ScriptOf>,
    /// What each executable is known as.
    by_file: FxHashMap<FileKey, Option<Arc<str>>>,
}

/// One version of one file.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identifier {
    pub fn new(catalog: Catalog, script_of: ScriptOf) -> Self {
        Self {
            catalog,
            script_of: Some(script_of),
            by_file: FxHashMap::default(),
        }
    }

    /// What process `pid`, running `p` (its executable's inode `exe_ino` at the event, when the
    /// kernel read it), has as its executable and script, and where they live (nothing known
    /// when it is gone or unreadable). Every file is reached by descriptor and never on a mount
    /// a server answers for (`resolve`).
    pub fn examine(&mut self, pid: u32, p: &ProcessContext, exe_ino: Option<u64>) -> Identity {
        let Some(script_of) = self.script_of.filter(|_| pid != 0) else {
            return Identity::default();
        };
        let mounts = mounts::of(pid).unwrap_or_default();
        let exe = p.exe.as_deref().map(|e| e.trim_end_matches(" (deleted)"));
        let mut known_as = open_exe(pid, &mounts, exe, exe_ino).and_then(|f| self.known_file(f));
        let mut exe_at = exe
            .filter(|e| e.starts_with('/') && !e.starts_with("/memfd:"))
            .map(|e| located(pid, &mounts, e));
        // The arguments as started: what the program was told to run.
        let mut args = p.exec_args.as_deref().or(p.args.as_deref());
        let name = known_as.as_deref().or(exe).map(file_name);
        let loaded = name
            .filter(|n| loader::is_loader(n))
            .zip(args)
            .and_then(|(_, a)| Some((loader::program_at(a)?, a)))
            .map(|(at, a)| {
                args = Some(&a[at..]);
                let named = &a[at];
                // A descriptor (a memfd's) is read as the process holds it.
                if let Some(fd) = loader::descriptor(pid, named) {
                    known_as = resolve::open_path(None, &fd, true)
                        .filter(|d| mounts::local_fd(&mounts, d))
                        .and_then(|d| resolve::reopen(&d))
                        .and_then(|f| self.known_file(f));
                    let held = fs::read_link(&fd)
                        .ok()
                        .and_then(|t| t.to_str().map(str::to_owned));
                    let program: Arc<str> = Arc::from(held.as_deref().unwrap_or(named));
                    let deleted = loader::deleted(pid, &program);
                    exe_at = None;
                    return Loaded {
                        program,
                        at,
                        deleted,
                    };
                }
                let found = resolve::resolve(pid, &mounts, named);
                known_as = found
                    .as_ref()
                    .and_then(Found::open)
                    .and_then(|f| self.known_file(f));
                let at_path = match found {
                    Some(f) => Location {
                        path: Arc::from(f.path),
                        world_writable: f.writable_above,
                    },
                    // Gone (deleted once loaded), or somewhere not to be touched: placed by
                    // its text.
                    None => by_text(&resolve::lexical(pid, named)),
                };
                let program = Arc::clone(&at_path.path);
                let deleted = loader::deleted(pid, &program);
                if deleted {
                    // What is at its path now is not what runs.
                    known_as = None;
                }
                exe_at = Some(at_path);
                Loaded {
                    program,
                    at,
                    deleted,
                }
            });
        let program = known_as
            .as_deref()
            .or(loaded.as_ref().map(|l| &*l.program))
            .or(exe)
            .map(file_name);
        let script = program
            .zip(args)
            .and_then(|(prog, args)| script_of(prog, args));
        let script_at = script.map(|s| located(pid, &mounts, s));
        let aliases = exe
            .and_then(|e| self.catalog.aliases.get(Path::new(e)))
            .map(|a| Arc::from(a.as_slice()))
            .unwrap_or_default();
        Identity {
            known_as,
            exe_at,
            script_at,
            aliases,
            loaded,
        }
    }

    /// The host tool whose content `file` has.
    fn known_file(&mut self, mut file: File) -> Option<Arc<str>> {
        let meta = file.metadata().ok()?;
        // Not the inode alone: a file rewritten in place, or a new file given a freed inode
        // number, is another program.
        let key = FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        };
        if let Some(known) = self.by_file.get(&key) {
            return known.clone();
        }
        let known = fingerprint::of(&mut file)
            .ok()
            .flatten()
            .and_then(|p| self.catalog.by_print.get(&p).cloned());
        if self.by_file.len() >= CACHE_MAX {
            self.by_file.clear();
        }
        self.by_file.insert(key, known.clone());
        known
    }
}

/// The executable process `pid` ran at the event (inode `ino`, when known), opened for reading:
/// its current one, or, when it has run another program since (a shell's last command is
/// exec'd in its place), the file at the event's path in its root, if that is still the same
/// file. Only on a local mount, by descriptor.
fn open_exe(pid: u32, mounts: &str, exe: Option<&str>, ino: Option<u64>) -> Option<File> {
    let same = |f: &File| f.metadata().is_ok_and(|m| ino.is_none_or(|i| m.ino() == i));
    let running = resolve::open_path(None, &format!("/proc/{pid}/exe"), true)
        .filter(|fd| mounts::local_fd(mounts, fd))
        .and_then(|fd| resolve::reopen(&fd))
        .filter(same);
    if running.is_some() {
        return running;
    }
    let path = exe?;
    ino?;
    resolve::resolve(pid, mounts, path)?.open().filter(same)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A path that could not be resolved, placed by its text alone.
fn by_text(path: &str) -> Location {
    Location {
        path: Arc::from(path),
        world_writable: false,
    }
}

/// Where `path` is, as process `pid` resolves it (its root may be a container's): its
/// canonical path and whether anyone may write in its directory or one above (so anyone could
/// have made what is below). A path that cannot be resolved is placed by its text, made
/// absolute and with `..` undone.
fn located(pid: u32, mounts: &str, path: &str) -> Location {
    match resolve::resolve(pid, mounts, path) {
        Some(f) => Location {
            path: Arc::from(f.path),
            world_writable: f.writable_above,
        },
        None => by_text(&resolve::lexical(pid, path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_of_a_catalogued_tool_is_known_by_the_tools_real_path_and_places_are_read() {
        let me = std::env::current_exe().unwrap();
        let name = me.file_name().unwrap().to_str().unwrap().to_owned();
        // The catalog of one directory, this test binary's, with this binary as its tool.
        let print = fingerprint::of(&mut File::open(&me).unwrap())
            .unwrap()
            .unwrap();
        let real: Arc<str> = Arc::from(me.to_str().unwrap());
        let mut catalog = Catalog::default();
        catalog.by_print.insert(print, Arc::clone(&real));
        let mut identifier = Identifier::new(catalog, |_, args| args.get(1).map(String::as_str));
        let me_running = ProcessContext {
            exe: Some(Arc::clone(&real)),
            args: Some(Arc::from(vec![name.clone(), "srv.py".to_owned()])),
            ..ProcessContext::default()
        };
        let mine = identifier.examine(std::process::id(), &me_running, None);
        assert_eq!(mine.known_as.as_deref(), Some(&*real), "{name}");
        let exe_at = mine.exe_at.unwrap();
        assert_eq!(exe_at.path, real);
        // A relative script is found in the working directory.
        let cwd = std::env::current_dir().unwrap();
        let script = mine.script_at.unwrap();
        assert_eq!(&*script.path, cwd.join("srv.py").to_str().unwrap());
        // Nothing else is known: pid 1 runs another program.
        let init = identifier.examine(1, &ProcessContext::default(), None);
        assert_eq!(init.known_as, None);
        assert_eq!(init.exe_at, None);
    }
}
