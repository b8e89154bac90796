//! The nftables ruleset (`nft -j list ruleset`), walked for one packet: the first packet of a
//! new connection to a listener. iptables-nft rules are nftables rules too, so they are read
//! here as well (their `xt` matches, which nft cannot show, count as unknown).
//!
//! The packet goes through the `filter` base chains of the prerouting hook, then of the input
//! hook, each hook's chains in priority order, of every table of its family (`inet`, and `ip`
//! or `ip6`). An accept ends one base chain and the packet goes on to the next; a drop or
//! reject anywhere is final. A rule whose match portwatch cannot decide (the source address,
//! a rate limit) is followed both ways, so the answer is `unknown` exactly when the verdict
//! depends on something the listener does not tell. Not evaluated: NAT (a DNAT rule can bring
//! other ports' traffic to a listener), netdev/ingress chains, and the output path of replies.
use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use super::{
    expr::{Probe, Sets, Tri},
    render,
    rule::{Verdict, rule, vmap},
    xt::Texts,
};
use crate::model::reach::{Reachability, Status};

type Key = (String, String, String);

/// A parsed ruleset, ready to judge any number of packets.
#[derive(Debug, Default)]
pub struct Ruleset {
    chains: HashMap<Key, Chain>,
    /// Base chains on the input path: (hook order, priority, chain).
    base: Vec<(u8, i64, Key)>,
    /// Named sets' and maps' elements.
    sets: HashMap<Key, Vec<Value>>,
    /// iptables-nft rules as iptables-nft-save shows them, for their `xt` matches.
    xt: Texts,
}

#[derive(Debug, Default)]
struct Chain {
    policy_drop: bool,
    /// Handle, statements, and the text to show instead of rendering them (legacy rules).
    rules: Vec<(u64, Vec<Value>, Option<String>)>,
}

/// What gave a verdict: a rule, or a base chain's policy, as shown in the answer.
#[derive(Clone, Debug)]
struct Decider {
    shown: Arc<str>,
    policy: bool,
}

/// The verdicts reachable on the paths walked so far, each with the first rule giving it.
#[derive(Debug, Default)]
struct Paths {
    accept: Option<Decider>,
    drop: Option<Decider>,
    opaque: Option<Decider>,
}

impl Paths {
    fn merge(&mut self, other: Self) {
        self.accept = self.accept.take().or(other.accept);
        self.drop = self.drop.take().or(other.drop);
        self.opaque = self.opaque.take().or(other.opaque);
    }
}

/// Nested jumps beyond this are taken as unknown (nft itself refuses loops).
const MAX_DEPTH: u8 = 16;

impl Ruleset {
    /// From `nft -j list ruleset` output.
    pub fn new(json: &Value) -> Result<Self, String> {
        let items = json
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or("no `nftables` array in nft's output")?;
        let mut r = Self::default();
        let key = |o: &Value, name: &str| -> Key {
            let s = |k: &str| {
                o.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (s("family"), s("table"), s(name))
        };
        for item in items {
            if let Some(c) = item.get("chain") {
                let k = key(c, "name");
                let hook = c.get("hook").and_then(Value::as_str);
                let filter = c.get("type").and_then(Value::as_str) == Some("filter");
                let order = match hook {
                    Some("prerouting") => Some(0),
                    Some("input") => Some(1),
                    _ => None,
                };
                if let (Some(order), true) = (order, filter) {
                    let prio = c.get("prio").and_then(Value::as_i64).unwrap_or(0);
                    r.base.push((order, prio, k.clone()));
                }
                let chain = r.chains.entry(k).or_default();
                chain.policy_drop = c.get("policy").and_then(Value::as_str) == Some("drop");
            } else if let Some(rule) = item.get("rule") {
                let handle = rule.get("handle").and_then(Value::as_u64).unwrap_or(0);
                let exprs = rule.get("expr").and_then(Value::as_array).cloned();
                let chain = r.chains.entry(key(rule, "chain")).or_default();
                let text = rule.get("text").and_then(Value::as_str).map(str::to_owned);
                chain.rules.push((handle, exprs.unwrap_or_default(), text));
            } else if let Some(set) = item.get("set").or_else(|| item.get("map")) {
                let elems = match set.get("elem") {
                    Some(Value::Array(e)) => e.clone(),
                    _ => Vec::new(),
                };
                r.sets.insert(key(set, "name"), elems);
            }
        }
        r.base.sort_by_key(|(order, prio, _)| (*order, *prio));
        Ok(r)
    }

    /// With the text of the iptables-nft rules (`xt::parse_save`).
    pub fn with_xt(mut self, texts: Texts) -> Self {
        self.xt = texts;
        self
    }

    /// Whether the probe's packet gets through.
    pub fn judge(&self, p: &Probe) -> Reachability {
        let family_ok = |f: &str| f == "inet" || f == if p.v6 { "ip6" } else { "ip" };
        let chains: Vec<&Key> = self
            .base
            .iter()
            .map(|(_, _, k)| k)
            .filter(|k| family_ok(&k.0))
            .collect();
        if chains.is_empty() {
            return reachable(None, "no nftables filter chain on the input path");
        }
        let mut all = Paths::default();
        let mut accepted_by = None;
        for k in chains {
            let paths = self.base_chain(k, p);
            let accept = paths.accept.clone();
            all.merge(Paths {
                accept: None,
                ..paths
            });
            match accept {
                None => return verdict(all.drop, None, all.opaque),
                // The rule that accepted in a later chain says more than an earlier policy.
                Some(a) if !a.policy || accepted_by.is_none() => {
                    accepted_by = Some(a);
                }
                Some(_) => {}
            }
        }
        verdict(all.drop, accepted_by, all.opaque)
    }

    fn base_chain(&self, k: &Key, p: &Probe) -> Paths {
        let mut paths = Paths::default();
        if self.walk(k, p, 0, &mut paths) {
            let chain = &self.chains[k];
            let policy = if chain.policy_drop { "drop" } else { "accept" };
            let name = Decider {
                shown: format!("{} {} {}: policy {policy}", k.0, k.1, k.2).into(),
                policy: true,
            };
            let slot = if chain.policy_drop {
                &mut paths.drop
            } else {
                &mut paths.accept
            };
            slot.get_or_insert(name);
        }
        paths
    }

    /// Walks chain `k`, adding the verdicts it can reach to `out`; true if the packet can also
    /// leave it (by its end or a return) to go on in the caller.
    fn walk(&self, k: &Key, p: &Probe, depth: u8, out: &mut Paths) -> bool {
        let Some(chain) = self.chains.get(k) else {
            let missing = format!("{} {}: chain {} not found", k.0, k.1, k.2);
            out.opaque.get_or_insert_with(|| Decider {
                shown: missing.into(),
                policy: false,
            });
            return false;
        };
        let sets = Named {
            r: self,
            family: &k.0,
            table: &k.1,
        };
        let mut leaves = false;
        // Only when the counts agree is the N-th saved rule the N-th rule here.
        let texts = self.xt.get(k).filter(|t| t.len() == chain.rules.len());
        for (i, (handle, exprs, shown)) in chain.rules.iter().enumerate() {
            let text = texts.and_then(|t| t.get(i)).map(Vec::as_slice);
            let (cond, Some(verdict)) = rule(exprs, p, &sets, text) else {
                continue;
            };
            if cond == Tri::No {
                continue;
            }
            let name = || -> Arc<str> {
                let (k0, k1, k2) = (&k.0, &k.1, &k.2);
                match shown {
                    Some(text) => format!("{k0} {k1} {k2} rule {handle}: {text}").into(),
                    None => {
                        let text = render::rule(exprs);
                        format!("{k0} {k1} {k2} handle {handle}: {text}").into()
                    }
                }
            };
            let choices = match verdict {
                Verdict::Vmap(key, data) => vmap(&key, &data, &sets, p, cond),
                v => vec![(cond, v)],
            };
            for (cond, v) in choices {
                let sure = cond == Tri::Yes;
                if self.apply(v, sure, (k, p, depth), out, &mut leaves, &name) {
                    return leaves;
                }
            }
        }
        true
    }

    /// Adds what verdict `v` leads to; true if it certainly ends the walk of this chain.
    fn apply(
        &self,
        v: Verdict,
        sure: bool,
        (k, p, depth): (&Key, &Probe, u8),
        out: &mut Paths,
        leaves: &mut bool,
        name: &dyn Fn() -> Arc<str>,
    ) -> bool {
        let slot = match v {
            Verdict::Accept => &mut out.accept,
            Verdict::Drop => &mut out.drop,
            Verdict::Opaque | Verdict::Vmap(..) => &mut out.opaque,
            Verdict::Return => {
                *leaves = true;
                return sure;
            }
            Verdict::Jump(ref t) | Verdict::Goto(ref t) if depth < MAX_DEPTH => {
                let target = (k.0.clone(), k.1.clone(), t.clone());
                let mut sub = Paths::default();
                let falls = self.walk(&target, p, depth + 1, &mut sub);
                out.merge(sub);
                if matches!(v, Verdict::Goto(_)) {
                    // The goto'd chain's end returns to this chain's caller.
                    *leaves |= falls;
                    return sure;
                }
                return sure && !falls;
            }
            Verdict::Jump(_) | Verdict::Goto(_) => &mut out.opaque,
        };
        slot.get_or_insert_with(|| Decider {
            shown: name(),
            policy: false,
        });
        sure
    }
}

/// Named sets of one table.
struct Named<'a> {
    r: &'a Ruleset,
    family: &'a str,
    table: &'a str,
}

impl Sets for Named<'_> {
    fn elements(&self, name: &str) -> Option<&[Value]> {
        let k = (
            self.family.to_owned(),
            self.table.to_owned(),
            name.to_owned(),
        );
        self.r.sets.get(&k).map(Vec::as_slice)
    }
}

fn reachable(rule: Option<Arc<str>>, reason: &str) -> Reachability {
    Reachability {
        status: Status::Reachable,
        rule,
        reason: reason.into(),
    }
}

/// The answer from the verdicts the paths reach.
fn verdict(
    drop: Option<Decider>,
    accept: Option<Decider>,
    opaque: Option<Decider>,
) -> Reachability {
    match (accept, drop, opaque) {
        (_, _, Some(o)) => Reachability {
            status: Status::Unknown,
            rule: Some(o.shown),
            reason: "a rule on its way cannot be judged (an unknown statement or verdict)".into(),
        },
        (Some(a), Some(d), None) => Reachability::unknown(format!(
            "depends on what the listener does not tell (source, interface, rate): accepted by `{}`, else dropped by `{}`",
            a.shown, d.shown
        )),
        (Some(a), None, None) => {
            let why = if a.policy {
                "no rule drops it"
            } else {
                "a rule accepts it"
            };
            reachable(Some(a.shown), why)
        }
        (None, Some(d), None) => {
            let why = if d.policy {
                "no rule accepts it and the chain's policy drops it"
            } else {
                "a rule drops or rejects it"
            };
            Reachability {
                status: Status::Filtered,
                rule: Some(d.shown),
                reason: why.into(),
            }
        }
        (None, None, None) => reachable(None, "no rule decides"),
    }
}
