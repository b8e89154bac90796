//! Errno names, as records give them.

/// `EADDRINUSE` for 98, ...; numbers the platform does not name stay numeric.
pub fn errno_name(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("E{errno}"),
        e => format!("{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_errnos() {
        assert_eq!(errno_name(98), "EADDRINUSE");
        assert_eq!(errno_name(13), "EACCES");
        assert_eq!(errno_name(4000), "E4000");
    }
}
