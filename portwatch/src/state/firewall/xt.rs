//! What iptables-nft's `xt` matches test, which `nft -j` does not show: read from
//! `iptables-nft-save` (and ip6tables-nft-save), whose rules come in the kernel's order, so the
//! N-th `-A CHAIN` line of a table is the N-th rule nft lists in that chain. Only the matches
//! that decide a first packet are judged (`conntrack`/`state`, `multiport`, `comment`); any
//! other module stays unknown.
use std::collections::HashMap;

use super::expr::{Probe, Tri};

/// (family, table, chain) → each rule's words after `-A CHAIN`.
pub type Texts = HashMap<(String, String, String), Vec<Vec<String>>>;

/// Adds the rules of one `iptables-save` output, for tables of `family` (`ip` or `ip6`).
pub fn parse_save(text: &str, family: &str, out: &mut Texts) {
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_owned();
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let mut words = split(rule);
            if words.is_empty() {
                continue;
            }
            let chain = words.remove(0);
            out.entry((family.to_owned(), table.clone(), chain))
                .or_default()
                .push(words);
        }
    }
}

/// Words as iptables-save quotes them: `"a b"` is one, `\"` a quote inside.
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                word.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Whether the rule's matches hold for the probe: its match modules (`-m NAME --option VALUE
/// ...`), and the basic options (`-p`, `--dport`, `-s`, `-d`, `-i`) that a legacy rule has
/// only as text (for an iptables-nft rule nft shows them too: judging them again changes
/// nothing).
pub fn matches(words: &[String], p: &Probe) -> Tri {
    let mut cond = Tri::Yes;
    let mut module = "";
    let mut negate = false;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let value = words.get(i + 1).map(String::as_str).unwrap_or_default();
        match w {
            "!" => {
                negate = true;
                i += 1;
                continue;
            }
            "-m" | "--match" => {
                module = value;
                // Modules whose options are all judged below, or that match everything.
                if !matches!(
                    module,
                    "conntrack" | "state" | "multiport" | "comment" | "tcp" | "udp"
                ) {
                    cond = cond.and(Tri::Maybe);
                }
                i += 2;
                continue;
            }
            "-j" | "-g" | "--jump" | "--goto" => break,
            _ => {}
        }
        let judged = match (module, w) {
            (_, "-p" | "--protocol") => Some(protocol(value, p)),
            (_, "--dport" | "--destination-port") => Some(in_ports(value, p.dport)),
            (_, "--sport" | "--source-port" | "-s" | "--source") => Some(Tri::Maybe),
            (_, "-d" | "--destination") => Some(destination(value, p)),
            (_, "-i" | "--in-interface") => Some(interface(value, p)),
            ("conntrack", "--ctstate") | ("state", "--state") => {
                Some(Tri::of(value.split(',').any(|s| s == "NEW")))
            }
            ("multiport", "--dports" | "--destination-ports") => Some(in_ports(value, p.dport)),
            // Either end: true if the destination is in, else it depends on the source port.
            ("multiport", "--ports") => Some(match in_ports(value, p.dport) {
                Tri::Yes => Tri::Yes,
                _ => Tri::Maybe,
            }),
            ("comment", "--comment") => Some(Tri::Yes),
            _ => None,
        };
        // Options without a value: a first TCP packet is a SYN, and never a fragment.
        let flag = match w {
            "--syn" => Some(Tri::of(p.proto == crate::model::net::Proto::Tcp)),
            "-f" | "--fragment" => Some(Tri::No),
            _ => None,
        };
        let (t, words_used) = match (judged, flag) {
            (Some(t), _) => (t, 2),
            (None, Some(t)) => (t, 1),
            // Any other option is not judged: unknown, with its value if it has one.
            (None, None) if w.starts_with('-') => {
                let has_value = !value.is_empty() && !value.starts_with('-') && value != "!";
                (Tri::Maybe, if has_value { 2 } else { 1 })
            }
            (None, None) => (Tri::Yes, 1),
        };
        cond = cond.and(if negate { t.not() } else { t });
        i += words_used;
        negate = false;
    }
    cond
}

fn protocol(name: &str, p: &Probe) -> Tri {
    match name {
        "all" | "0" => Tri::Yes,
        n => Tri::of(n == p.proto.name() || n.parse::<u16>() == Ok(p.proto.number())),
    }
}

/// `-d ADDR[/LEN]` against the listener's address (unknown for one on every address).
fn destination(value: &str, p: &Probe) -> Tri {
    let (addr, len) = value.split_once('/').unwrap_or((value, ""));
    let Ok(net) = addr.parse::<std::net::IpAddr>() else {
        return Tri::Maybe;
    };
    let len = len.parse().unwrap_or(if net.is_ipv4() { 32 } else { 128 });
    match p.daddr {
        Some(a) => Tri::of(super::expr::in_prefix(a, net, len)),
        None if len == 0 => Tri::Yes,
        None => Tri::Maybe,
    }
}

/// `-i NAME` (`+` ends a prefix): `lo` for a loopback listener's packets, else some other one.
fn interface(name: &str, p: &Probe) -> Tri {
    let is_lo = match name.strip_suffix('+') {
        Some(prefix) => "lo".starts_with(prefix),
        None => name == "lo",
    };
    match (p.loopback, is_lo) {
        (true, lo) => Tri::of(lo || name == "+"),
        (false, _) if name == "+" => Tri::Yes,
        (false, true) if name == "lo" => Tri::No,
        _ => Tri::Maybe,
    }
}

/// Whether `port` is in a multiport list (`80,443,8000:8100`).
fn in_ports(list: &str, port: u16) -> Tri {
    let hit = list.split(',').any(|item| match item.split_once(':') {
        Some((lo, hi)) => {
            let lo = lo.parse().unwrap_or(0);
            let hi = hi.parse().unwrap_or(u16::MAX);
            (lo..=hi).contains(&port)
        }
        None => item.parse() == Ok(port),
    });
    Tri::of(hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::net::Proto;

    const SAVE: &str = "# Generated by iptables-nft-save v1.8.9 (nf_tables)\n*filter\n\
:INPUT DROP [0:0]\n\
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n\
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A INPUT -p tcp -m multiport --dports 80,443,8000:8100 -j ACCEPT\n\
-A INPUT -p tcp -m state --state NEW -m tcp --dport 9000 -m comment --comment \"a \\\"b\\\"\" -j ACCEPT\n\
-A INPUT -m conntrack ! --ctstate NEW -j DROP\n\
-A INPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 7000 -j ACCEPT\nCOMMIT\n";

    #[test]
    fn reads_iptables_save_and_judges_its_matches() {
        let mut texts = Texts::new();
        parse_save(SAVE, "ip", &mut texts);
        let rules = &texts[&("ip".into(), "filter".into(), "INPUT".into())];
        assert_eq!(rules.len(), 6);
        assert_eq!(rules[3][rules[3].len() - 3], "a \"b\"");
        let p = Probe {
            proto: Proto::Tcp,
            v6: false,
            daddr: None,
            dport: 8080,
            loopback: false,
        };
        let at = |i: usize| matches(&rules[i], &p);
        assert_eq!(at(1), Tri::No, "a first packet is NEW");
        assert_eq!(at(2), Tri::Yes, "8080 is in 8000:8100");
        assert_eq!(at(3), Tri::No, "--dport 9000");
        assert_eq!(at(4), Tri::No, "! --ctstate NEW");
        assert_eq!(at(5), Tri::No, "--dport 7000");
        let on = |i: usize, dport| matches(&rules[i], &Probe { dport, ..p });
        assert_eq!(on(3, 9000), Tri::Yes, "state NEW, a comment");
        assert_eq!(on(5, 7000), Tri::Maybe, "addrtype is not judged");
        assert_eq!(on(0, 22), Tri::Yes);
        let udp = Probe {
            proto: Proto::Udp,
            dport: 22,
            ..p
        };
        assert_eq!(matches(&rules[0], &udp), Tri::No, "-p tcp");
        // An option portwatch does not judge is unknown, never ignored; --syn and -f are known.
        let tcp22 = Probe { dport: 22, ..p };
        let on = |rule: &str| matches(&split(rule), &tcp22);
        assert_eq!(on("-p tcp ! --syn -m state --state NEW -j DROP"), Tri::No);
        assert_eq!(on("-p tcp --syn --dport 22 -j ACCEPT"), Tri::Yes);
        assert_eq!(on("-f -j DROP"), Tri::No);
        assert_eq!(on("-p tcp --tcp-flags SYN,ACK SYN -j ACCEPT"), Tri::Maybe);
        assert_eq!(on("-m ttl --ttl-gt 5 -j DROP"), Tri::Maybe);
        assert_eq!(on("-m comment --comment -x -j ACCEPT"), Tri::Yes);
        let other = Probe { dport: 8200, ..p };
        assert_eq!(matches(&rules[2], &other), Tri::No);
    }
}
