//! Firewall reachability on the real kernel: two private network namespaces joined by a veth
//! pair, real nft rules in the server's, real listeners in both, and real connections from the
//! other side that prove each verdict: the port a rule accepts is `reachable` (a client
//! connects), the one the policy drops is `filtered` with the policy named (a client times
//! out), the one accepted only from one source is `unknown` (it depends on the source), and a
//! namespace with no rules is `reachable`. Both `ls` and the live listen/bind records say so.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use serde_json::Value;

use crate::{
    harness::{Daemon, record_kind, require_root, run_to_exit},
    inventory::ls_json,
};

const SERVER: &str = "10.231.0.1";
const CLIENT: &str = "10.231.0.2";
const OPEN: u16 = 7001;
const CLOSED: u16 = 7002;
const FROM_CLIENT_ONLY: u16 = 7003;
const UDP_OPEN: u16 = 7004;
const LOOPBACK: u16 = 7005;

/// Two namespaces joined by a veth pair; deleted (with the veth) on drop.
struct Pair {
    server: String,
    client: String,
}

fn sh(netns: &str, script: &str) {
    let (code, out, err) =
        run_to_exit(Command::new("ip").args(["netns", "exec", netns, "sh", "-ec", script]));
    assert_eq!(code, 0, "{script}: {out}{err}");
}

impl Pair {
    /// `tag`: one letter, so that tests running at once get pairs of their own.
    fn new(tag: &str) -> Self {
        let id = std::process::id();
        let pair = Self {
            server: format!("pw-reach-{tag}s-{id}"),
            client: format!("pw-reach-{tag}c-{id}"),
        };
        for ns in [&pair.server, &pair.client] {
            let (code, _, err) = run_to_exit(Command::new("ip").args(["netns", "add", ns]));
            assert_eq!(code, 0, "ip netns add {ns}: {err}");
        }
        let n = id % 100_000;
        let (s, c) = (format!("pwr{n}{tag}s"), format!("pwr{n}{tag}c"));
        sh(
            &pair.server,
            &format!(
                "ip link set lo up
                 ip link add {s} type veth peer name {c} netns {client}
                 ip addr add {SERVER}/24 dev {s}
                 ip link set {s} up",
                client = pair.client
            ),
        );
        sh(
            &pair.client,
            &format!("ip link set lo up; ip addr add {CLIENT}/24 dev {c}; ip link set {c} up"),
        );
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The server's rules: policy drop; replies, loopback, OPEN and UDP_OPEN accepted,
/// FROM_CLIENT_ONLY only from the client's address.
fn server_rules() -> String {
    format!(
        "table inet pwtest {{
           chain input {{
             type filter hook input priority 0; policy drop;
             ct state established,related accept
             iif lo accept
             tcp dport {OPEN} accept
             udp dport {UDP_OPEN} accept
             tcp dport {FROM_CLIENT_ONLY} ip saddr {CLIENT} accept
           }}
         }}"
    )
}

/// A python3 program in `netns` listening on every port of `tcp` (0.0.0.0, and 127.0.0.1 for
/// LOOPBACK) and bound to `udp`; it prints a line once they are all open.
fn serve(netns: &str, tcp: &[u16], udp: &[u16]) -> Child {
    let program = format!(
        "import socket, sys, time
held = []
for p in {tcp:?}:
    s = socket.socket()
    s.bind(('127.0.0.1' if p == {LOOPBACK} else '0.0.0.0', p))
    s.listen(16)
    held.append(s)
for p in {udp:?}:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(('0.0.0.0', p))
    held.append(u)
print('up', flush=True)
sys.stdin.read()"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "python3", "-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up", "the listeners in {netns} did not start");
    child
}

/// Whether a TCP connection from `netns` to `addr:port` is established within a second.
fn connects(netns: &str, addr: &str, port: u16) -> bool {
    let program = format!("import socket; socket.create_connection(('{addr}', {port}), timeout=1)");
    let (code, _, _) =
        run_to_exit(Command::new("ip").args(["netns", "exec", netns, "python3", "-c", &program]));
    code == 0
}

fn reach<'a>(records: &'a [Value], kind: &str, proto: &str, port: u16, netns: u64) -> &'a Value {
    let r = records
        .iter()
        .find(|v| {
            record_kind(v) == kind
                && v["protocol"] == proto
                && v["port"] == port
                && v["netns"] == netns
        })
        .unwrap_or_else(|| panic!("no {kind} record of {proto} {port} in netns {netns}"));
    &r["reachability"]
}

fn netns_inode(name: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/run/netns/{name}"))
        .unwrap()
        .ino()
}

#[test]
fn listeners_are_judged_against_their_namespaces_nft_rules() {
    require_root();
    let pair = Pair::new("n");
    let rules = server_rules();
    sh(&pair.server, &format!("nft -f - <<'EOF'\n{rules}\nEOF"));
    let (server_ns, client_ns) = (netns_inode(&pair.server), netns_inode(&pair.client));

    let mut d = Daemon::start(&[]);
    let mut server = serve(
        &pair.server,
        &[OPEN, CLOSED, FROM_CLIENT_ONLY, LOOPBACK],
        &[UDP_OPEN],
    );
    let mut client = serve(&pair.client, &[OPEN], &[]);
    // The live records, as each listener started.
    for (kind, proto, port, netns) in [
        ("listen", "tcp", OPEN, server_ns),
        ("listen", "tcp", CLOSED, server_ns),
        ("listen", "tcp", FROM_CLIENT_ONLY, server_ns),
        ("listen", "tcp", LOOPBACK, server_ns),
        ("bind", "udp", UDP_OPEN, server_ns),
        ("listen", "tcp", OPEN, client_ns),
    ] {
        d.expect(&format!("{kind} {proto} {port}"), |v| {
            record_kind(v) == kind
                && v["port"] == port
                && v["netns"] == netns
                && v["success"] == true
        });
    }
    let ls = ls_json();
    for (source, records, kinds) in [
        ("watch", &d.seen, ["listen", "bind"]),
        ("ls", &ls, ["listener"; 2]),
    ] {
        let at = |i: usize, proto, port, netns| reach(records, kinds[i], proto, port, netns);
        let open = at(0, "tcp", OPEN, server_ns);
        assert_eq!(open["status"], "reachable", "{source}: {open}");
        let rule = open["rule"].as_str().unwrap_or_default();
        assert!(
            rule.starts_with("inet pwtest input handle ")
                && rule.ends_with(&format!(": tcp dport {OPEN} accept")),
            "{source}: {open}"
        );
        let closed = at(0, "tcp", CLOSED, server_ns);
        assert_eq!(closed["status"], "filtered", "{source}: {closed}");
        assert_eq!(
            closed["rule"], "inet pwtest input: policy drop",
            "{source}: {closed}"
        );
        let some = at(0, "tcp", FROM_CLIENT_ONLY, server_ns);
        assert_eq!(some["status"], "unknown", "{source}: {some}");
        let reason = some["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("ip saddr {CLIENT} accept")),
            "{source}: {some}"
        );
        let lo = at(0, "tcp", LOOPBACK, server_ns);
        assert_eq!(lo["status"], "reachable", "{source}: {lo}");
        assert!(
            lo["rule"].as_str().unwrap().ends_with("iif lo accept"),
            "{source}: {lo}"
        );
        let udp = at(1, "udp", UDP_OPEN, server_ns);
        assert_eq!(udp["status"], "reachable", "{source}: {udp}");
        let no_rules = at(0, "tcp", OPEN, client_ns);
        assert_eq!(no_rules["status"], "reachable", "{source}: {no_rules}");
        assert_eq!(
            no_rules["reason"], "no nftables filter chain on the input path",
            "{source}: {no_rules}"
        );
    }
    // What the kernel does agrees.
    assert!(
        connects(&pair.client, SERVER, OPEN),
        "the accepted port refused the client"
    );
    assert!(
        !connects(&pair.client, SERVER, CLOSED),
        "the dropped port let the client in"
    );
    assert!(
        connects(&pair.client, SERVER, FROM_CLIENT_ONLY),
        "the client's own address was refused"
    );
    assert!(
        connects(&pair.server, CLIENT, OPEN),
        "the namespace without rules refused"
    );
    for c in [&mut server, &mut client] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Rules made with `iptables` in a private namespace (policy DROP, `-m conntrack` replies, loopback,
/// two ports by `-m multiport`), a listener on one of the ports and one on another; `rule`: the
/// verdict's rule as portwatch names it, up to the rule's own text.
fn iptables_rules_are_judged(tag: &str, iptables: &str, rule: &str) {
    require_root();
    let pair = Pair::new(tag);
    sh(
        &pair.server,
        &format!(
            "{iptables} -P INPUT DROP
             {iptables} -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
             {iptables} -A INPUT -i lo -j ACCEPT
             {iptables} -A INPUT -p tcp -m multiport --dports 7101,7102 -j ACCEPT"
        ),
    );
    let server_ns = netns_inode(&pair.server);
    let mut d = Daemon::start(&[]);
    let mut server = serve(&pair.server, &[7101, 7103], &[]);
    for port in [7101, 7103] {
        d.expect(&format!("listen {port}"), |v| {
            record_kind(v) == "listen" && v["port"] == port && v["netns"] == server_ns
        });
    }
    let ls = ls_json();
    let table = rule.split(" INPUT ").next().unwrap();
    let mut sources = vec![("ls", &ls, "listener")];
    // A daemon with the documented capabilities only cannot read legacy tables (a raw socket):
    // it says so.
    let caps = std::env::var("PORTWATCH_TEST_CAPS").unwrap_or_default();
    if rule.contains("(legacy)") && !caps.is_empty() && !caps.contains("net_raw") {
        let r = reach(&d.seen, "listen", "tcp", 7101, server_ns);
        assert_eq!(r["status"], "unknown", "{r}");
        let why = r["reason"].as_str().unwrap_or_default();
        assert!(why.contains("needs CAP_NET_RAW"), "{r}");
    } else {
        sources.push(("watch", &d.seen, "listen"));
    }
    for (source, records, kind) in sources {
        let open = reach(records, kind, "tcp", 7101, server_ns);
        assert_eq!(open["status"], "reachable", "{source}: {open}");
        let by = open["rule"].as_str().unwrap_or_default();
        assert!(
            by.starts_with(rule) && by.contains("multiport"),
            "{source}: {open}"
        );
        let shut = reach(records, kind, "tcp", 7103, server_ns);
        assert_eq!(shut["status"], "filtered", "{source}: {shut}");
        assert_eq!(
            shut["rule"],
            format!("{table} INPUT: policy drop"),
            "{source}: {shut}"
        );
    }
    assert!(
        connects(&pair.client, SERVER, 7101),
        "the multiport rule refused the client"
    );
    assert!(
        !connects(&pair.client, SERVER, 7103),
        "the policy let the client in"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// iptables' nft backend: nft shows `-m conntrack` and `-m multiport` only as `xt` matches, and
/// portwatch reads what they test from iptables-nft-save.
#[test]
fn iptables_nft_rules_are_judged_with_their_saved_matches() {
    iptables_rules_are_judged("i", "iptables-nft", "ip filter INPUT handle ");
}

/// Legacy iptables (x_tables): the rules come from iptables-legacy-save and are walked like
/// nftables chains, each shown as saved.
#[test]
fn legacy_iptables_rules_are_judged_from_their_saved_text() {
    iptables_rules_are_judged(
        "l",
        "iptables-legacy",
        "ip filter (legacy) INPUT rule 3: -A INPUT",
    );
}
