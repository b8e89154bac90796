//! `portwatch ls`: the current listeners, once, as a table or as JSON lines.
use std::io::{self, Write};

use crate::{
    cli::LsArgs,
    clock::Clock,
    cmd::session,
    error::{Error, Result},
    judge::{Judge, Verdicts, rules::Rules},
    model::{
        health::Health,
        listener::Listener,
        process::{Identity, ListenerOwner},
    },
    output::{
        Output,
        format::Format,
        record::{Record, SocketRecord},
        sink::Writer,
    },
    pipeline::stream::judge_listed,
    state::firewall::Firewall,
};

/// A listener and its first owner.
type Entry = (Listener, ListenerOwner);

/// The current listeners, each with its owner's context; what a missing capability hides is
/// said on stderr first, as `watch` says it.
fn current(clock: &Clock) -> Result<Vec<Entry>> {
    session::warn_missing_privileges();
    let (mut enricher, listeners) = session::survey(None, false)?;
    Ok(listeners
        .into_iter()
        .map(|l| {
            let owner = enricher.listener_owner(&l, clock);
            if let Some(t) = &owner.task {
                // Examined now, while the owner runs; kept in its process for the judge.
                enricher.identity(t.pid, &owner.process, None);
            }
            (l, owner)
        })
        .collect())
}

/// `portwatch baseline`: the current listeners as an allowlist.
pub fn baseline() -> Result<()> {
    let clock = Clock::now();
    let listeners = current(&clock)?;
    let mut out = io::stdout().lock();
    let text = crate::judge::baseline::render(&listeners, clock.stamp_now().as_str());
    out.write_all(text.as_bytes()).map_err(Error::from_output)?;
    out.flush().map_err(Error::from_output)
}

pub fn run(args: &LsArgs) -> Result<()> {
    let clock = Clock::now();
    let mut listeners = current(&clock)?;
    // Judged as `watch` judges a listener it finds at start-up (no baseline here).
    let firewall = (!args.no_reachability).then(Firewall::default);
    let mut judge = Judge::new(Rules::default(), None, firewall);
    let verdicts: Vec<Verdicts> = listeners
        .iter_mut()
        .map(|(l, owner)| {
            let identity = owner.process.identity(Identity::default);
            let v = judge_listed(&mut judge, l, owner, Some(identity));
            l.reachability.clone_from(&v.reachability);
            v
        })
        .collect();
    // SAFETY: isatty on a valid fd number.
    let terminal = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
    if args.json || !terminal || args.format != Format::Native {
        let mut out = Output::new(args.format.encoder(), Writer(io::stdout().lock()));
        for ((l, owner), v) in listeners.iter().zip(verdicts) {
            let mut r = SocketRecord::listed(l, owner, clock.stamp_now());
            r.judged(v);
            out.write(&Record::Listener(r))?;
        }
        out.flush()
    } else {
        let mut out = io::stdout().lock();
        let own_netns = std::fs::metadata("/proc/self/ns/net")
            .map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m) as u32);
        write!(out, "{}", table(&listeners, own_netns)).map_err(Error::from_output)?;
        out.flush().map_err(Error::from_output)
    }
}

/// A container id as `docker ps` shortens it.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// QUEUE (TCP: accept queue now / its size; UDP: bytes unread), EST/CW/SYN (TCP connections
/// established, in CLOSE_WAIT, half open) and DROPS (since the socket was made), "-" unknown.
fn health_cells(h: Option<&Health>) -> [String; 3] {
    let dash = || "-".to_owned();
    let Some(h) = h else {
        return [dash(), dash(), dash()];
    };
    let queue = match (h.accept_queue, h.accept_queue_max, h.receive_queue) {
        (Some(now), Some(max), _) => format!("{now}/{max}"),
        (_, _, Some(bytes)) => format!("{bytes} B"),
        _ => dash(),
    };
    let connections = h.connections.map_or_else(dash, |c| {
        format!("{}/{}/{}", c.established, c.close_wait, c.syn_recv)
    });
    [
        queue,
        connections,
        h.drops.map_or_else(dash, |d| d.to_string()),
    ]
}

const HEADER: [&str; 13] = [
    "PROTO",
    "LOCAL",
    "SCOPE",
    "REACH",
    "QUEUE",
    "EST/CW/SYN",
    "DROPS",
    "PID",
    "USER",
    "COMMAND",
    "EXE",
    "CONTAINER",
    "WHERE",
];

/// One row per listener; REACH is what the firewall does to a new connection (`reachable`,
/// `filtered`, `unknown`; the JSON records say by which rule and why); CONTAINER is the
/// container's name (else its short id); WHERE names its runtime and pod, or the systemd unit,
/// and the network namespace of a socket outside `own_netns` (portwatch's).
pub fn table(listeners: &[Entry], own_netns: u32) -> String {
    let header = HEADER;
    let rows: Vec<[String; 13]> = listeners
        .iter()
        .map(|(l, owner)| {
            let p = &owner.process;
            let task = owner.task.as_ref();
            let container = p.container.as_deref().map_or_else(
                || "-".to_owned(),
                |c| c.name.clone().unwrap_or_else(|| short_id(&c.id).to_owned()),
            );
            let mut place = match &p.container {
                Some(c) => match c.pod.as_ref().and_then(|pod| pod.name.as_ref()) {
                    Some(pod) => {
                        let ns = c.pod.as_ref().and_then(|pod| pod.namespace.as_deref());
                        format!("{} pod {}/{pod}", c.runtime, ns.unwrap_or("?"))
                    }
                    None => c.runtime.to_owned(),
                },
                None => p.unit.clone().unwrap_or_default(),
            };
            if l.socket.netns != own_netns {
                let sep = if place.is_empty() { "" } else { " " };
                place.push_str(&format!("{sep}netns {}", l.socket.netns));
            }
            let mut scope = l.scope.name().to_owned();
            if l.shared > 0 {
                scope.push_str(&format!(" +{} shared", l.shared));
            }
            let [queue, connections, drops] = health_cells(l.socket.health.as_ref());
            [
                l.socket.proto.name().to_owned(),
                // SocketAddr's Display brackets IPv6 addresses.
                l.socket.local.to_string(),
                scope,
                l.reachability
                    .as_ref()
                    .map_or("-", |r| r.status.name())
                    .to_owned(),
                queue,
                connections,
                drops,
                task.map_or_else(|| "-".into(), |t| t.pid.to_string()),
                p.user.clone().unwrap_or_else(|| "-".into()),
                task.map_or_else(|| "-".into(), |t| t.comm.text().into_owned()),
                p.exe.as_deref().unwrap_or("-").to_owned(),
                container,
                place,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{
            net::Proto,
            process::{Container, ProcessContext},
            task::{Comm, Task},
        },
        testkit,
    };

    fn entry(local: &str, shared: usize, owner: Option<(u32, &str)>, c: ProcessContext) -> Entry {
        let mut listener = testkit::listener(Proto::Tcp, local, 1, &[]);
        listener.shared = shared;
        listener.owners = owner.iter().map(|o| o.0).collect();
        let task = owner.map(|(pid, comm)| Task {
            pid,
            comm: Comm::new(comm.as_bytes()),
            ..Task::default()
        });
        (listener, testkit::listener_owner(task, c))
    }

    #[test]
    fn one_aligned_row_per_listener_naming_owner_and_workload() {
        let sshd = ProcessContext {
            user: Some("root".into()),
            exe: Some("/usr/sbin/sshd".into()),
            unit: Some("ssh.service".into()),
            ..ProcessContext::default()
        };
        let in_container = |c: Container| ProcessContext {
            user: Some("www-data".into()),
            exe: Some("/usr/sbin/nginx".into()),
            container: Some(c.into()),
            ..ProcessContext::default()
        };
        let unnamed = in_container(Container {
            runtime: "docker",
            id: "0123456789abcdef".repeat(4),
            ..Container::default()
        });
        let web = in_container(Container {
            runtime: "containerd",
            id: "fedcba9876543210".repeat(4),
            name: Some("web".into()),
            pod: Some(crate::model::process::Pod {
                name: Some("web-7d9c".into()),
                namespace: Some("shop".into()),
                uid: None,
            }),
            ..Container::default()
        });
        let mut ssh = entry("[::]:22", 1, Some((10, "sshd")), sshd);
        ssh.0.socket.health = Some(Health {
            accept_queue: Some(2),
            accept_queue_max: Some(128),
            connections: Some(crate::model::health::Connections {
                established: 5,
                close_wait: 1,
                syn_recv: 0,
            }),
            drops: Some(3),
            ..Health::default()
        });
        ssh.0.reachability = Some(crate::model::reach::Reachability {
            status: crate::model::reach::Status::Reachable,
            rule: None,
            reason: "no rule drops it".into(),
        });
        let text = table(
            &[
                ssh,
                entry("127.0.0.1:8080", 0, Some((20, "nginx")), unnamed),
                entry("0.0.0.0:80", 0, Some((30, "nginx")), web),
                entry("0.0.0.0:111", 0, None, ProcessContext::default()),
                {
                    let mut other = testkit::listener(Proto::Udp, "0.0.0.0:53", 2, &[]);
                    other.socket.netns = 7;
                    (
                        other,
                        testkit::listener_owner(None, ProcessContext::default()),
                    )
                },
            ],
            testkit::NETNS,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        let columns = |l: &str| -> Vec<String> {
            l.split("  ")
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        };
        assert_eq!(
            columns(lines[1]),
            [
                "tcp",
                "[::]:22",
                "all +1 shared",
                "reachable",
                "2/128",
                "5/1/0",
                "3",
                "10",
                "root",
                "sshd",
                "/usr/sbin/sshd",
                "-",
                "ssh.service"
            ]
        );
        assert_eq!(
            columns(lines[2]),
            [
                "tcp",
                "127.0.0.1:8080",
                "loopback",
                "-",
                "-",
                "-",
                "-",
                "20",
                "www-data",
                "nginx",
                "/usr/sbin/nginx",
                "0123456789ab",
                "docker"
            ]
        );
        assert_eq!(
            columns(lines[3])[7..],
            [
                "30",
                "www-data",
                "nginx",
                "/usr/sbin/nginx",
                "web",
                "containerd pod shop/web-7d9c"
            ]
        );
        assert_eq!(
            columns(lines[4]),
            [
                "tcp",
                "0.0.0.0:111",
                "all",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-"
            ]
        );
        assert_eq!(
            columns(lines[5]),
            [
                "udp",
                "0.0.0.0:53",
                "all",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "netns 7"
            ]
        );
        // Every column starts where its header does.
        for header in &HEADER[1..] {
            let at = lines[0].find(header).unwrap();
            assert!(
                lines[1..].iter().all(|l| l[..at].ends_with("  ")),
                "{header}:\n{text}"
            );
        }
    }
}
