//! The host every record is about, for the formats that name it (ECS `host.*`, OCSF `device`):
//! read once at start-up. A fact that cannot be read is left out, never guessed.
use std::fs;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Host {
    pub hostname: Option<String>,
    /// /etc/machine-id: stable across boots.
    pub machine_id: Option<String>,
    /// /proc/sys/kernel/random/boot_id: a new one each boot (pids are unique only within it).
    pub boot_id: Option<String>,
    /// `uname -r`.
    pub kernel: Option<String>,
    pub architecture: &'static str,
    pub os: OsRelease,
}

/// What /etc/os-release (or /usr/lib/os-release) says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// NAME, e.g. "Debian GNU/Linux".
    pub name: Option<String>,
    /// VERSION_ID, e.g. "12".
    pub version: Option<String>,
    /// ID, e.g. "debian".
    pub id: Option<String>,
    /// The first of ID_LIKE, else ID: the family ("debian" for Ubuntu too).
    pub family: Option<String>,
}

impl Host {
    pub fn read() -> Self {
        let first_line = |path: &str| {
            fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        // Through init's root first: in a container (a DaemonSet with hostPID) that is the
        // host's, not the image's; on the host it is / anyway.
        let os = [
            "/proc/1/root/etc/os-release",
            "/etc/os-release",
            "/usr/lib/os-release",
        ]
        .into_iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|text| OsRelease::parse(&text))
        .unwrap_or_default();
        Self {
            hostname: first_line("/proc/sys/kernel/hostname"),
            machine_id: first_line("/proc/1/root/etc/machine-id")
                .or_else(|| first_line("/etc/machine-id")),
            boot_id: first_line("/proc/sys/kernel/random/boot_id"),
            kernel: first_line("/proc/sys/kernel/osrelease"),
            architecture: std::env::consts::ARCH,
            os,
        }
    }
}

impl OsRelease {
    /// os-release(5): KEY=value lines, values optionally quoted.
    fn parse(text: &str) -> Self {
        let get = |key: &str| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix(key)?.strip_prefix('=')?;
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                (!value.is_empty()).then(|| value.to_owned())
            })
        };
        let id = get("ID");
        let family = get("ID_LIKE")
            .and_then(|like| like.split_whitespace().next().map(str::to_owned))
            .or_else(|| id.clone());
        Self {
            name: get("NAME"),
            version: get("VERSION_ID"),
            id,
            family,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_values_are_unquoted_and_the_family_is_id_like() {
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID='24.04'\n\
             ID=ubuntu\nID_LIKE=\"debian ubuntu-core\"\n",
        );
        assert_eq!(os.name.as_deref(), Some("Ubuntu"));
        assert_eq!(os.version.as_deref(), Some("24.04"));
        assert_eq!(os.id.as_deref(), Some("ubuntu"));
        assert_eq!(os.family.as_deref(), Some("debian"));
        let plain = OsRelease::parse("ID=debian\nVERSION_ID=12\n");
        assert_eq!(plain.family.as_deref(), Some("debian"));
        assert_eq!(plain.name, None);
    }
}
