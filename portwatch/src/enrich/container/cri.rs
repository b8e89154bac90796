//! containerd and cri-o: the OCI bundle's `config.json`, whose annotations the CRI plugins
//! write for Kubernetes (containerd: `io.kubernetes.cri.*`, `DefaultCRIAnnotations` in
//! containerd's `pkg/cri/annotations`; cri-o: `io.kubernetes.cri-o.*` plus the kubelet's own
//! labels `io.kubernetes.pod.*`, `io.kubernetes.container.name`). Bundles live where the
//! runtime's task lives: containerd's `/run/containerd/io.containerd.runtime.v2.task/NS/ID/`
//! (also under dockerd's own containerd and k3s), cri-o's
//! `/run/containers/storage/overlay-containers/ID/userdata/`. No CRI socket is asked: its gRPC
//! would say the same names as these files, which the runtime wrote before starting the task.
use std::collections::HashMap;

use serde::Deserialize;

use super::{HostFs, Info, describe, some, source};
use crate::model::process::Pod;

/// containerd's state directories: its own, the one dockerd starts when it finds none, k3s's.
const CONTAINERD_STATE: &[&str] = &[
    "/run/containerd",
    "/run/docker/containerd/daemon",
    "/run/k3s/containerd",
];
const TASKS: &str = "io.containerd.runtime.v2.task";
/// The namespace containerd's CRI plugin puts Kubernetes' containers in.
pub const K8S_NAMESPACE: &str = "k8s.io";
const CRIO_RUN: &str = "/run/containers/storage/overlay-containers";

#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

fn annotations(fs: &HostFs, path: &str) -> Result<HashMap<String, String>, String> {
    let bytes = fs.read(path).map_err(|e| describe(path, &e))?;
    let spec: Spec =
        serde_json::from_slice(&bytes).map_err(|e| format!("{path}: not JSON ({e})"))?;
    Ok(spec.annotations)
}

/// Whether containerd has a task `id` in namespace `ns` (its bundle directory exists).
pub fn is_task(fs: &HostFs, ns: &str, id: &str) -> bool {
    CONTAINERD_STATE
        .iter()
        .any(|state| fs.find(&format!("{state}/{TASKS}/{ns}/{id}")).is_some())
}

/// containerd's task `id`: in namespace `ns`, or (None) in `k8s.io` and then any namespace.
pub fn containerd(fs: &HostFs, ns: Option<&str>, id: &str) -> Result<Info, String> {
    let mut tried = Vec::new();
    for state in CONTAINERD_STATE {
        let namespaces: Vec<String> = match ns {
            Some(ns) => vec![ns.to_owned()],
            None => {
                let mut all = fs.list(&format!("{state}/{TASKS}"));
                all.sort_by_key(|n| n != K8S_NAMESPACE);
                all
            }
        };
        for ns in namespaces {
            let path = format!("{state}/{TASKS}/{ns}/{id}/config.json");
            match annotations(fs, &path) {
                Ok(a) => return Ok(from_containerd(&a, id)),
                Err(why) => tried.push(why),
            }
        }
    }
    if tried.is_empty() {
        tried.push(format!("no task {id} in any namespace"));
    }
    Err(format!("containerd's bundle: {}", tried.join("; ")))
}

/// A containerd bundle's annotations: the CRI plugin's, nerdctl's, or none (`ctr run`).
pub fn from_containerd(a: &HashMap<String, String>, id: &str) -> Info {
    let get = |k: &str| some(a.get(k).map(String::as_str));
    let mut info = Info {
        source: source::CONTAINERD_TASK,
        ..Info::default()
    };
    if let Some(kind) = get("io.kubernetes.cri.container-type") {
        info.source = source::CRI_ANNOTATIONS;
        info.pod = Some(Pod {
            name: get("io.kubernetes.cri.sandbox-name"),
            namespace: get("io.kubernetes.cri.sandbox-namespace"),
            uid: get("io.kubernetes.cri.sandbox-uid"),
        });
        if kind == "sandbox" {
            let why = "a pod's sandbox (pause) container: the CRI plugin names only its pod";
            info.gaps = vec![
                ("container.name", why.into()),
                ("container.image", why.into()),
            ];
        } else {
            info.name = get("io.kubernetes.cri.container-name");
            info.image = get("io.kubernetes.cri.image-name");
        }
    } else {
        // nerdctl copies its labels into the bundle; `ctr` containers have only their id,
        // which the user chose.
        info.name = get("nerdctl/name").or_else(|| Some(id.to_owned()));
        info.gaps = vec![(
            "container.image",
            "outside Kubernetes, containerd keeps a container's image only in its metadata database and gRPC API, which portwatch does not read".into(),
        )];
    }
    info
}

/// cri-o's container `id`.
pub fn crio(fs: &HostFs, id: &str) -> Result<Info, String> {
    let path = format!("{CRIO_RUN}/{id}/userdata/config.json");
    let a = annotations(fs, &path).map_err(|why| format!("cri-o's bundle: {why}"))?;
    from_crio(&a).ok_or_else(|| format!("{path} is podman's, not cri-o's"))
}

/// A cri-o bundle's annotations (None: podman's, which shares the storage).
pub fn from_crio(a: &HashMap<String, String>) -> Option<Info> {
    let get = |k: &str| some(a.get(k).map(String::as_str));
    if get("io.container.manager").as_deref() == Some("libpod") {
        return None;
    }
    let mut info = Info {
        source: source::CRI_ANNOTATIONS,
        pod: Some(Pod {
            name: get("io.kubernetes.pod.name"),
            namespace: get("io.kubernetes.pod.namespace"),
            uid: get("io.kubernetes.pod.uid"),
        }),
        ..Info::default()
    };
    if get("io.kubernetes.cri-o.ContainerType").as_deref() == Some("sandbox") {
        let why = "a pod's sandbox (infra) container: cri-o names only its pod";
        info.gaps = vec![
            ("container.name", why.into()),
            ("container.image", why.into()),
        ];
        return Some(info);
    }
    #[derive(Deserialize)]
    struct Metadata {
        name: Option<String>,
    }
    info.name = get("io.kubernetes.container.name").or_else(|| {
        let m: Metadata = serde_json::from_str(a.get("io.kubernetes.cri-o.Metadata")?).ok()?;
        some(m.name.as_deref())
    });
    info.image = get("io.kubernetes.cri-o.ImageName").or_else(|| get("io.kubernetes.cri-o.Image"));
    info.image_id = get("io.kubernetes.cri-o.ImageRef");
    Some(info)
}
