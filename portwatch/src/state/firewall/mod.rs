//! Whether the firewall of a listener's network namespace lets a new connection reach it.
//!
//! The rules are read with `nft -j list ruleset`, run in the namespace (a child process starts
//! in the namespace of the thread that spawns it), and kept for a moment per namespace so a
//! burst of listens reads them once. Legacy iptables rules (x_tables, not nftables) are not
//! read: where such tables are loaded the answer is `unknown`, saying so.
use std::{
    collections::HashMap,
    fs,
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    model::{
        net::{Proto, Scope},
        reach::{Reachability, Status},
    },
    state::netns::{self, Namespace},
};

pub mod expr;
mod nft;
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
                read()
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
    ns.run(|| Ok(read())).unwrap_or_else(|e| {
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

/// Where nft usually is: a daemon's PATH often lacks the sbin directories.
const NFT: &[&str] = &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"];

/// The ruleset of the calling thread's namespace.
fn read() -> Result<Ruleset, String> {
    let legacy: Vec<String> = ["ip_tables_names", "ip6_tables_names"]
        .iter()
        .filter_map(|f| fs::read_to_string(Path::new("/proc/thread-self/net").join(f)).ok())
        .flat_map(|s| s.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if !legacy.is_empty() {
        return Err(format!(
            "legacy iptables tables are loaded ({}): their rules are not read (iptables-legacy-save shows them)",
            legacy.join(", ")
        ));
    }
    let nft = NFT
        .iter()
        .find(|p| Path::new(p).exists())
        .copied()
        .unwrap_or("nft");
    let out = Command::new(nft)
        .args(["-j", "list", "ruleset"])
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "nft is not installed (apt-get install nftables): the firewall rules are not read"
                    .to_owned()
            }
            _ => format!("nft could not be run: {e}"),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Operation not permitted") {
            return Err("nft could not read the rules: that needs CAP_NET_ADMIN (run portwatch as root or give it CAP_NET_ADMIN as an ambient capability)".into());
        }
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(format!("nft list ruleset failed: {}", first.trim()));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("nft's JSON could not be read: {e}"))?;
    let rules = Ruleset::new(&json)?;
    // iptables-nft rules with matches nft cannot show: their saved text says what they test.
    if memchr::memmem::find(&out.stdout, b"\"xt\"").is_none() {
        return Ok(rules);
    }
    let mut texts = xt::Texts::new();
    for (tool, family) in [("iptables-nft-save", "ip"), ("ip6tables-nft-save", "ip6")] {
        let path = ["/usr/sbin", "/sbin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists());
        let Some(path) = path else { continue };
        if let Ok(o) = Command::new(path).output()
            && o.status.success()
        {
            xt::parse_save(&String::from_utf8_lossy(&o.stdout), family, &mut texts);
        }
    }
    Ok(rules.with_xt(texts))
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
