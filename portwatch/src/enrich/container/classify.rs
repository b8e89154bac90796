//! From a cgroup path to the container it names, as far as the path tells: the shapes docker,
//! containerd (Kubernetes' CRI plugin, nerdctl, `ctr`), cri-o and podman (rootful and rootless)
//! create with the systemd and cgroupfs drivers, on cgroup v2 and v1. The runtime's own state
//! (the sibling modules) then names it; a path alone never does.

/// Which runtime a path points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Podman,
    CriO,
    /// containerd's CRI plugin (`cri-containerd-ID.scope`) or nerdctl (`nerdctl-ID.scope`):
    /// the namespace is not in the path.
    Containerd,
    /// `/<namespace>/<id>`, what containerd makes for a container with the cgroupfs driver
    /// (`ctr run`, nerdctl): a container only if containerd has a task of that id there.
    ContainerdNamespace(String),
    /// Under `kubepods` with the cgroupfs driver: a pod's container, runtime not named.
    Kubernetes,
}

/// A container as its cgroup path shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Found {
    pub runtime: Runtime,
    pub id: String,
    /// The pod's uid, from a `kubepods` path.
    pub pod_uid: Option<String>,
    /// Rootless: the user whose own runtime made it (`user@UID.service`).
    pub user: Option<u32>,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// containerd's identifier rule (`identifiers.Validate`): alphanumerics separated by single
/// `.`, `_` or `-`, at most 76 bytes. Namespaces and `ctr` container ids follow it.
fn is_containerd_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && s.split(['.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `<prefix><id><suffix>` → id.
fn named<'a>(component: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let id = component.strip_prefix(prefix)?.strip_suffix(suffix)?;
    is_container_id(id).then_some(id)
}

fn pod_uid(components: &[&str]) -> Option<String> {
    components.iter().find_map(|c| {
        // systemd driver: kubepods-besteffort-pod<uid with _>.slice; cgroupfs: pod<uid>
        let c = c.strip_suffix(".slice").unwrap_or(c);
        let uid = c
            .rsplit_once("-pod")
            .map(|(_, u)| u)
            .or_else(|| c.strip_prefix("pod"))?;
        (uid.len() == 36 || uid.len() == 32).then(|| uid.replace('_', "-"))
    })
}

/// The user of a rootless runtime: systemd's per-user manager, `user@UID.service`.
fn rootless_user(components: &[&str]) -> Option<u32> {
    components.iter().find_map(|c| {
        c.strip_prefix("user@")?
            .strip_suffix(".service")?
            .parse()
            .ok()
    })
}

/// The runtime and id one path component names, given the component before it.
fn component<'a>(
    c: &'a str,
    parent: Option<&str>,
    in_kubepods: bool,
) -> Option<(Runtime, &'a str)> {
    let scoped = |prefix| named(c, prefix, ".scope");
    if let Some(id) = scoped("docker-") {
        Some((Runtime::Docker, id))
    } else if let Some(id) = scoped("cri-containerd-").or_else(|| scoped("nerdctl-")) {
        Some((Runtime::Containerd, id))
    } else if let Some(id) = scoped("crio-").or_else(|| scoped("crio-conmon-")) {
        Some((Runtime::CriO, id))
    } else if let Some(id) = scoped("libpod-")
        .or_else(|| scoped("libpod-conmon-"))
        // cgroupfs driver: /libpod_parent/libpod-<id>
        .or_else(|| named(c, "libpod-", ""))
        .or_else(|| named(c, "libpod-conmon-", ""))
    {
        Some((Runtime::Podman, id))
    } else if is_container_id(c) {
        // cgroupfs driver: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>
        match parent? {
            "docker" => Some((Runtime::Docker, c)),
            _ if in_kubepods => Some((Runtime::Kubernetes, c)),
            _ => None,
        }
    } else {
        None
    }
}

/// The container a cgroup path names, if it names one.
pub fn classify(path: &str) -> Option<Found> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let in_kubepods = components.iter().any(|c| c.starts_with("kubepods"));
    // Innermost first: a container's processes can sit in sub-cgroups of its scope.
    for (i, c) in components.iter().enumerate().rev() {
        let parent = i.checked_sub(1).map(|p| components[p]);
        if let Some((runtime, id)) = component(c, parent, in_kubepods) {
            return Some(Found {
                runtime,
                id: id.to_owned(),
                pod_uid: if in_kubepods {
                    pod_uid(&components)
                } else {
                    None
                },
                user: rootless_user(&components[..i]),
            });
        }
    }
    // containerd's cgroupfs default: exactly /<namespace>/<id>.
    match components[..] {
        [ns, id]
            if !in_kubepods
                && !ns.contains('.')
                && is_containerd_identifier(ns)
                && is_containerd_identifier(id) =>
        {
            Some(Found {
                runtime: Runtime::ContainerdNamespace(ns.to_owned()),
                id: id.to_owned(),
                pod_uid: None,
                user: None,
            })
        }
        _ => None,
    }
}

/// The systemd unit (service, scope of a login session, ...) a cgroup path names.
pub fn unit(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4c1b0e8f6a4b2d9c7e5a1b2c3d4e5f60718293a4b5c6d7e8f90123456789ab";

    fn found(runtime: Runtime, pod: Option<&str>, user: Option<u32>) -> Option<Found> {
        Some(Found {
            runtime,
            id: ID.into(),
            pod_uid: pod.map(str::to_owned),
            user,
        })
    }

    #[test]
    fn docker() {
        // systemd driver (cgroup v2 and v1 name=systemd), cgroupfs driver
        let docker = found(Runtime::Docker, None, None);
        assert_eq!(
            classify(&format!("/system.slice/docker-{ID}.scope")),
            docker
        );
        assert_eq!(classify(&format!("/docker/{ID}")), docker);
        assert_eq!(classify(&format!("/docker/{ID}/init")), docker);
        // rootless docker (systemd driver, per-user manager)
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID}.scope");
        assert_eq!(
            classify(&rootless),
            found(Runtime::Docker, None, Some(1000))
        );
    }

    #[test]
    fn kubernetes_pods_in_every_qos_class() {
        let uid = "1e2f3a4b-5c6d-7e8f-9a0b-1c2d3e4f5a6b";
        let u = uid.replace('-', "_");
        for (qos, slice) in [
            (
                "besteffort",
                format!("kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice"),
            ),
            (
                "burstable",
                format!("kubepods-burstable.slice/kubepods-burstable-pod{u}.slice"),
            ),
            ("guaranteed", format!("kubepods-pod{u}.slice")),
        ] {
            let containerd = format!("/kubepods.slice/{slice}/cri-containerd-{ID}.scope");
            assert_eq!(
                classify(&containerd),
                found(Runtime::Containerd, Some(uid), None),
                "{qos}"
            );
            let crio = format!("/kubepods.slice/{slice}/crio-{ID}.scope");
            assert_eq!(
                classify(&crio),
                found(Runtime::CriO, Some(uid), None),
                "{qos}"
            );
        }
        // cgroupfs driver (v1 and v2): the runtime is not in the path
        let k8s = found(Runtime::Kubernetes, Some(uid), None);
        assert_eq!(classify(&format!("/kubepods/burstable/pod{uid}/{ID}")), k8s);
        assert_eq!(classify(&format!("/kubepods/pod{uid}/{ID}")), k8s);
    }

    #[test]
    fn podman_rootful_and_rootless_with_both_drivers() {
        let podman = found(Runtime::Podman, None, None);
        for path in [
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            // a pod's container
            format!("/machine.slice/machine-libpod_pod_{ID}.slice/libpod-{ID}.scope"),
            // cgroupfs driver (measured here: podman 4.3 on a hybrid host)
            format!("/libpod_parent/libpod-{ID}"),
            format!("/libpod_parent/libpod-conmon-{ID}"),
        ] {
            assert_eq!(classify(&path), podman, "{path}");
        }
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        assert_eq!(
            classify(&rootless),
            found(Runtime::Podman, None, Some(1000))
        );
        let nested = format!(
            "/user.slice/user-1001.slice/user@1001.service/user.slice/libpod-{ID}.scope/container"
        );
        assert_eq!(classify(&nested), found(Runtime::Podman, None, Some(1001)));
    }

    #[test]
    fn cri_o_and_containerd_outside_kubernetes() {
        assert_eq!(
            classify(&format!("/system.slice/crio-conmon-{ID}.scope")),
            found(Runtime::CriO, None, None)
        );
        assert_eq!(
            classify(&format!("/system.slice/nerdctl-{ID}.scope")),
            found(Runtime::Containerd, None, None)
        );
        // measured here: `ctr -n pwtest run IMAGE pw-ctr1` gives /pwtest/pw-ctr1
        assert_eq!(
            classify("/pwtest/pw-ctr1"),
            Some(Found {
                runtime: Runtime::ContainerdNamespace("pwtest".into()),
                id: "pw-ctr1".into(),
                pod_uid: None,
                user: None,
            })
        );
        assert_eq!(
            classify(&format!("/default/{ID}")).map(|f| f.runtime),
            Some(Runtime::ContainerdNamespace("default".into()))
        );
        // systemd slices and deeper paths are not containerd's shape
        assert_eq!(classify("/system.slice/cron.service"), None);
        assert_eq!(classify("/a/b/c"), None);
        assert_eq!(classify("/bad_/x"), None);
    }

    #[test]
    fn systemd_services_and_sessions() {
        assert_eq!(
            unit("/system.slice/nginx.service").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/session-3.scope").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.service")
                .as_deref(),
            Some("app-foo.service")
        );
        assert_eq!(classify("/"), None);
        assert_eq!(unit("/"), None);
        // Not a container id: wrong length.
        assert_eq!(classify("/docker/abc/def"), None);
        assert_eq!(
            classify(&format!("/machine.slice/libpod-{}.scope", &ID[1..])),
            None
        );
    }
}
