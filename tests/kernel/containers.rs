//! Containers named by their runtime, with real runtimes started here (`harness::runtimes`):
//! podman with runc, docker, and containerd's own `ctr`, each running busybox's `nc` as a
//! listener. The live record and `portwatch ls` must both name the container as the runtime's
//! own `inspect` does, and agree on the listener's owner, executable and container.
use std::{
    net::{TcpListener, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    formats,
    harness::{
        BIN, Daemon, UnprivilegedCopy, require_root, run_to_exit,
        runtimes::{Cli, Container, Ctr},
    },
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A container name of this test run's own.
fn name(what: &str) -> String {
    format!("portwatch-test-{}-{what}", std::process::id())
}

fn nc(port: u16) -> [String; 4] {
    ["nc", "-l", "-p", &port.to_string()].map(str::to_owned)
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// The `container` object a record must carry for `c`, from the runtime's own `inspect`.
fn expected(c: &Container) -> Value {
    let i = c.inspect();
    match c.cli {
        Cli::Podman => json!({
            "runtime": "podman",
            "id": i["Id"],
            "name": i["Name"],
            "image": i["ImageName"],
            "image_id": i["Image"],
            "source": "podman state",
        }),
        Cli::Docker => json!({
            "runtime": "docker",
            "id": i["Id"],
            "name": i["Name"].as_str().unwrap().trim_start_matches('/'),
            "image": i["Config"]["Image"],
            "image_id": i["Image"],
            "source": "docker state",
        }),
    }
}

/// The live listen of container `id` on `port` (`other_than`: not by this pid).
fn listen_of(d: &mut Daemon, id: &str, port: u16, other_than: Option<&Value>) -> Value {
    d.expect(&format!("a listen on {port} in container {id}"), |v| {
        v["event"] == "listen"
            && v["port"] == port
            && v["container"]["id"] == id
            && other_than.is_none_or(|pid| v["pid"] != *pid)
    })
}

/// The lines of `portwatch ls` (run by `cmd`) that `pred` picks, waiting (bounded) for one.
fn ls_lines(cmd: &mut Command, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, out, err) = run_to_exit(cmd);
        assert_eq!(code, 0, "{cmd:?}: {err}");
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .filter(|v| pred(v))
            .collect();
        if !lines.is_empty() || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ls(format: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["ls", "--no-reachability", "--format", format, "--json"]);
    c
}

/// `ls --json` says of the listener what its live record said: owner, exe, container.
fn assert_ls_agrees(live: &Value) {
    let found = ls_lines(&mut ls("native"), |v| v["inode"] == live["inode"]);
    let l = found
        .first()
        .unwrap_or_else(|| panic!("ls lists no listener like {live}"));
    assert_eq!(l["pid"], live["pid"], "{l}\n{live}");
    assert_eq!(l["container"], live["container"], "{l}\n{live}");
    assert_eq!(l["gaps"], live["gaps"], "{l}\n{live}");
    assert_eq!(l["cgroup"], live["cgroup"], "{l}\n{live}");
    // The file really running, in the container's own paths: the kernel's walk for the live
    // record, /proc/PID/exe for ls (an applet exec'd as /bin/nc or /proc/self/exe is busybox).
    assert_eq!(l["exe"], live["exe"], "{l}\n{live}");
    assert_eq!(l["exe_deleted"], live["exe_deleted"], "{l}\n{live}");
}

/// A listener in a container (own network namespace): its live record and `ls` name the
/// runtime, id, name and image as `inspect` does; ECS and OCSF carry them and pass the official
/// definitions; restarted, the new process's listen names the same container.
fn a_containers_listener_is_named_live_in_ls_and_after_a_restart(cli: Cli) {
    require_root();
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let c = cli.run(&name("listen"), &["--network", "none"], &strs(&nc(port)));
    let live = listen_of(&mut d, &c.id, port, None);
    assert_eq!(live["container"], expected(&c), "{live}");
    assert_eq!(live["pid"], c.pid(), "{live}");
    assert_eq!(live["comm"], "nc");
    assert_eq!(live["exe"], "/bin/busybox", "the applet's file: {live}");
    assert_eq!(live["gaps"]["container.name"], Value::Null, "{live}");
    assert_ls_agrees(&live);

    let want = &live["container"];
    let ecs = ls_lines(&mut ls("ecs"), |v| v["container"]["id"] == c.id);
    assert_eq!(ecs.len(), 1, "{ecs:?}");
    assert_eq!(ecs[0]["container"]["name"], want["name"]);
    assert_eq!(ecs[0]["container"]["image"]["name"], want["image"]);
    assert_eq!(ecs[0]["container"]["runtime"], want["runtime"]);
    formats::check("ecs", &ecs);
    let ocsf = ls_lines(&mut ls("ocsf"), |v| {
        v["actor"]["process"]["container"]["uid"] == c.id
    });
    assert_eq!(ocsf.len(), 1, "{ocsf:?}");
    let oc = &ocsf[0]["actor"]["process"]["container"];
    assert_eq!(oc["name"], want["name"]);
    assert_eq!(
        oc["image"],
        json!({"uid": want["image_id"], "name": want["image"]})
    );
    formats::check("ocsf", &ocsf);

    c.restart();
    let again = listen_of(&mut d, &c.id, port, Some(&live["pid"]));
    assert_eq!(again["container"], live["container"], "{again}");
    assert_eq!(again["pid"], c.pid(), "{again}");
    assert_ls_agrees(&again);
}

#[test]
fn podman_containers_listener_is_named_live_in_ls_and_after_a_restart() {
    a_containers_listener_is_named_live_in_ls_and_after_a_restart(Cli::Podman);
}

#[test]
fn docker_containers_listener_is_named_live_in_ls_and_after_a_restart() {
    a_containers_listener_is_named_live_in_ls_and_after_a_restart(Cli::Docker);
}

/// A host-network container's listener, reached from the host: the listen and the accept
/// name the container, in the host's network namespace.
fn a_host_network_containers_listener_accepts_from_the_host(cli: Cli) {
    require_root();
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let c = cli.run(&name("host"), &["--network", "host"], &strs(&nc(port)));
    let live = listen_of(&mut d, &c.id, port, None);
    assert_eq!(live["container"], expected(&c), "{live}");
    let own_netns =
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata("/proc/self/ns/net").unwrap());
    assert_eq!(live["netns"], own_netns, "{live}");
    assert_ls_agrees(&live);

    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let accept = d.expect("the container's accept of our connection", |v| {
        v["event"] == "accept" && v["remote_port"] == client_port && v["container"]["id"] == c.id
    });
    assert_eq!(accept["container"], live["container"], "{accept}");
    assert_eq!(accept["pid"], live["pid"], "{accept}");
    assert_eq!(accept["listener_inode"], live["inode"], "{accept}");
}

#[test]
fn podman_host_network_containers_listener_accepts_from_the_host() {
    a_host_network_containers_listener_accepts_from_the_host(Cli::Podman);
}

#[test]
fn docker_host_network_containers_listener_accepts_from_the_host() {
    a_host_network_containers_listener_accepts_from_the_host(Cli::Docker);
}

/// Where docker's state file cannot be read, its API names the container: `ls` as uid 65534
/// in the docker group (its socket's), without capabilities. Without the group either, the
/// gaps say why, and nothing is guessed. The container runs as 65534 too, so that user can
/// read its descriptors.
#[test]
fn docker_api_names_a_container_whose_state_file_is_unreadable() {
    require_root();
    let port = free_port();
    let c = Cli::Docker.run(
        &name("api"),
        &[
            "--network",
            "host",
            "--user",
            "65534:65534",
            "--cap-drop",
            "ALL",
        ],
        &strs(&nc(port)),
    );
    let want = expected(&c);
    let mine = |v: &Value| v["port"] == port && v["container"]["id"] == c.id;
    let as_root = ls_lines(&mut ls("native"), mine);
    assert_eq!(as_root.first().map(|v| &v["container"]), Some(&want));

    let copy = UnprivilegedCopy::new("docker-api");
    let nobody = |groups: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", groups])
            .arg(&copy.path)
            .args(["ls", "--json", "--no-reachability"]);
        cmd
    };
    // A dockerd busy starting the other tests' containers may let a request run out its
    // 250 ms: that is a gap saying so, and the next `ls` asks again (bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    let api = loop {
        let found = ls_lines(&mut nobody("--groups=docker"), mine);
        let api = found
            .first()
            .unwrap_or_else(|| panic!("no listener on {port} as nobody"))
            .clone();
        let late = api["gaps"]["container.name"]
            .as_str()
            .is_some_and(|why| why.contains("did not answer within"));
        if !late || Instant::now() > deadline {
            break api;
        }
    };
    let mut via_api = want.clone();
    via_api["source"] = "docker api".into();
    assert_eq!(api["container"], via_api, "{api}");
    assert_eq!(api["gaps"], Value::Null, "{api}");

    let none = ls_lines(&mut nobody("--clear-groups"), mine);
    let none = none
        .first()
        .unwrap_or_else(|| panic!("no listener on {port} as nobody"));
    assert_eq!(
        none["container"],
        json!({"runtime": "docker", "id": c.id}),
        "{none}"
    );
    let why = none["gaps"]["container.name"].as_str().unwrap_or_default();
    assert!(
        why.contains("config.v2.json is unreadable (permission denied")
            && why.contains("/run/docker.sock refused portwatch (permission denied"),
        "{none}"
    );
    assert_eq!(none["gaps"]["container.image"], why);
}

/// A container of containerd's own (`ctr run`, namespace `portwatch-test`): its cgroup is
/// `/<namespace>/<id>`, and containerd's task names it by the id its user chose; its image is
/// a gap (containerd keeps it only in its database).
#[test]
fn a_ctr_container_in_its_own_containerd_namespace_is_named_by_its_id() {
    require_root();
    let ctr = Ctr::new();
    let mut d = Daemon::start(&[]);
    let port = free_port();
    let id = name("ctr");
    let _c = ctr.run(&id, &strs(&nc(port)));
    let live = listen_of(&mut d, &id, port, None);
    assert_eq!(
        live["container"],
        json!({"runtime": "containerd", "id": id, "name": id, "source": "containerd task"}),
        "{live}"
    );
    assert_eq!(
        live["cgroup"],
        format!("/{}/{id}", crate::harness::runtimes::CTR_NAMESPACE)
    );
    let why = live["gaps"]["container.image"].as_str().unwrap_or_default();
    assert!(why.contains("metadata database"), "{live}");
    assert_ls_agrees(&live);
}
