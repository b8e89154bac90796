use serde_json::{Value, json};

use super::*;

/// nft 1.0.6's output for a hand-written inet table (policy drop, sets, a vmap, a jump, a
/// saddr-conditional rule) and for rules added with iptables-nft 1.8.9.
const NFT: &str = include_str!("testdata/nft-1.0.6.json");
const IPTABLES_NFT: &str = include_str!("testdata/iptables-nft-1.8.9.json");

fn rules(text: &str) -> Ruleset {
    Ruleset::new(&serde_json::from_str(text).unwrap()).unwrap()
}

fn at(r: &Ruleset, proto: Proto, local: &str) -> Reachability {
    judge(r, proto, local.parse().unwrap(), None)
}

/// A chain: family, table, name and, for a base chain, (hook, priority, policy).
type ChainSpec<'a> = (&'a str, &'a str, &'a str, Option<(&'a str, i64, &'a str)>);
/// A rule: family, table, chain, handle, statements.
type RuleSpec<'a> = (&'a str, &'a str, &'a str, u64, Value);

fn made(chains: &[ChainSpec], rules: &[RuleSpec]) -> Ruleset {
    let mut items = Vec::new();
    for (family, table, name, base) in chains {
        let mut c = json!({"family": family, "table": table, "name": name});
        if let Some((hook, prio, policy)) = base {
            c["type"] = json!("filter");
            c["hook"] = json!(hook);
            c["prio"] = json!(prio);
            c["policy"] = json!(policy);
        }
        items.push(json!({ "chain": c }));
    }
    for (family, table, chain, handle, expr) in rules {
        items.push(json!({"rule": {"family": family, "table": table, "chain": chain, "handle": handle, "expr": expr}}));
    }
    Ruleset::new(&json!({ "nftables": items })).unwrap()
}

fn dport(proto: &str, port: u16) -> Value {
    json!({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": port}})
}

#[test]
fn hand_written_inet_table() {
    let r = rules(NFT);
    let ssh = at(&r, Proto::Tcp, "0.0.0.0:22");
    assert_eq!(ssh.status, Status::Reachable, "{ssh:?}");
    assert_eq!(
        ssh.rule.as_deref(),
        Some("inet f input handle 6: tcp dport @allowed accept")
    );
    let range = at(&r, Proto::Tcp, "[::]:9050");
    assert_eq!(range.status, Status::Reachable, "{range:?}");
    assert!(
        range
            .rule
            .as_deref()
            .unwrap()
            .contains("handle 9: tcp dport { 7000, 9000-9100 } accept")
    );
    assert_eq!(at(&r, Proto::Udp, "0.0.0.0:53").status, Status::Reachable);

    let closed = at(&r, Proto::Tcp, "0.0.0.0:4444");
    assert_eq!(closed.status, Status::Filtered, "{closed:?}");
    assert_eq!(closed.rule.as_deref(), Some("inet f input: policy drop"));
    // UDP 22 is not in the TCP set.
    assert_eq!(at(&r, Proto::Udp, "0.0.0.0:22").status, Status::Filtered);
    // Loopback listeners take `iif lo accept`.
    let lo = at(&r, Proto::Tcp, "127.0.0.1:4444");
    assert_eq!(lo.status, Status::Reachable, "{lo:?}");
    assert!(
        lo.rule
            .as_deref()
            .unwrap()
            .ends_with("handle 5: iif lo accept")
    );

    let vmap_drop = at(&r, Proto::Tcp, "0.0.0.0:8081");
    assert_eq!(vmap_drop.status, Status::Filtered);
    assert!(
        vmap_drop
            .rule
            .as_deref()
            .unwrap()
            .contains("handle 12: tcp dport vmap { 8081 : drop, 8082 : accept }")
    );
    assert_eq!(at(&r, Proto::Tcp, "0.0.0.0:8082").status, Status::Reachable);

    // Accepted only from 10.0.0.0/8: the source is not known.
    let from_some = at(&r, Proto::Tcp, "0.0.0.0:8080");
    assert_eq!(from_some.status, Status::Unknown, "{from_some:?}");
    assert!(
        from_some
            .reason
            .contains("handle 7: tcp dport 8080 ip saddr 10.0.0.0/8 accept")
    );
    assert!(from_some.reason.contains("policy drop"));
    // Over IPv6 the IPv4-source rule cannot match: filtered; IPv4 unknown.
    let v6 = judge(&r, Proto::Tcp, "[::]:8080".parse().unwrap(), Some(true));
    assert_eq!(v6.status, Status::Filtered);

    // Accepted for one destination address only: known for a listener on it, not on `0.0.0.0`.
    assert_eq!(
        at(&r, Proto::Tcp, "192.168.1.1:6000").status,
        Status::Reachable
    );
    assert_eq!(
        at(&r, Proto::Udp, "192.168.1.1:6000").status,
        Status::Reachable
    );
    assert_eq!(
        at(&r, Proto::Tcp, "192.168.1.2:6000").status,
        Status::Filtered
    );
    assert_eq!(at(&r, Proto::Tcp, "0.0.0.0:6000").status, Status::Unknown);
    let reset = at(&r, Proto::Tcp, "10.1.2.3:6001");
    assert_eq!(reset.status, Status::Filtered);
    assert!(
        reset
            .rule
            .as_deref()
            .unwrap()
            .ends_with("reject with tcp reset"),
        "{reset:?}"
    );
    // `fib daddr type local`: a listener's packets are addressed to this host.
    assert_eq!(at(&r, Proto::Tcp, "0.0.0.0:5555").status, Status::Reachable);
    // Over IPv6, 8443 jumps to `sub`, which returns; then the policy drops it.
    let jumped = judge(&r, Proto::Tcp, "[::]:8443".parse().unwrap(), Some(true));
    assert_eq!(jumped.status, Status::Filtered, "{jumped:?}");
}

#[test]
fn iptables_nft_rules_and_their_saved_text() {
    let bare = rules(IPTABLES_NFT);
    let mut texts = xt::Texts::new();
    xt::parse_save(
        include_str!("testdata/iptables-nft-1.8.9.save"),
        "ip",
        &mut texts,
    );
    xt::parse_save(
        include_str!("testdata/ip6tables-nft-1.8.9.save"),
        "ip6",
        &mut texts,
    );
    let read = rules(IPTABLES_NFT).with_xt(texts);
    let both = |local: &str, proto| (at(&bare, proto, local), at(&read, proto, local));

    let (a, b) = both("0.0.0.0:22", Proto::Tcp);
    assert_eq!(
        a.rule.as_deref(),
        Some("ip filter INPUT handle 2: tcp dport 22 counter accept")
    );
    assert_eq!((a.status, b.status), (Status::Reachable, Status::Reachable));
    // Without the text, `-m conntrack` (rule 3) might accept anything: unknown. With it, a first
    // packet is NEW, so it does not; then `! --ctstate NEW` drops nothing either.
    let (a, b) = both("0.0.0.0:4444", Proto::Tcp);
    assert_eq!(a.status, Status::Unknown, "{a:?}");
    assert!(a.reason.contains("xt match conntrack"), "{a:?}");
    assert_eq!(b.status, Status::Filtered, "{b:?}");
    assert_eq!(b.rule.as_deref(), Some("ip filter INPUT: policy drop"));
    // `-m multiport --dports 80,443,8000:8100`.
    for port in [80, 8050] {
        let (a, b) = both(&format!("0.0.0.0:{port}"), Proto::Tcp);
        assert_eq!(
            (a.status, b.status),
            (Status::Unknown, Status::Reachable),
            "{port}: {b:?}"
        );
        assert!(
            b.rule.as_deref().unwrap().contains("xt match multiport"),
            "{b:?}"
        );
    }
    // `-m state --state NEW ... --dport 9000 -m comment`.
    assert_eq!(both("0.0.0.0:9000", Proto::Tcp).1.status, Status::Reachable);
    // The REJECT target.
    let (_, dns) = both("0.0.0.0:53", Proto::Udp);
    assert_eq!(dns.status, Status::Filtered, "{dns:?}");
    assert!(
        dns.rule.as_deref().unwrap().ends_with("xt target REJECT"),
        "{dns:?}"
    );
    // `-m addrtype` is not judged: still unknown.
    assert_eq!(both("0.0.0.0:7000", Proto::Tcp).1.status, Status::Unknown);
    // The ip table does not see IPv6; the ip6 one accepts 22 only.
    let v6 = judge(&read, Proto::Tcp, "[::]:4444".parse().unwrap(), Some(true));
    assert_eq!(v6.status, Status::Reachable, "{v6:?}");
    assert_eq!(v6.rule.as_deref(), Some("ip6 filter INPUT: policy accept"));
}

#[test]
fn dual_stack_listeners_take_the_more_open_family() {
    let r = made(&[("ip6", "t", "in", Some(("input", 0, "drop")))], &[]);
    let both = at(&r, Proto::Tcp, "[::]:80");
    assert_eq!(both.status, Status::Reachable, "{both:?}");
    assert!(
        both.reason
            .contains("over IPv6: filtered by `ip6 t in: policy drop`"),
        "{both:?}"
    );
    assert_eq!(
        judge(&r, Proto::Tcp, "[::]:80".parse().unwrap(), Some(true)).status,
        Status::Filtered
    );
    assert_eq!(
        at(&r, Proto::Tcp, "[::ffff:10.0.0.1]:80").status,
        Status::Reachable
    );
}

#[test]
fn base_chains_in_hook_and_priority_order() {
    let two = |first_prio: i64| {
        made(
            &[
                ("inet", "a", "early", Some(("input", first_prio, "accept"))),
                ("ip", "b", "late", Some(("input", 0, "accept"))),
                ("inet", "c", "pre", Some(("prerouting", 10, "accept"))),
            ],
            &[
                (
                    "inet",
                    "a",
                    "early",
                    1,
                    json!([dport("tcp", 80), {"accept": null}]),
                ),
                (
                    "ip",
                    "b",
                    "late",
                    2,
                    json!([dport("tcp", 80), {"drop": null}]),
                ),
                (
                    "inet",
                    "c",
                    "pre",
                    3,
                    json!([dport("tcp", 81), {"drop": null}]),
                ),
            ],
        )
    };
    // An accept in one base chain does not save it from a drop in the next.
    let r = two(-10);
    let a = at(&r, Proto::Tcp, "0.0.0.0:80");
    assert_eq!(
        (a.status, a.rule.as_deref()),
        (
            Status::Filtered,
            Some("ip b late handle 2: tcp dport 80 drop")
        )
    );
    // Drops in prerouting come first, whatever their priority.
    let pre = at(&r, Proto::Tcp, "0.0.0.0:81");
    assert_eq!(
        pre.rule.as_deref(),
        Some("inet c pre handle 3: tcp dport 81 drop")
    );
    // IPv6 does not pass the ip table.
    assert_eq!(
        judge(&r, Proto::Tcp, "[::]:80".parse().unwrap(), Some(true)).status,
        Status::Reachable
    );
}

#[test]
fn jumps_gotos_and_what_cannot_be_judged() {
    let chains = [
        ("inet", "t", "in", Some(("input", 0, "accept"))),
        ("inet", "t", "svc", None),
        ("inet", "t", "deny", None),
    ];
    let r = made(
        &chains,
        &[
            (
                "inet",
                "t",
                "in",
                1,
                json!([dport("tcp", 1), {"jump": {"target": "deny"}}]),
            ),
            (
                "inet",
                "t",
                "in",
                2,
                json!([dport("tcp", 2), {"goto": {"target": "svc"}}]),
            ),
            (
                "inet",
                "t",
                "in",
                3,
                json!([dport("tcp", 2), {"drop": null}]),
            ),
            (
                "inet",
                "t",
                "in",
                4,
                json!([dport("tcp", 3), {"queue": {"num": 1}}]),
            ),
            (
                "inet",
                "t",
                "in",
                5,
                json!([dport("tcp", 4), {"limit": {"rate": 10, "per": "second"}}, {"drop": null}]),
            ),
            (
                "inet",
                "t",
                "in",
                6,
                json!([dport("tcp", 5), {"synproxy": {}}]),
            ),
            (
                "inet",
                "t",
                "in",
                7,
                json!([
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
                {"drop": null}]),
            ),
            ("inet", "t", "svc", 8, json!([{"counter": null}])),
            ("inet", "t", "deny", 9, json!([{"reject": null}])),
        ],
    );
    let s = |port| at(&r, Proto::Tcp, &format!("0.0.0.0:{port}"));
    assert_eq!(s(1).rule.as_deref(), Some("inet t deny handle 9: reject"));
    assert_eq!(s(1).status, Status::Filtered);
    // goto: the end of `svc` returns to `in`'s caller, the policy; rule 3 is never reached.
    assert_eq!(s(2).status, Status::Reachable, "{:?}", s(2));
    assert_eq!(s(3).status, Status::Unknown, "queued to a program");
    assert_eq!(s(4).status, Status::Unknown, "over a rate limit: dropped");
    assert!(
        s(5).rule.as_deref().unwrap().contains("synproxy"),
        "an unknown statement"
    );
    // The first packet of a connection is `ct state new`.
    assert_eq!(s(7).status, Status::Reachable);
}

#[test]
fn legacy_tables_from_their_saved_text() {
    let mut texts = xt::Texts::new();
    let save = include_str!("testdata/iptables-legacy-1.8.9.save");
    let items = legacy::items(save, "ip", &mut texts);
    let r = Ruleset::new(&json!({ "nftables": items }))
        .unwrap()
        .with_xt(texts);
    let ssh = at(&r, Proto::Tcp, "0.0.0.0:22");
    assert_eq!(ssh.status, Status::Reachable, "{ssh:?}");
    assert_eq!(
        ssh.rule.as_deref(),
        Some("ip filter (legacy) svc rule 1: -A svc -p tcp -m tcp --dport 22 -j ACCEPT")
    );
    // The raw table's PREROUTING drop comes before the filter table.
    let early = at(&r, Proto::Tcp, "0.0.0.0:6666");
    assert_eq!(early.status, Status::Filtered);
    assert!(
        early
            .rule
            .as_deref()
            .unwrap()
            .starts_with("ip raw (legacy) PREROUTING rule 1")
    );
    assert_eq!(
        at(&r, Proto::Tcp, "0.0.0.0:8080").status,
        Status::Unknown,
        "-s 10.0.0.0/8"
    );
    assert_eq!(at(&r, Proto::Tcp, "10.0.0.1:9999").status, Status::Filtered);
    assert_eq!(
        at(&r, Proto::Tcp, "127.0.0.1:9999").status,
        Status::Reachable,
        "-i lo"
    );
    assert_eq!(
        at(&r, Proto::Udp, "0.0.0.0:22").status,
        Status::Filtered,
        "-p tcp"
    );
}

/// A firewalld-like table (nft 1.0.6's JSON): `ct status dnat accept` and `meta pkttype host`
/// are decided for a first packet to the listener, `fib daddr type local` too; zones are gotos.
#[test]
fn firewalld_like_zones() {
    let r = rules(include_str!("testdata/firewalld-like-nft-1.0.6.json"));
    let ssh = judge(&r, Proto::Tcp, "0.0.0.0:22".parse().unwrap(), None);
    assert_eq!(ssh.status, Status::Reachable, "{ssh:?}");
    assert!(
        ssh.rule.as_deref().unwrap().contains("fw public handle"),
        "{ssh:?}"
    );
    let other = at(&r, Proto::Tcp, "0.0.0.0:4444");
    assert_eq!(other.status, Status::Filtered, "{other:?}");
    assert!(
        other
            .rule
            .as_deref()
            .unwrap()
            .ends_with("reject with icmpx"),
        "{other:?}"
    );
    assert_eq!(at(&r, Proto::Udp, "0.0.0.0:5353").status, Status::Reachable);
    // IPv6's reverse-path check depends on the source: unknown there, reachable over IPv4.
    let dual = at(&r, Proto::Tcp, "[::]:22");
    assert_eq!(dual.status, Status::Reachable, "{dual:?}");
    assert!(dual.reason.contains("over IPv6: unknown"), "{dual:?}");
}
