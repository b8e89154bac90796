//! Each source on files laid out as the runtimes lay them out. Measured here (copied from the
//! running runtimes, `testdata/`): docker 20.10's `config.v2.json`, podman 4.3's
//! `containers.json` and bundle, containerd 1.6's bundle of a `ctr run` container. Derived from
//! the runtimes' source, as Kubernetes cannot run here: containerd's CRI annotations
//! (`DefaultCRIAnnotations`), cri-o's (`SpecAddAnnotations`, with the kubelet's labels), and
//! cri-dockerd's labels on a docker container.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::*;

const DOCKER_ID: &str = "76bd7270e52b4c97072aa8c95977b151498acfa18836174bf82a4598cbb35f1c";
const PODMAN_ID: &str = "37f56d5a489ef93de40a5e73a33b42adb65c4bd8f29e981119fe8d25dcffa19c";
const CRI_ID: &str = "5b2f6e5a0c1d4e8f9a7b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
const SANDBOX_ID: &str = "9d1e7c3b5a8f2e4d6c0b1a3f5e7d9c2b4a6f8e0d1c3b5a7f9e2d4c6b8a0f1e3d";

fn testdata(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/enrich/container/testdata")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A host's root with the given files, removed when dropped.
struct Root(PathBuf);

impl Root {
    fn new(files: &[(&str, Vec<u8>)]) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pw-containers-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        for (path, bytes) in files {
            let p = dir.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn fs(&self) -> HostFs {
        HostFs::under(&self.0)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn found(runtime: Runtime, id: &str) -> Found {
    Found {
        runtime,
        id: id.into(),
        pod_uid: None,
        user: None,
    }
}

fn gap<'a>(r: &'a Resolved, field: &str) -> Option<&'a str> {
    r.gaps
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, why)| why.as_str())
}

#[test]
fn docker_state_names_the_container_and_its_image() {
    let root = Root::new(&[(
        &format!("/var/lib/docker/containers/{DOCKER_ID}/config.v2.json"),
        testdata("docker-config.v2.json"),
    )]);
    let r = ask(&root.fs(), &found(Runtime::Docker, DOCKER_ID)).unwrap();
    assert_eq!(
        *r.container,
        Container {
            runtime: "docker",
            id: DOCKER_ID.into(),
            name: Some("pw-dprobe".into()),
            image: Some("pw-busybox:test".into()),
            image_id: Some(
                "sha256:5c185b074de0b5ba227d8ae6b4384df18518986dfbcc1548da469cccca9e2203".into()
            ),
            pod: None,
            source: Some("docker state"),
        }
    );
    assert!(r.gaps.is_empty(), "{:?}", r.gaps);
}

#[test]
fn docker_under_kubernetes_names_the_pod_from_cri_dockerds_labels() {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&testdata("docker-config.v2.json")).unwrap();
    doc["Name"] = "/k8s_api_api-5c8d_payments_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b_0".into();
    doc["Config"]["Labels"] = serde_json::json!({
        "io.kubernetes.container.name": "api",
        "io.kubernetes.docker.type": "container",
        "io.kubernetes.pod.name": "api-5c8d",
        "io.kubernetes.pod.namespace": "payments",
        "io.kubernetes.pod.uid": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    });
    let root = Root::new(&[(
        &format!("/var/lib/docker/containers/{DOCKER_ID}/config.v2.json"),
        serde_json::to_vec(&doc).unwrap(),
    )]);
    // cgroupfs driver: the path says kubernetes; docker's state answers.
    let f = Found {
        pod_uid: Some("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b".into()),
        ..found(Runtime::Kubernetes, DOCKER_ID)
    };
    let r = ask(&root.fs(), &f).unwrap();
    assert_eq!(r.container.runtime, "docker");
    assert_eq!(r.container.name.as_deref(), Some("api"));
    let pod = r.container.pod.as_ref().unwrap();
    assert_eq!(pod.name.as_deref(), Some("api-5c8d"));
    assert_eq!(pod.namespace.as_deref(), Some("payments"));
    assert_eq!(
        pod.uid.as_deref(),
        Some("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b")
    );
}

#[test]
fn podman_storage_names_rootful_and_rootless_containers() {
    let record = testdata("podman-containers.json");
    let want = |source| Container {
        runtime: "podman",
        id: PODMAN_ID.into(),
        name: Some("pw-probe".into()),
        image: Some("localhost/pw-busybox:test".into()),
        image_id: Some("6486a1068c92de0176043f72bedc5eb2d28d13e3ff79e2dfc339e27623343787".into()),
        pod: None,
        source: Some(source),
    };
    let root = Root::new(&[(
        "/var/lib/containers/storage/overlay-containers/containers.json",
        record.clone(),
    )]);
    let r = ask(&root.fs(), &found(Runtime::Podman, PODMAN_ID)).unwrap();
    assert_eq!(*r.container, want("podman state"));

    // Rootless: the user from the cgroup path, their home from /etc/passwd.
    let root = Root::new(&[
        (
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/bash\nana:x:1000:1000::/home/ana:/bin/sh\n".to_vec(),
        ),
        (
            "/home/ana/.local/share/containers/storage/overlay-containers/containers.json",
            record,
        ),
    ]);
    let rootless = Found {
        user: Some(1000),
        ..found(Runtime::Podman, PODMAN_ID)
    };
    assert_eq!(
        *ask(&root.fs(), &rootless).unwrap().container,
        want("podman state")
    );
    // A uid with no home: the gap says so.
    let stranger = Found {
        user: Some(4242),
        ..rootless
    };
    let r = ask(&root.fs(), &stranger).unwrap();
    assert!(
        gap(&r, "container.name").unwrap().contains("uid 4242"),
        "{:?}",
        r.gaps
    );
}

#[test]
fn containerd_cri_annotations_name_the_container_and_its_pod() {
    let tasks = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";
    let root = Root::new(&[
        (
            &format!("{tasks}/{CRI_ID}/config.json"),
            testdata("containerd-cri-config.json"),
        ),
        (
            &format!("{tasks}/{SANDBOX_ID}/config.json"),
            testdata("containerd-cri-sandbox-config.json"),
        ),
    ]);
    let pod = Pod {
        name: Some("web-7d9c6b5f4-x2x7q".into()),
        namespace: Some("shop".into()),
        uid: Some("8a3b1c2d-4e5f-6a7b-8c9d-0e1f2a3b4c5d".into()),
    };
    // systemd driver (the path names containerd) and cgroupfs (it names only kubernetes)
    for runtime in [Runtime::Containerd, Runtime::Kubernetes] {
        let r = ask(&root.fs(), &found(runtime, CRI_ID)).unwrap();
        assert_eq!(
            *r.container,
            Container {
                runtime: "containerd",
                id: CRI_ID.into(),
                name: Some("web".into()),
                image: Some("docker.io/library/nginx:1.27".into()),
                image_id: None,
                pod: Some(pod.clone()),
                source: Some("cri annotations"),
            }
        );
        assert!(r.gaps.is_empty(), "{:?}", r.gaps);
    }
    // The pod's sandbox names its pod only.
    let r = ask(&root.fs(), &found(Runtime::Containerd, SANDBOX_ID)).unwrap();
    assert_eq!(r.container.pod, Some(pod));
    assert_eq!(r.container.name, None);
    assert!(gap(&r, "container.name").unwrap().contains("sandbox"));
}

#[test]
fn containerd_outside_kubernetes_under_dockerds_own_containerd() {
    // measured: `ctr -n pwtest run ... pw-ctr1` with the containerd dockerd started
    let root = Root::new(&[(
        "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/pwtest/pw-ctr1/config.json",
        testdata("ctr-config.json"),
    )]);
    let f = classify::classify("/pwtest/pw-ctr1").unwrap();
    let r = ask(&root.fs(), &f).unwrap();
    assert_eq!(r.container.runtime, "containerd");
    assert_eq!(r.container.name.as_deref(), Some("pw-ctr1"));
    assert_eq!(r.container.source, Some("containerd task"));
    assert!(
        gap(&r, "container.image")
            .unwrap()
            .contains("metadata database")
    );
    // The same shape with no task is no container.
    let other = classify::classify("/process_api/77f0cf920886d61bdc1a92d7e9726954").unwrap();
    assert_eq!(ask(&root.fs(), &other), None);
}

#[test]
fn cri_o_annotations_name_the_container_and_its_pod_and_skip_podmans_bundles() {
    let run = "/run/containers/storage/overlay-containers";
    let root = Root::new(&[
        (
            &format!("{run}/{CRI_ID}/userdata/config.json"),
            testdata("crio-config.json"),
        ),
        (
            &format!("{run}/{PODMAN_ID}/userdata/config.json"),
            testdata("podman-bundle-config.json"),
        ),
    ]);
    for runtime in [Runtime::CriO, Runtime::Kubernetes] {
        let r = ask(&root.fs(), &found(runtime, CRI_ID)).unwrap();
        assert_eq!(
            *r.container,
            Container {
                runtime: "cri-o",
                id: CRI_ID.into(),
                name: Some("api".into()),
                image: Some("quay.io/example/api:2.3".into()),
                image_id: Some(
                    "quay.io/example/api@sha256:2a4c6e8f0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a"
                        .into()
                ),
                pod: Some(Pod {
                    name: Some("api-5c8d7b9f6-qk2lp".into()),
                    namespace: Some("payments".into()),
                    uid: Some("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b".into()),
                }),
                source: Some("cri annotations"),
            }
        );
    }
    let r = ask(&root.fs(), &found(Runtime::CriO, PODMAN_ID)).unwrap();
    assert!(gap(&r, "container.name").unwrap().contains("podman's"));
}

#[test]
fn a_runtime_that_cannot_be_asked_leaves_gaps_never_a_guess() {
    let root = Root::new(&[]);
    let r = ask(&root.fs(), &found(Runtime::Docker, DOCKER_ID)).unwrap();
    assert_eq!(
        *r.container,
        Container {
            runtime: "docker",
            id: DOCKER_ID.into(),
            ..Container::default()
        }
    );
    let why = gap(&r, "container.name").unwrap();
    assert!(why.contains("config.v2.json does not exist"), "{why}");
    assert!(why.contains("nothing listens on /run/docker.sock"), "{why}");
    assert_eq!(gap(&r, "container.image"), Some(why));

    // Kubernetes with no runtime's state: the pod uid from the path stays, runtime unnamed.
    let f = Found {
        pod_uid: Some("8a3b1c2d-4e5f-6a7b-8c9d-0e1f2a3b4c5d".into()),
        ..found(Runtime::Kubernetes, CRI_ID)
    };
    let r = ask(&root.fs(), &f).unwrap();
    assert_eq!(r.container.runtime, "kubernetes");
    assert_eq!(
        r.container.pod.as_ref().and_then(|p| p.uid.as_deref()),
        Some("8a3b1c2d-4e5f-6a7b-8c9d-0e1f2a3b4c5d")
    );
    assert!(
        gap(&r, "container.name")
            .unwrap()
            .starts_with("no runtime's state knows it")
    );
}

#[test]
fn bad_state_files_give_gaps() {
    let garbage: &[&[u8]] = &[b"", b"{", b"[]", b"null", b"{\"Name\":7}", &[0xff, 0xfe, 0]];
    for bytes in garbage {
        let root = Root::new(&[
            (
                &format!("/var/lib/docker/containers/{DOCKER_ID}/config.v2.json"),
                bytes.to_vec(),
            ),
            (
                "/var/lib/containers/storage/overlay-containers/containers.json",
                bytes.to_vec(),
            ),
            (
                &format!(
                    "/run/containers/storage/overlay-containers/{CRI_ID}/userdata/config.json"
                ),
                bytes.to_vec(),
            ),
        ]);
        for f in [
            found(Runtime::Docker, DOCKER_ID),
            found(Runtime::Podman, PODMAN_ID),
            found(Runtime::CriO, CRI_ID),
        ] {
            let r = ask(&root.fs(), &f).unwrap();
            assert!(gap(&r, "container.name").is_some(), "{f:?} {bytes:?}");
        }
    }
    // A FIFO where a state file should be (a rootless user's own files) is refused at once.
    let root = Root::new(&[(
        "/etc/passwd",
        b"ana:x:1000:1000::/home/ana:/bin/sh\n".to_vec(),
    )]);
    let dir = root
        .0
        .join("home/ana/.local/share/containers/storage/overlay-containers");
    fs::create_dir_all(&dir).unwrap();
    let fifo = std::ffi::CString::new(
        dir.join("containers.json")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let rootless = Found {
        user: Some(1000),
        ..found(Runtime::Podman, PODMAN_ID)
    };
    let r = ask(&root.fs(), &rootless).unwrap();
    assert!(
        gap(&r, "container.name")
            .unwrap()
            .contains("not a regular file"),
        "{:?}",
        r.gaps
    );

    // A podman record whose metadata is not JSON still names the container.
    let odd = br#"[{"id":"x","names":["n"],"image":"i","metadata":"{oops"}]"#;
    let info = podman::find(odd, "x").unwrap().unwrap();
    assert_eq!(info.name.as_deref(), Some("n"));
    assert_eq!(info.image, None);
}

#[test]
fn the_cache_asks_once_retries_gaps_and_forgets_containers_not_seen() {
    let root = Root::new(&[(
        "/var/lib/containers/storage/overlay-containers/containers.json",
        testdata("podman-containers.json"),
    )]);
    let mut cache = Containers::new(root.fs());
    let f = found(Runtime::Podman, PODMAN_ID);
    let first = cache.resolve(&f).unwrap();
    // Answered from the cache: the state is gone, the answer stays.
    fs::remove_file(
        root.0
            .join("var/lib/containers/storage/overlay-containers/containers.json"),
    )
    .unwrap();
    assert!(Arc::ptr_eq(
        &first.container,
        &cache.resolve(&f).unwrap().container
    ));
    // Bounded: one entry per container, each dropped when not seen for FORGET_AFTER.
    for i in 0..KEPT + 10 {
        cache.resolve(&found(Runtime::Podman, &format!("{i:064x}")));
    }
    assert_eq!(cache.len(), KEPT);
    cache.maintain();
    assert_eq!(cache.len(), KEPT);
    cache.maintain_at(Instant::now() + FORGET_AFTER + Duration::from_secs(1));
    assert!(cache.is_empty());
}
