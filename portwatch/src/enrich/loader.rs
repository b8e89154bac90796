//! The dynamic loader run as a program (`/lib64/ld-linux-x86-64.so.2 /usr/bin/python3 -c
//! ...`): the kernel's executable is then the loader, and the program it loads is an argument.
//! glibc's and musl's loaders read their own options first and take the first other argument
//! as the program (an option they do not know is that program's name: glibc's rtld stops
//! there too).

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
        if VALUED.contains(&a.as_str()) {
            i += 2;
        } else if FLAGS.contains(&a.as_str()) {
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
        assert!(is_loader("ld-linux-x86-64.so.2") && is_loader("ld-musl-x86_64.so.1"));
        assert!(!is_loader("ldd") && !is_loader("ld"));
    }
}
