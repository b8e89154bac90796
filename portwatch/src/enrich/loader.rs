//! The dynamic loader run as a program (`/lib64/ld-linux-x86-64.so.2 /usr/bin/python3 -c
//! ...`): the kernel's executable is then the loader, and the program it loads is an argument.
//! glibc's and musl's loaders read their own options first and take the first other argument
//! as the program (musl also takes `--` and `--OPTION=VALUE`; glibc refuses an option it does
//! not know, which is taken for the program's name here, harmlessly).

/// Where the host's loaders are (the catalog fingerprints them, so a copy of one under
/// another name is still a loader).
pub const PLACES: [&str; 6] = [
    "/lib64",
    "/lib",
    "/usr/lib64",
    "/usr/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// The loaders' file names on the architectures portwatch runs on.
pub const NAMES: [&str; 5] = [
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "ld-linux.so.2",
    "ld-musl-x86_64.so.1",
    "ld-musl-aarch64.so.1",
];

/// Options that take the next argument as their value.
const VALUED: [&str; 7] = [
    "--library-path",
    "--inhibit-rpath",
    "--audit",
    "--preload",
    "--argv0",
    "--glibc-hwcaps-prepend",
    "--glibc-hwcaps-mask",
];

/// Options alone.
const FLAGS: [&str; 7] = [
    "--list",
    "--verify",
    "--inhibit-cache",
    "--list-tunables",
    "--list-diagnostics",
    "--help",
    "--version",
];

/// Lines of /proc/PID/maps read at most.
const MAX_MAPS: usize = 65_536;

/// Whether the program process `pid`'s loader runs, `program` (its path as named, resolved
/// when it could be), is no file on disk: a memfd, or a file deleted (or replaced) since it
/// was mapped, as the process's executable mappings say.
pub fn deleted(pid: u32, program: &str) -> bool {
    use std::io::{BufRead, BufReader};
    if program.starts_with("/memfd:") || program.ends_with(" (deleted)") {
        return true;
    }
    let name = program.rsplit('/').next().unwrap_or(program);
    let Ok(maps) = std::fs::File::open(format!("/proc/{pid}/maps")) else {
        return false;
    };
    BufReader::new(maps)
        .lines()
        .take(MAX_MAPS)
        .map_while(Result::ok)
        .any(|line| {
            let mut fields = line.splitn(6, ' ');
            let executable = fields.nth(1).is_some_and(|perms| perms.contains('x'));
            let path = fields.nth(3).map_or("", str::trim_start);
            executable
                && path
                    .strip_suffix(" (deleted)")
                    .is_some_and(|p| p.rsplit('/').next() == Some(name))
        })
}

/// The descriptor a loader was told to run (`/proc/self/fd/3`, `/dev/fd/3`: a memfd's, say),
/// as process `pid` names it.
pub fn descriptor(pid: u32, named: &str) -> Option<String> {
    let n = [
        "/proc/self/fd/",
        "/proc/thread-self/fd/",
        "/dev/fd/",
        &format!("/proc/{pid}/fd/"),
    ]
    .iter()
    .find_map(|p| named.strip_prefix(p))?;
    n.parse::<u32>().ok().map(|n| format!("/proc/{pid}/fd/{n}"))
}

/// Whether a file named `name` is a dynamic loader.
pub fn is_loader(name: &str) -> bool {
    name.starts_with("ld-linux")
        || name.starts_with("ld-musl-")
        || name == "ld.so"
        || name.starts_with("ld64.so")
}

/// Where in `args` (the loader's argv, its own name first) the program it loads is named.
pub fn program_at(args: &[String]) -> Option<usize> {
    let mut i = 1;
    while let Some(a) = args.get(i) {
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
        if a == "--" {
            return args.get(i + 1).map(|_| i + 1);
        } else if VALUED.contains(&a.as_str()) {
            i += 2;
        } else if FLAGS.contains(&a.as_str()) || (name != a && VALUED.contains(&name)) {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_the_first_argument_past_the_loaders_options() {
        let at = |line: &str| {
            let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
            program_at(&args)
        };
        assert_eq!(at("ld.so /usr/bin/python3 -c x"), Some(1));
        assert_eq!(at("ld.so --argv0 sshd --preload x.so /tmp/p -c x"), Some(5));
        assert_eq!(at("ld.so --inhibit-cache /bin/sh"), Some(2));
        assert_eq!(at("ld.so --no-such-option /bin/sh"), Some(1));
        assert_eq!(at("ld.so --library-path"), None);
        assert_eq!(at("ld-musl-x86_64.so.1 --argv0=sshd -- /tmp/p"), Some(3));
        assert_eq!(at("ld-musl-x86_64.so.1 --preload=/x.so /tmp/p"), Some(2));
        assert!(is_loader("ld-linux-x86-64.so.2") && is_loader("ld-musl-x86_64.so.1"));
        assert!(!is_loader("ldd") && !is_loader("ld"));
    }
}
