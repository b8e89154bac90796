//! The ECS and OCSF encoders on hand-made records: each maps a record kind to its class,
//! activity or categories, and carries the process, the endpoints and portwatch's own fields.
//! (The kernel tests check real lines against the official definitions.)
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Encoder, ecs::Ecs, ocsf::Ocsf};
use crate::{
    clock::Clock,
    host::{Host, OsRelease},
    model::{
        loss::LossCounts,
        process::{Container, Parent, Pod, Process, ProcessContext},
        task::Comm,
    },
    output::record::{Actor, LossRecord, Record, SocketRecord},
};

const CLOCK: Clock = Clock::fixed(1_767_225_600 * 1_000_000_000);

fn host() -> Host {
    Host {
        hostname: Some("web-01".into()),
        machine_id: Some("4c4c4544".into()),
        boot_id: Some("88a1f0ed".into()),
        kernel: Some("6.1.0-18-amd64".into()),
        architecture: "x86_64",
        os: OsRelease {
            name: Some("Debian GNU/Linux".into()),
            version: Some("12".into()),
            id: Some("debian".into()),
            family: Some("debian".into()),
        },
    }
}

fn line(encoder: &dyn Encoder, r: &Record) -> Value {
    let mut out = Vec::new();
    encoder.encode(9, r, &mut out);
    assert_eq!(out.pop(), Some(b'\n'));
    assert!(!out.contains(&b'\n'));
    serde_json::from_slice(&out).unwrap()
}

fn socket(container: bool) -> SocketRecord {
    let context = ProcessContext {
        ppid: Some(1),
        start_time: Some(CLOCK.timestamp(1_000_000_000)),
        user: Some("www-data".into()),
        exe: Some("/usr/bin/nc.openbsd".into()),
        args: Some(vec!["nc".to_owned(), "-l".to_owned(), "8080".to_owned()].into()),
        container: container.then(|| {
            Arc::new(Container {
                runtime: "containerd",
                id: "551e161c47d8".into(),
                name: Some("web".into()),
                image: Some("docker.io/library/nginx:1.27".into()),
                image_id: None,
                pod: Some(Pod {
                    name: Some("web-7d9c".into()),
                    namespace: Some("shop".into()),
                    uid: Some("8a3b1c2d-4e5f-6a7b-8c9d-0e1f2a3b4c5d".into()),
                }),
                source: Some("cri annotations"),
            })
        }),
        netns: Some(4_026_531_840),
        parent: Some(Parent {
            pid: 1,
            comm: Some("systemd".into()),
            ..Parent::default()
        }),
        ..ProcessContext::default()
    };
    SocketRecord {
        time: CLOCK.timestamp(5_000_000_000),
        actor: Some(Actor {
            pid: 42,
            tid: 43,
            uid: 33,
            gid: 33,
            comm: Comm::new(b"nc"),
        }),
        protocol: Some(6),
        family: Some(crate::model::net::Family::Ipv4),
        address: Some("0.0.0.0".parse().unwrap()),
        port: Some(8080),
        fd: Some(3),
        process: Process::new(context),
        ..SocketRecord::default()
    }
}

#[test]
fn ocsf_a_failed_bind_is_network_activity_other_named_bind_with_its_errno() {
    let mut r = socket(false);
    r.success = Some(false);
    r.errno = Some("EADDRINUSE".into());
    r.errno_code = Some(98);
    let v = line(&Ocsf::new(&host()), &Record::Bind(r));
    assert_eq!(v["class_uid"], 4001);
    assert_eq!(
        (&v["activity_id"], &v["activity_name"]),
        (&json!(99), &json!("Bind"))
    );
    assert_eq!(v["type_uid"], 400_199);
    assert_eq!(v["type_name"], "Network Activity: Other");
    assert_eq!(
        (&v["status_id"], &v["status_code"]),
        (&json!(2), &json!("EADDRINUSE"))
    );
    assert_eq!(v["dst_endpoint"], json!({"ip": "0.0.0.0", "port": 8080}));
    assert_eq!(v["time"], 1_767_225_605_000_i64);
    assert_eq!(v["metadata"]["sequence"], 9);
    assert_eq!(v["metadata"]["profiles"], json!(["host"]));
    assert_eq!(v["unmapped"]["portwatch"]["errno_code"], 98);
    assert_eq!(
        v["message"],
        "nc[42] failed to bind tcp 0.0.0.0:8080: EADDRINUSE"
    );
}

#[test]
fn ocsf_a_containerised_listen_names_the_container_profile_and_the_process_chain() {
    let v = line(&Ocsf::new(&host()), &Record::Listen(socket(true)));
    assert_eq!(
        (&v["activity_id"], &v["type_uid"]),
        (&json!(7), &json!(400_107))
    );
    assert_eq!(v["metadata"]["profiles"], json!(["host", "container"]));
    let p = &v["actor"]["process"];
    assert_eq!(
        p["container"],
        json!({
            "uid": "551e161c47d8",
            "name": "web",
            "runtime": "containerd",
            "orchestrator": "kubernetes",
            "pod_uuid": "8a3b1c2d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
        })
    );
    // No image id from containerd's CRI annotations, so no `image` object (its uid is
    // required): the name waits in unmapped, with the pod's name and namespace.
    let unmapped = &v["unmapped"]["portwatch"];
    assert_eq!(unmapped["container_image"], "docker.io/library/nginx:1.27");
    assert_eq!(
        (&unmapped["pod_name"], &unmapped["pod_namespace"]),
        (&json!("web-7d9c"), &json!("shop"))
    );
    assert_eq!(unmapped["container_source"], "cri annotations");
    assert_eq!(
        (&p["pid"], &p["tid"], &p["name"]),
        (&json!(42), &json!(43), &json!("nc"))
    );
    assert_eq!(p["cmd_line"], "nc -l 8080");
    assert_eq!(p["file"]["name"], "nc.openbsd");
    assert_eq!(p["created_time"], 1_767_225_601_000_i64);
    assert_eq!(p["uid"], "88a1f0ed:42:1767225601000");
    assert_eq!(p["user"], json!({"uid": "33", "name": "www-data"}));
    assert_eq!(p["parent_process"], json!({"pid": 1, "name": "systemd"}));
    assert_eq!(v["device"]["os"]["kernel_release"], "6.1.0-18-amd64");
    assert_eq!(v["unmapped"]["portwatch"]["netns"], 4_026_531_840_u32);
}

#[test]
fn ecs_and_ocsf_name_the_container_its_image_and_its_pod() {
    let v = line(&Ecs::new(&host()), &Record::Listen(socket(true)));
    assert_eq!(
        v["container"],
        json!({
            "id": "551e161c47d8",
            "name": "web",
            "image": {"name": "docker.io/library/nginx:1.27"},
            "runtime": "containerd"
        })
    );
    assert_eq!(
        v["orchestrator"],
        json!({
            "type": "kubernetes",
            "namespace": "shop",
            "resource": {
                "type": "pod",
                "name": "web-7d9c",
                "id": "8a3b1c2d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
            }
        })
    );
    assert_eq!(v["portwatch"]["container_source"], "cri annotations");

    // With the image's id (docker, podman, cri-o), OCSF has its `image` object.
    let docker = || {
        let mut r = socket(false);
        r.process = Process::new(ProcessContext {
            container: Some(Arc::new(Container {
                runtime: "docker",
                id: "76bd7270e52b".into(),
                name: Some("api".into()),
                image: Some("api:2".into()),
                image_id: Some("sha256:5c185b07".into()),
                source: Some("docker state"),
                ..Container::default()
            })),
            ..ProcessContext::default()
        });
        Record::Listen(r)
    };
    let v = line(&Ocsf::new(&host()), &docker());
    assert_eq!(
        v["actor"]["process"]["container"],
        json!({
            "uid": "76bd7270e52b",
            "name": "api",
            "runtime": "docker",
            "image": {"uid": "sha256:5c185b07", "name": "api:2"}
        })
    );
    let v = line(&Ecs::new(&host()), &docker());
    assert_eq!(v["portwatch"]["container_image_id"], "sha256:5c185b07");
    assert_eq!(v["orchestrator"], json!(null));
}

#[test]
fn ecs_an_accept_has_both_ends_in_both_roles() {
    let mut r = socket(false);
    r.address = Some("10.0.0.5".parse().unwrap());
    r.remote_address = Some("203.0.113.7".parse().unwrap());
    r.remote_port = Some(51544);
    let v = line(&Ecs::new(&host()), &Record::Accept(r));
    assert_eq!(v["event"]["type"], json!(["connection", "start"]));
    assert_eq!(v["event"]["action"], "connection_accepted");
    assert_eq!(v["event"]["sequence"], 9);
    let peer = json!({"ip": "203.0.113.7", "port": 51544, "address": "203.0.113.7"});
    assert_eq!((&v["source"], &v["client"]), (&peer, &peer));
    assert_eq!(v["destination"]["port"], 8080);
    assert_eq!(v["server"]["ip"], "10.0.0.5");
    assert_eq!(v["related"]["ip"], json!(["10.0.0.5", "203.0.113.7"]));
    assert_eq!(v["process"]["args_count"], 3);
    assert_eq!(v["process"]["parent"]["pid"], 1);
    assert_eq!(v["user"], json!({"id": "33", "name": "www-data"}));
    assert_eq!(v["network"]["iana_number"], "6");
    assert_eq!(v["host"]["os"]["family"], "debian");
    assert_eq!(v["portwatch"]["record"], "accept");
    assert_eq!(v["@timestamp"], "2026-01-01T00:00:05.000000000Z");
}

#[test]
fn a_baseline_alert_raises_the_kind_and_the_severity() {
    let mut r = socket(false);
    r.alert = Some("port 8080 is not in the baseline".into());
    let record = Record::Listen(r);
    let e = line(&Ecs::new(&host()), &record);
    assert_eq!(e["event"]["kind"], "alert");
    assert_eq!(e["event"]["reason"], "port 8080 is not in the baseline");
    let o = line(&Ocsf::new(&host()), &record);
    assert_eq!(
        (&o["severity_id"], &o["severity"]),
        (&json!(3), &json!("Medium"))
    );
}

#[test]
fn loss_is_a_metric_in_ecs_and_event_log_activity_in_ocsf() {
    let counts = LossCounts {
        lost_total: 18,
        ..LossCounts::default()
    };
    let record = Record::Loss(LossRecord {
        time: CLOCK.timestamp(0),
        counts,
        sinks: None,
    });
    let e = line(&Ecs::new(&host()), &record);
    assert_eq!(e["event"]["kind"], "metric");
    assert_eq!(e["portwatch"]["lost_total"], 18);
    let o = line(&Ocsf::new(&host()), &record);
    assert_eq!(
        (&o["class_uid"], &o["activity_id"]),
        (&json!(1008), &json!(99))
    );
    assert_eq!(o["activity_name"], "Events Lost");
    assert_eq!(o["type_uid"], 100_899);
    assert_eq!(o["unmapped"]["portwatch"]["lost_total"], 18);
    assert_eq!(o["unmapped"]["portwatch"]["record"], "loss");
}
