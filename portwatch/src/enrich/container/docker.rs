//! docker: the container's `config.v2.json` under docker's data root, the file dockerd keeps
//! each container's configuration in (what `docker inspect` prints: `Name`, `Config.Image`,
//! `Image`, `Config.Labels`); where it cannot be read (another data root, no read access),
//! the Engine API on docker's socket, `GET /containers/ID/json`, which answers with the same
//! members. Kubernetes' docker shim (cri-dockerd) labels containers with their pod.
use std::collections::HashMap;

use serde::Deserialize;

use super::{API_TIMEOUT, HostFs, Info, describe, http, some, source};
use crate::model::process::Pod;

const DATA_ROOT: &str = "/var/lib/docker";
const SOCKET: &str = "/run/docker.sock";

/// The members of `config.v2.json` and of the API's inspect answer that name a container.
#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "Name")]
    name: Option<String>,
    /// The image's id (`sha256:...`).
    #[serde(rename = "Image")]
    image: Option<String>,
    #[serde(rename = "Config")]
    config: Option<Config>,
}

#[derive(Deserialize)]
struct Config {
    /// The image as given to `docker run`.
    #[serde(rename = "Image")]
    image: Option<String>,
    #[serde(rename = "Labels")]
    labels: Option<HashMap<String, String>>,
}

/// Where docker keeps its state and listens, for root's docker or a user's rootless one.
fn places(fs: &HostFs, user: Option<u32>) -> Result<(String, String), String> {
    match user {
        None => Ok((DATA_ROOT.into(), SOCKET.into())),
        Some(uid) => {
            let home = fs
                .home(uid)
                .ok_or_else(|| format!("uid {uid} (rootless docker) has no home in /etc/passwd"))?;
            Ok((
                format!("{home}/.local/share/docker"),
                format!("/run/user/{uid}/docker.sock"),
            ))
        }
    }
}

/// The state file, else the API.
pub fn ask(fs: &HostFs, id: &str, user: Option<u32>) -> Result<Info, String> {
    let state = match from_state(fs, id, user) {
        Ok(info) => return Ok(info),
        Err(why) => why,
    };
    let (_, socket) = places(fs, user)?;
    from_api(fs, &socket, id, source::DOCKER_API)
        .map_err(|api| format!("{state}, and the docker API: {api}"))
}

/// `config.v2.json` of container `id`.
pub fn from_state(fs: &HostFs, id: &str, user: Option<u32>) -> Result<Info, String> {
    let (root, _) = places(fs, user)?;
    let path = format!("{root}/containers/{id}/config.v2.json");
    let bytes = fs.read(&path).map_err(|e| describe(&path, &e))?;
    parse(&bytes, source::DOCKER_STATE).map_err(|e| format!("{path}: {e}"))
}

/// The Engine API's (or podman's docker-compatible API's) inspect answer for `id`.
pub fn from_api(fs: &HostFs, socket: &str, id: &str, source: &'static str) -> Result<Info, String> {
    let at = fs
        .find(socket)
        .ok_or_else(|| format!("nothing listens on {socket}"))?;
    let body = http::get(&at, &format!("/containers/{id}/json"), API_TIMEOUT)?;
    parse(&body, source).map_err(|e| format!("{socket}: {e}"))
}

/// An inspect document, as the state file and the API both give it.
pub fn parse(bytes: &[u8], source: &'static str) -> Result<Info, String> {
    let doc: Inspect = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    let config = doc.config.as_ref();
    let labels = config.and_then(|c| c.labels.as_ref());
    let label = |k: &str| some(labels.and_then(|l| l.get(k)).map(String::as_str));
    // Kubernetes through cri-dockerd: the name Kubernetes gave, not the generated k8s_... one.
    let pod = label("io.kubernetes.pod.name").map(|name| Pod {
        name: Some(name),
        namespace: label("io.kubernetes.pod.namespace"),
        uid: label("io.kubernetes.pod.uid"),
    });
    let name = label("io.kubernetes.container.name")
        .or_else(|| some(doc.name.as_deref().map(|n| n.trim_start_matches('/'))));
    Ok(Info {
        name,
        image: some(config.and_then(|c| c.image.as_deref())),
        image_id: some(doc.image.as_deref()),
        pod,
        source,
        gaps: Vec::new(),
    })
}
