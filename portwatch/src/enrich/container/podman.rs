//! podman: its storage library's record of the container, `<driver>-containers/containers.json`
//! under the storage root (`/var/lib/containers/storage`; a rootless user's
//! `~/.local/share/containers/storage`), which holds every container's id, names, image id and
//! the metadata libpod writes (`image-name`, `name`). The OCI bundle's annotations name neither
//! (measured: podman 4.3 writes only `io.container.manager` and a few flags there) and libpod's
//! own database is a bolt or sqlite file. Where the storage record cannot be read, podman's
//! docker-compatible API, when `podman system service` listens.
use serde::Deserialize;

use super::{HostFs, Info, describe, docker, some, source};

const ROOTFUL_STORAGE: &str = "/var/lib/containers/storage";
const ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";
/// The storage drivers podman uses, in the order a default set-up picks them.
const DRIVERS: &[&str] = &["overlay", "vfs", "btrfs", "zfs"];

#[derive(Deserialize)]
struct Stored {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    /// The image's id.
    #[serde(default)]
    image: String,
    /// libpod's metadata, itself JSON.
    #[serde(default)]
    metadata: String,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(rename = "image-name")]
    image_name: Option<String>,
    name: Option<String>,
}

/// The storage root (and driver, when set) of `/etc/containers/storage.conf`: its `graphroot`
/// and `driver` keys, for root's podman.
fn configured(fs: &HostFs) -> (Option<String>, Option<String>) {
    let Ok(text) = fs.read("/etc/containers/storage.conf") else {
        return (None, None);
    };
    let text = String::from_utf8_lossy(&text);
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key)
                .then(|| v.trim().trim_matches('"').to_owned())
                .filter(|v| v.starts_with('/') || key == "driver")
                .filter(|v| !v.is_empty())
        })
    };
    (value("graphroot"), value("driver"))
}

/// Where podman keeps its storage and listens, for root's podman or a user's rootless one.
fn places(fs: &HostFs, user: Option<u32>) -> Result<(String, Vec<String>, String), String> {
    match user {
        None => {
            let (root, driver) = configured(fs);
            let mut drivers: Vec<String> = driver.into_iter().collect();
            drivers.extend(DRIVERS.iter().map(|d| (*d).to_owned()));
            Ok((
                root.unwrap_or_else(|| ROOTFUL_STORAGE.into()),
                drivers,
                ROOTFUL_SOCKET.into(),
            ))
        }
        Some(uid) => {
            let home = fs
                .home(uid)
                .ok_or_else(|| format!("uid {uid} (rootless podman) has no home in /etc/passwd"))?;
            Ok((
                format!("{home}/.local/share/containers/storage"),
                DRIVERS.iter().map(|d| (*d).to_owned()).collect(),
                format!("/run/user/{uid}/podman/podman.sock"),
            ))
        }
    }
}

/// The storage record, else the API.
pub fn ask(fs: &HostFs, id: &str, user: Option<u32>) -> Result<Info, String> {
    let (root, drivers, socket) = places(fs, user)?;
    let state = match from_state(fs, &root, &drivers, id) {
        Ok(info) => return Ok(info),
        Err(why) => why,
    };
    docker::from_api(fs, &socket, id, source::PODMAN_API)
        .map_err(|api| format!("{state}, and podman's API: {api}"))
}

fn from_state(fs: &HostFs, root: &str, drivers: &[String], id: &str) -> Result<Info, String> {
    let mut why = Vec::new();
    for driver in drivers {
        let path = format!("{root}/{driver}-containers/containers.json");
        match fs.read(&path) {
            Ok(bytes) => match find(&bytes, id) {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => why.push(format!("{path} has no container {id}")),
                Err(e) => why.push(format!("{path}: {e}")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => why.push(describe(&path, &e)),
        }
    }
    if why.is_empty() {
        why.push(format!("no containers.json under {root}"));
    }
    Err(why.join("; "))
}

/// Container `id` in a `containers.json`.
pub fn find(bytes: &[u8], id: &str) -> Result<Option<Info>, String> {
    let stored: Vec<Stored> =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    let Some(c) = stored.into_iter().find(|c| c.id == id) else {
        return Ok(None);
    };
    // Metadata that does not parse only costs what it would have said.
    let meta: Metadata = serde_json::from_str(&c.metadata).unwrap_or_default();
    Ok(Some(Info {
        // `podman rename` renames the storage record (its `names`), not the metadata.
        name: some(c.names.first().map(String::as_str)).or_else(|| some(meta.name.as_deref())),
        image: some(meta.image_name.as_deref()),
        image_id: some(Some(c.image.as_str())),
        pod: None,
        source: source::PODMAN_STATE,
        gaps: Vec::new(),
    }))
}
