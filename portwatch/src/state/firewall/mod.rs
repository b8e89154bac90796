//! Whether the firewall of a listener's network namespace lets a new connection reach it.
//!
//! The rules are read with `nft -j list ruleset` (and iptables' save tools, see `read`), run in
//! the namespace (a child process starts in the namespace of the thread that spawns it), and
//! kept for a moment per namespace so a burst of listens reads them once.
use std::{
    collections::HashMap,
    fs,
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt,
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    host::netns::{self, Namespace},
    model::{
        net::{Proto, Scope},
        reach::{Reachability, Status},
    },
};

pub mod expr;
mod legacy;
mod nft;
mod read;
mod render;
mod rule;
mod xt;

pub use expr::Probe;
pub use nft::Ruleset;

/// How long a namespace's rules are used before they are read again.
const FRESH: Duration = Duration::from_secs(2);

/// The verdicts kept per namespace, at most: each new listener is judged once per reading.
const MEMO: usize = 4096;

/// One namespace's rules as last read, and the verdicts given from them.
struct Reading {
    at: Instant,
    rules: Result<Ruleset, String>,
    verdicts: HashMap<(Proto, SocketAddr, Option<bool>), Reachability>,
}

/// The rules of each namespace, read when first needed and again once stale. Holds only the
/// namespaces asked about in the last `FRESH`.
pub struct Firewall {
    own: u32,
    cache: HashMap<u32, Reading>,
}

impl Default for Firewall {
    fn default() -> Self {
        let own = fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino() as u32);
        Self {
            own,
            cache: HashMap::new(),
        }
    }
}

impl Firewall {
    /// The verdict for a listener of `proto` on `local` in namespace `netns`; `holder` (pid,
    /// tid) is a task in that namespace, the quickest way in.
    pub fn judge(
        &mut self,
        netns: u32,
        holder: Option<(u32, u32)>,
        proto: Proto,
        local: SocketAddr,
        v6only: Option<bool>,
    ) -> Reachability {
        if netns == 0 {
            return Reachability::unknown("the listener's network namespace is not known");
        }
        let reading = self.reading(netns, holder);
        let key = (proto, local, v6only);
        if let Some(v) = reading.verdicts.get(&key) {
            return v.clone();
        }
        let verdict = match &reading.rules {
            Ok(r) => judge(r, proto, local, v6only),
            Err(e) => Reachability::unknown(e.as_str()),
        };
        if reading.verdicts.len() < MEMO {
            reading.verdicts.insert(key, verdict.clone());
        }
        verdict
    }

    fn reading(&mut self, netns: u32, holder: Option<(u32, u32)>) -> &mut Reading {
        let now = Instant::now();
        let fresh = |r: &Reading| now.duration_since(r.at) < FRESH;
        self.cache.retain(|_, r| fresh(r));
        let own = self.own;
        self.cache.entry(netns).or_insert_with(|| Reading {
            at: now,
            rules: if netns == own {
                read::ruleset()
            } else {
                read_in(netns, holder)
            },
            verdicts: HashMap::new(),
        })
    }
}

/// The ruleset of namespace `netns`, read from a thread that entered it.
fn read_in(netns: u32, holder: Option<(u32, u32)>) -> Result<Ruleset, String> {
    let Some(ns) = enter(netns, holder) else {
        return Err(format!(
            "network namespace {netns} could not be entered (its processes are gone, or entering needs CAP_SYS_ADMIN)"
        ));
    };
    ns.run(|| Ok(read::ruleset())).unwrap_or_else(|e| {
        Err(format!(
            "network namespace {netns} could not be entered: {e}"
        ))
    })
}

/// A handle on namespace `netns`: through its holder, else found among all.
fn enter(netns: u32, holder: Option<(u32, u32)>) -> Option<Namespace> {
    if let Some((pid, tid)) = holder {
        let path = format!("/proc/{pid}/task/{tid}/ns/net");
        if let Some(ns) = Namespace::open(Path::new(&path), netns) {
            return Some(ns);
        }
    }
    netns::all().ok()?.into_iter().find(|n| n.inode == netns)
}

/// The packets a listener on `local` receives: IPv4, IPv6, or both for a dual-stack `::`.
fn probes(proto: Proto, local: SocketAddr, v6only: Option<bool>) -> Vec<Probe> {
    let ip = local.ip().to_canonical();
    let probe = |v6: bool, daddr: Option<IpAddr>| Probe {
        proto,
        v6,
        daddr,
        dport: local.port(),
        loopback: Scope::of(&local) == Scope::Loopback,
    };
    if ip.is_unspecified() {
        if ip.is_ipv4() {
            return vec![probe(false, None)];
        }
        if v6only == Some(true) {
            return vec![probe(true, None)];
        }
        return vec![probe(true, None), probe(false, None)];
    }
    vec![probe(ip.is_ipv6(), Some(ip))]
}

/// The verdict for every packet the listener takes: when the families differ, the more open
/// one, with the other's in the reason.
pub fn judge(
    rules: &Ruleset,
    proto: Proto,
    local: SocketAddr,
    v6only: Option<bool>,
) -> Reachability {
    let answers: Vec<Reachability> = probes(proto, local, v6only)
        .iter()
        .map(|p| rules.judge(p))
        .collect();
    let rank = |s: Status| match s {
        Status::Reachable => 0,
        Status::Unknown => 1,
        Status::Filtered => 2,
    };
    match answers.as_slice() {
        [v6, v4] if v6.status != v4.status => {
            let (open, shut, (o, s)) = if rank(v6.status) < rank(v4.status) {
                (v6, v4, ("IPv6", "IPv4"))
            } else {
                (v4, v6, ("IPv4", "IPv6"))
            };
            let mut r = open.clone();
            let by = shut
                .rule
                .as_deref()
                .map(|x| format!(" by `{x}`"))
                .unwrap_or_default();
            r.reason = format!(
                "over {o}: {}; over {s}: {}{by} ({})",
                open.reason,
                shut.status.name(),
                shut.reason
            )
            .into();
            r
        }
        [first, ..] => first.clone(),
        [] => Reachability::unknown("no packet to judge"),
    }
}

#[cfg(test)]
mod tests;
