//! Network vocabulary shared by every stage: transport protocols and their names, address
//! families, who can reach an address, and when two bound addresses overlap.
use std::{borrow::Cow, net::SocketAddr};

use portwatch_common::{IPPROTO_TCP, IPPROTO_UDP};
use serde::Serialize;

/// The transports whose sockets are listeners: listening TCP, bound UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub const ALL: [Self; 2] = [Self::Tcp, Self::Udp];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    /// The IP protocol number (IPPROTO_TCP, IPPROTO_UDP).
    pub const fn number(self) -> u16 {
        match self {
            Self::Tcp => IPPROTO_TCP,
            Self::Udp => IPPROTO_UDP,
        }
    }

    pub const fn from_number(n: u16) -> Option<Self> {
        match n {
            IPPROTO_TCP => Some(Self::Tcp),
            IPPROTO_UDP => Some(Self::Udp),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Whether binding `port` as `uid` needs a privilege (CAP_NET_BIND_SERVICE, or a network
/// namespace whose net.ipv4.ip_unprivileged_port_start is lower): a port below 1024, not root.
pub const fn needs_privilege(port: u16, uid: u32) -> bool {
    port < 1024 && uid != 0
}

/// Protocol name for an IP protocol number.
pub fn protocol_name(protocol: u16) -> Cow<'static, str> {
    if let Some(p) = Proto::from_number(protocol) {
        return Cow::Borrowed(p.name());
    }
    Cow::Borrowed(match protocol {
        1 => "icmp",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        255 => "raw",
        262 => "mptcp",
        n => return Cow::Owned(format!("ip-proto-{n}")),
    })
}

/// An address family, as records name it (`ipv4`, `ipv6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub const fn of(addr: &SocketAddr) -> Self {
        if addr.is_ipv4() {
            Self::Ipv4
        } else {
            Self::Ipv6
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }

    /// The IP version (4, 6).
    pub const fn version(self) -> u8 {
        match self {
            Self::Ipv4 => 4,
            Self::Ipv6 => 6,
        }
    }
}

/// Who can reach a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// 127.0.0.0/8 or ::1: this host only.
    Loopback,
    /// 0.0.0.0 or ::: every interface.
    All,
    /// One specific address.
    Address,
}

impl Scope {
    pub fn of(addr: &SocketAddr) -> Self {
        let ip = addr.ip();
        if ip.is_loopback() || ip.to_canonical().is_loopback() {
            Self::Loopback
        } else if ip.is_unspecified() {
            Self::All
        } else {
            Self::Address
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::All => "all",
            Self::Address => "address",
        }
    }
}

/// A bound address and, for IPv6 sockets, IPV6_V6ONLY when it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub local: SocketAddr,
    pub v6only: Option<bool>,
}

/// Whether two sockets of one protocol and port can receive the same packets: equal addresses,
/// or one of them the wildcard of its family. An IPv4 address and an IPv6 one overlap only
/// through a dual-stack `::` socket; an IPv6 wildcard whose v6only flag is unknown (a socket
/// seen only through its events) is taken to be dual-stack, the Linux default.
pub fn overlaps(a: Bound, b: Bound) -> bool {
    let (x, y) = (a.local.ip(), b.local.ip());
    if x == y {
        return true;
    }
    let dual =
        |s: Bound| s.local.is_ipv6() && s.local.ip().is_unspecified() && s.v6only != Some(true);
    match (x.is_ipv4(), y.is_ipv4()) {
        (true, true) | (false, false) => x.is_unspecified() || y.is_unspecified(),
        _ => dual(a) || dual(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(addr: &str, v6only: Option<bool>) -> Bound {
        Bound {
            local: addr.parse().unwrap(),
            v6only,
        }
    }

    #[test]
    fn scopes() {
        let scope = |a: &str| Scope::of(&a.parse().unwrap());
        assert_eq!(scope("127.0.0.53:53"), Scope::Loopback);
        assert_eq!(scope("[::1]:1"), Scope::Loopback);
        assert_eq!(scope("[::ffff:127.0.0.1]:1"), Scope::Loopback);
        assert_eq!(scope("0.0.0.0:22"), Scope::All);
        assert_eq!(scope("[::]:22"), Scope::All);
        assert_eq!(scope("10.0.0.5:80"), Scope::Address);
    }

    #[test]
    fn overlapping_addresses() {
        let yes = |a, b| overlaps(a, b) && overlaps(b, a);
        let no = |a, b| !overlaps(a, b) && !overlaps(b, a);
        assert!(yes(bound("0.0.0.0:80", None), bound("10.0.0.5:80", None)));
        assert!(yes(bound("10.0.0.5:80", None), bound("10.0.0.5:80", None)));
        assert!(no(bound("10.0.0.5:80", None), bound("10.0.0.6:80", None)));
        assert!(yes(
            bound("[::]:80", Some(false)),
            bound("127.0.0.1:80", None)
        ));
        assert!(no(
            bound("[::]:80", Some(true)),
            bound("127.0.0.1:80", None)
        ));
        assert!(
            yes(bound("[::]:80", None), bound("127.0.0.1:80", None)),
            "unknown: dual-stack"
        );
        assert!(no(
            bound("0.0.0.0:80", None),
            bound("[::1]:80", Some(false))
        ));
        assert!(yes(
            bound("[::]:80", Some(true)),
            bound("[::1]:80", Some(true))
        ));
    }

    #[test]
    fn protocol_numbers_and_names_agree() {
        for p in Proto::ALL {
            assert_eq!(Proto::from_number(p.number()), Some(p));
            assert_eq!(Proto::from_name(p.name()), Some(p));
            assert_eq!(protocol_name(p.number()), p.name());
        }
        assert_eq!(protocol_name(262), "mptcp");
        assert_eq!(protocol_name(99), "ip-proto-99");
        assert_eq!(Proto::from_name("sctp"), None);
    }
}
