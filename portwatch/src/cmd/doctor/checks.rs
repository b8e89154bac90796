//! What `doctor` expects to see for each canary the child made, as record predicates.
use serde_json::Value;

/// Whether the canary's records show a path.
pub type Finder = Box<dyn Fn(&[Value]) -> bool>;

/// One path portwatch must see: what was done, the hook that should see it, and the record.
pub struct Check {
    pub path: &'static str,
    pub hook: &'static str,
    /// Err: the canary could not make it (the kernel has no such path), and why.
    pub made: std::result::Result<Finder, String>,
}

/// The value of `key=` on the canary line starting with `name`; Err with the reason when the
/// canary could not make that socket (`NAME unavailable=REASON`).
fn field<'a>(lines: &'a [String], name: &str, key: &str) -> std::result::Result<&'a str, String> {
    let line = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some(name))
        .ok_or_else(|| format!("the canary made no {name} socket"))?;
    if let Some((_, why)) = line.split_once(" unavailable=") {
        return Err(why.replace('_', " "));
    }
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("the canary's {name} line has no {key}"))
}

fn any(f: impl Fn(&Value) -> bool + 'static) -> Finder {
    Box::new(move |records: &[Value]| records.iter().any(&f))
}

/// A port (or other number) from the canary's lines.
fn port(lines: &[String], name: &str, key: &str) -> std::result::Result<u64, String> {
    field(lines, name, key).and_then(|p| p.parse::<u64>().map_err(|e| e.to_string()))
}

/// A record of `kind` on `port`.
fn event(kind: &'static str, port: u64) -> impl Fn(&Value) -> bool + Copy {
    move |v: &Value| v["event"] == kind && v["port"] == port
}

pub fn checks(lines: &[String], snapshot: &[(u64, u64)]) -> Vec<Check> {
    let mut out = tcp_checks(lines);
    out.push(Check {
        path: "UDP close by a running process",
        hook: "udp_close",
        made: port(lines, "udp", "port")
            .map(|p| any(move |v| event("close", p)(v) && v["protocol"] == "udp")),
    });
    out.extend(uring_checks(lines));
    out.extend(netns_checks(lines, snapshot));
    out
}

/// bind, listen (once), a failed bind, close and accept on the canary's TCP port.
fn tcp_checks(lines: &[String]) -> Vec<Check> {
    let tcp = port(lines, "tcp", "port");
    let client = port(lines, "tcp", "client");
    let tcp_checks = tcp.clone().map(|p| {
        let via_syscall = move |v: &Value| v.get("via").is_none();
        vec![
            (
                "bind(2)",
                "bind",
                any(move |v| event("bind", p)(v) && v["success"] == true && via_syscall(v)),
            ),
            (
                "listen(2)",
                "listen",
                any(move |v| event("listen", p)(v) && v["success"] == true && via_syscall(v)),
            ),
            (
                "a second listen(2): no new listener",
                "listen",
                Box::new(move |r: &[Value]| r.iter().filter(|v| event("listen", p)(v)).count() == 1)
                    as Finder,
            ),
            (
                "failed bind(2) (EADDRINUSE)",
                "bind",
                any(move |v| event("bind", p)(v) && v["errno"] == "EADDRINUSE"),
            ),
            (
                "TCP listener close",
                "close",
                any(move |v| event("close", p)(v) && v["protocol"] == "tcp"),
            ),
        ]
    });
    let mut out = Vec::new();
    match tcp_checks {
        Ok(list) => out.extend(list.into_iter().map(|(path, hook, f)| Check {
            path,
            hook,
            made: Ok(f),
        })),
        Err(e) => out.push(Check {
            path: "bind(2), listen(2), accept(2)",
            hook: "bind",
            made: Err(e),
        }),
    }
    out.push(Check {
        path: "accept(2)",
        hook: "accept",
        made: tcp.and_then(|p| {
            client.map(|c| any(move |v| event("accept", p)(v) && v["remote_port"] == c))
        }),
    });
    out
}

/// io_uring's requests: its own hook on tracepoint kernels, the kernel functions elsewhere.
fn uring_checks(lines: &[String]) -> Vec<Check> {
    let uring = port(lines, "uring", "port");
    let full = field(lines, "uring", "bind_and_listen").map(|v| v == "true");
    let via_uring =
        |kind: &'static str, p: u64| any(move |v| event(kind, p)(v) && v["via"] == "io_uring");
    let uring_op = |kind: &'static str| {
        uring.clone().and_then(|p| match &full {
            Ok(true) => Ok(via_uring(kind, p)),
            Ok(false) => {
                Err("this kernel has no IORING_OP_BIND or IORING_OP_LISTEN (Linux < 6.11)".into())
            }
            Err(e) => Err(e.clone()),
        })
    };
    vec![
        Check {
            path: "io_uring bind",
            hook: "io_uring",
            made: uring_op("bind"),
        },
        Check {
            path: "io_uring listen",
            hook: "io_uring",
            made: uring_op("listen"),
        },
        Check {
            path: "io_uring accept",
            hook: "io_uring",
            made: uring.clone().map(|p| via_uring("accept", p)),
        },
    ]
}

/// A listen in a new network namespace, seen live and found by the inventory.
fn netns_checks(lines: &[String], snapshot: &[(u64, u64)]) -> Vec<Check> {
    let netns = port(lines, "netns", "port");
    let netns_inode = port(lines, "netns", "netns");
    let listed = netns
        .clone()
        .and_then(|p| netns_inode.clone().map(|ns| (p, ns)))
        .map(|held| snapshot.contains(&held));
    vec![
        Check {
            path: "listen(2) in a new network namespace",
            hook: "listen",
            made: netns.and_then(|p| {
                netns_inode.map(|ns| any(move |v| event("listen", p)(v) && v["netns"] == ns))
            }),
        },
        Check {
            path: "its listener in the snapshot and ls",
            hook: "inventory",
            made: listed.map(|found| Box::new(move |_: &[Value]| found) as Finder),
        },
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lines() -> Vec<String> {
        [
            "tcp port=4000 client=5000",
            "eaddrinuse port=4000 failed=true",
            "udp port=4001",
            "uring unavailable=Operation_not_permitted",
            "netns port=4002 netns=77",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn found(checks: &[Check], path: &str, records: &[Value]) -> std::result::Result<bool, String> {
        let c = checks.iter().find(|c| c.path == path).expect(path);
        c.made.as_ref().map(|f| f(records)).map_err(Clone::clone)
    }

    /// A path counts as seen only through its own record; a canary the kernel could not make
    /// is "not tested" with the reason, never passed.
    #[test]
    fn each_path_is_found_by_its_record_only() {
        let checks = checks(&lines(), &[(4002, 77)]);
        let bind = json!({"event": "bind", "port": 4000, "success": true});
        let uring_bind = json!({"event": "bind", "port": 4000, "success": true, "via": "io_uring"});
        assert_eq!(
            found(&checks, "bind(2)", std::slice::from_ref(&bind)),
            Ok(true)
        );
        assert_eq!(
            found(&checks, "bind(2)", &[uring_bind]),
            Ok(false),
            "not via a syscall"
        );
        assert_eq!(found(&checks, "listen(2)", &[bind]), Ok(false));
        let listen = json!({"event": "listen", "port": 4000, "success": true});
        let twice = [listen.clone(), listen.clone()];
        assert_eq!(
            found(&checks, "a second listen(2): no new listener", &twice),
            Ok(false)
        );
        assert_eq!(
            found(&checks, "a second listen(2): no new listener", &[listen]),
            Ok(true)
        );
        let udp_close = json!({"event": "close", "port": 4001, "protocol": "udp"});
        assert_eq!(
            found(&checks, "UDP close by a running process", &[udp_close]),
            Ok(true)
        );
        assert_eq!(
            found(&checks, "io_uring accept", &[]),
            Err("Operation not permitted".into())
        );
        let in_netns = json!({"event": "listen", "port": 4002, "netns": 78});
        assert_eq!(
            found(&checks, "listen(2) in a new network namespace", &[in_netns]),
            Ok(false)
        );
        assert_eq!(
            found(&checks, "its listener in the snapshot and ls", &[]),
            Ok(true)
        );
        let none = checks_without_snapshot();
        assert_eq!(
            found(&none, "its listener in the snapshot and ls", &[]),
            Ok(false)
        );
    }

    fn checks_without_snapshot() -> Vec<Check> {
        checks(&lines(), &[(4002, 76)])
    }
}
