//! One nftables match, judged for one packet: the first packet of a new connection to a
//! listener, of which portwatch knows the protocol, family, destination port, destination
//! address (unless the listener takes every address) and whether it comes over loopback, and
//! nothing else (the source, the interface it arrives on, marks). A match is then true, false,
//! or unknown ("maybe"), in nftables' JSON form (libnftables-json(5)).
use std::net::IpAddr;

use serde_json::Value;

use crate::model::net::Proto;

/// The packet judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub proto: Proto,
    pub v6: bool,
    /// None: the listener takes every address of the family.
    pub daddr: Option<IpAddr>,
    pub dport: u16,
    /// It arrives on `lo` (a loopback listener); else on some other interface.
    pub loopback: bool,
}

/// Three-valued truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    Maybe,
}

impl Tri {
    pub const fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::No, _) | (_, Self::No) => Self::No,
            (Self::Yes, Self::Yes) => Self::Yes,
            _ => Self::Maybe,
        }
    }

    pub const fn not(self) -> Self {
        match self {
            Self::Yes => Self::No,
            Self::No => Self::Yes,
            Self::Maybe => Self::Maybe,
        }
    }

    pub fn of(b: impl Into<Option<bool>>) -> Self {
        let b = b.into();
        match b {
            Some(true) => Self::Yes,
            Some(false) => Self::No,
            None => Self::Maybe,
        }
    }
}

/// What a match's left side reads from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    Port(u16),
    Proto(u8),
    Addr(IpAddr),
    /// A keyword: a conntrack state, a family or interface name.
    Word(&'static str),
    /// An interface that is not `lo`, which one unknown.
    NotLoopback,
}

/// The left side of a match, read from the probe.
pub enum Left {
    /// The header is not in this packet (`tcp dport` of a UDP packet, `ip saddr` of an IPv6
    /// one): nftables' implied dependency fails, so the whole match is false, whatever the op.
    Absent,
    /// In the packet but not known to portwatch (the source address, say).
    Unknown,
    Known(Val),
}

/// Transport headers that a TCP or UDP packet does not have.
const OTHER_TRANSPORTS: &[&str] = &[
    "icmp", "icmpv6", "sctp", "dccp", "udplite", "esp", "ah", "comp", "igmp",
];

pub fn left(expr: &Value, p: &Probe) -> Left {
    fn key(o: &Value) -> &str {
        o.get("key").and_then(Value::as_str).unwrap_or_default()
    }
    if let Some(pl) = expr.get("payload") {
        let proto = pl
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let field = pl.get("field").and_then(Value::as_str).unwrap_or_default();
        return payload(proto, field, p);
    }
    if let Some(m) = expr.get("meta") {
        return match key(m) {
            "l4proto" => Left::Known(Val::Proto(p.proto.number() as u8)),
            "nfproto" => Left::Known(Val::Word(if p.v6 { "ipv6" } else { "ipv4" })),
            "protocol" => Left::Known(Val::Word(if p.v6 { "ip6" } else { "ip" })),
            "iif" | "iifname" if p.loopback => Left::Known(Val::Word("lo")),
            "iif" | "iifname" => Left::Known(Val::NotLoopback),
            "iiftype" if p.loopback => Left::Known(Val::Word("loopback")),
            // A TCP segment to a listener is unicast to this host (UDP may be broadcast).
            "pkttype" if p.proto == Proto::Tcp => Left::Known(Val::Word("host")),
            _ => Left::Unknown,
        };
    }
    if let Some(ct) = expr.get("ct") {
        return match key(ct) {
            "state" => Left::Known(Val::Word("new")),
            "direction" => Left::Known(Val::Word("original")),
            // A first packet sent to the listener itself: not confirmed, no reply seen, and
            // not NATed (NAT is not judged), so it has no status flag (`ct status dnat` fails).
            "status" => Left::Known(Val::Word("")),
            _ => Left::Unknown,
        };
    }
    // `fib daddr type`: a packet to a listener is addressed to this host.
    if let Some(fib) = expr.get("fib") {
        let daddr_only = fib.get("flags") == Some(&serde_json::json!(["daddr"]));
        if daddr_only && fib.get("result").and_then(Value::as_str) == Some("type") {
            return Left::Known(Val::Word("local"));
        }
    }
    Left::Unknown
}

fn payload(proto: &str, field: &str, p: &Probe) -> Left {
    let addr = |want_v6: bool, dst: bool| match (p.v6 == want_v6, dst, p.daddr) {
        (false, ..) => Left::Absent,
        (true, true, Some(a)) => Left::Known(Val::Addr(a)),
        _ => Left::Unknown,
    };
    match (proto, field) {
        ("tcp" | "udp", _) if proto != p.proto.name() => Left::Absent,
        ("tcp" | "udp" | "th", "dport") => Left::Known(Val::Port(p.dport)),
        ("ip", "saddr") => addr(false, false),
        ("ip", "daddr") => addr(false, true),
        ("ip6", "saddr") => addr(true, false),
        ("ip6", "daddr") => addr(true, true),
        ("ip", "protocol") if !p.v6 => Left::Known(Val::Proto(p.proto.number() as u8)),
        ("ip6", "nexthdr") if p.v6 => Left::Known(Val::Proto(p.proto.number() as u8)),
        ("ip", _) if p.v6 => Left::Absent,
        ("ip6", _) if !p.v6 => Left::Absent,
        (other, _) if OTHER_TRANSPORTS.contains(&other) => Left::Absent,
        _ => Left::Unknown,
    }
}

/// Named sets of the ruleset, for `@name` references.
pub trait Sets {
    fn elements(&self, name: &str) -> Option<&[Value]>;
}

/// Whether `v` is `right`: a value, a range, a prefix, an anonymous set, a list of flags or a
/// named set. None: cannot tell (a service name, a set type portwatch does not read).
pub fn is(v: Val, right: &Value, sets: &dyn Sets) -> Option<bool> {
    let any = |items: &[Value]| {
        let mut unsure = false;
        for i in items {
            match is(v, i, sets) {
                Some(true) => return Some(true),
                None => unsure = true,
                Some(false) => {}
            }
        }
        if unsure { None } else { Some(false) }
    };
    match right {
        Value::Array(items) => any(items),
        Value::Number(n) => {
            let n = n.as_u64()?;
            match v {
                Val::Port(x) => Some(u64::from(x) == n),
                Val::Proto(x) => Some(u64::from(x) == n),
                _ => None,
            }
        }
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('@') {
                return any(sets.elements(name)?);
            }
            word(v, s)
        }
        Value::Object(o) => {
            if let Some(set) = o.get("set") {
                return match set {
                    Value::Array(items) => any(items),
                    single => is(v, single, sets),
                };
            }
            if let Some(e) = o.get("elem") {
                return is(v, e.get("val")?, sets);
            }
            if let Some(Value::Array(r)) = o.get("range") {
                let (lo, hi) = (r.first()?, r.get(1)?);
                return within(v, lo, hi);
            }
            if let Some(pre) = o.get("prefix") {
                let (Val::Addr(a), Some(net), Some(len)) = (
                    v,
                    pre.get("addr").and_then(Value::as_str),
                    pre.get("len").and_then(Value::as_u64),
                ) else {
                    return None;
                };
                return Some(in_prefix(a, net.parse().ok()?, len as u32));
            }
            None
        }
        _ => None,
    }
}

/// `v` against a string: an address, a protocol or keyword name, a number as text.
fn word(v: Val, s: &str) -> Option<bool> {
    match v {
        Val::Addr(a) => Some(a == s.parse::<IpAddr>().ok()?),
        Val::Proto(x) => Some(match Proto::from_name(s) {
            Some(p) => p.number() == u16::from(x),
            None => s.parse::<u8>().ok()? == x,
        }),
        // A service name ("ssh") is not looked up.
        Val::Port(x) => Some(s.parse::<u16>().ok()? == x),
        Val::Word(w) => Some(w == s),
        Val::NotLoopback => (s == "lo").then_some(false),
    }
}

fn within(v: Val, lo: &Value, hi: &Value) -> Option<bool> {
    match v {
        Val::Port(x) => {
            let x = u64::from(x);
            Some(lo.as_u64()? <= x && x <= hi.as_u64()?)
        }
        Val::Addr(a) => {
            let (lo, hi): (IpAddr, IpAddr) =
                (lo.as_str()?.parse().ok()?, hi.as_str()?.parse().ok()?);
            Some(lo <= a && a <= hi && lo.is_ipv4() == a.is_ipv4())
        }
        _ => None,
    }
}

pub fn in_prefix(a: IpAddr, net: IpAddr, len: u32) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - len.min(32)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - len.min(128)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A `match` expression judged for the probe.
pub fn matches(m: &Value, p: &Probe, sets: &dyn Sets) -> Tri {
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let (Some(l), Some(r)) = (m.get("left"), m.get("right")) else {
        return Tri::Maybe;
    };
    let v = match left(l, p) {
        Left::Absent => return Tri::No,
        Left::Unknown => return Tri::Maybe,
        Left::Known(v) => v,
    };
    match op {
        "==" | "in" => Tri::of(is(v, r, sets)),
        "!=" => Tri::of(is(v, r, sets)).not(),
        "<" | ">" | "<=" | ">=" => {
            let (Val::Port(x), Some(n)) = (v, r.as_u64()) else {
                return Tri::Maybe;
            };
            let x = u64::from(x);
            Tri::of(Some(match op {
                "<" => x < n,
                ">" => x > n,
                "<=" => x <= n,
                _ => x >= n,
            }))
        }
        _ => Tri::Maybe,
    }
}
