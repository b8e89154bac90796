//! One rule of a chain, for one packet: whether its matches hold (three-valued, see `expr`) and
//! what it then does: a verdict, a jump, or a verdict map looked up with the packet's value.
use serde_json::Value;

use super::expr::{self, Left, Probe, Sets, Tri};

/// What one rule does, once its matches hold.
pub enum Verdict {
    Accept,
    Drop,
    /// Queued to a program, or a statement portwatch does not know: could be anything.
    Opaque,
    Return,
    Jump(String),
    Goto(String),
    /// A verdict map: its key and its elements ([key, verdict] pairs) or `@name`.
    Vmap(Value, Value),
}

/// Statements that neither match nor decide.
const NO_OPS: &[&str] = &[
    "counter",
    "log",
    "mangle",
    "notrack",
    "set",
    "map",
    "dup",
    "flow",
    "secmark",
    "last",
    "ct helper",
    "ct timeout",
    "ct expectation",
    "continue",
];
/// Statements that match on what portwatch cannot know (rates, quotas, counts).
const CONDITIONS: &[&str] = &["limit", "quota", "meter", "ct count", "connlimit"];
/// iptables targets that neither accept nor drop.
const XT_NO_OPS: &[&str] = &[
    "LOG", "NFLOG", "MARK", "CONNMARK", "TRACE", "CT", "NOTRACK", "TCPMSS", "CLASSIFY", "DSCP",
    "TOS", "AUDIT", "CHECKSUM",
];

/// A rule's matches, all of which must hold, and its verdict (None: it only counts or logs).
/// `text`: the rule as iptables-nft-save shows it, which says what its `xt` matches test.
pub fn rule(
    exprs: &[Value],
    p: &Probe,
    sets: &dyn Sets,
    text: Option<&[String]>,
) -> (Tri, Option<Verdict>) {
    let mut cond = Tri::Yes;
    let mut xt_judged = false;
    for st in exprs {
        let Some((name, body)) = st.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let verdict = match name.as_str() {
            "match" => {
                cond = cond.and(expr::matches(body, p, sets));
                if cond == Tri::No {
                    return (Tri::No, None);
                }
                continue;
            }
            n if CONDITIONS.contains(&n) => {
                cond = cond.and(Tri::Maybe);
                continue;
            }
            n if NO_OPS.contains(&n) => continue,
            "xt" => {
                let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
                match (s("type"), s("name")) {
                    // What an iptables match tests, nft does not show; the saved text does
                    // (all of the rule's modules at once).
                    ("match", _) => {
                        if !xt_judged {
                            cond = cond.and(text.map_or(Tri::Maybe, |t| super::xt::matches(t, p)));
                            xt_judged = true;
                        }
                        if cond == Tri::No {
                            return (Tri::No, None);
                        }
                        continue;
                    }
                    ("target", t) if XT_NO_OPS.contains(&t) => continue,
                    ("target", "ACCEPT") => Verdict::Accept,
                    ("target", "DROP" | "REJECT") => Verdict::Drop,
                    ("target", "RETURN") => Verdict::Return,
                    _ => Verdict::Opaque,
                }
            }
            "vmap" => {
                let part = |k: &str| body.get(k).cloned().unwrap_or_default();
                Verdict::Vmap(part("key"), part("data"))
            }
            other => verdict_of(other, body).unwrap_or(Verdict::Opaque),
        };
        return (cond, Some(verdict));
    }
    (cond, None)
}

fn verdict_of(name: &str, body: &Value) -> Option<Verdict> {
    let target = || {
        let t = body.get("target").and_then(Value::as_str)?;
        Some(t.to_owned())
    };
    Some(match name {
        "accept" => Verdict::Accept,
        "drop" | "reject" => Verdict::Drop,
        "return" => Verdict::Return,
        "jump" => Verdict::Jump(target()?),
        "goto" => Verdict::Goto(target()?),
        _ => return None,
    })
}

/// The verdicts a verdict map can give the probe, each with how sure.
pub fn vmap(
    key: &Value,
    data: &Value,
    sets: &dyn Sets,
    p: &Probe,
    cond: Tri,
) -> Vec<(Tri, Verdict)> {
    let entries: &[Value] = match data {
        Value::String(s) => s
            .strip_prefix('@')
            .and_then(|n| sets.elements(n))
            .unwrap_or_default(),
        d => d
            .get("set")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
    };
    let known = match expr::left(key, p) {
        Left::Absent => return Vec::new(),
        Left::Unknown => None,
        Left::Known(v) => Some(v),
    };
    let mut out = Vec::new();
    for e in entries {
        let pair = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
        let (Some(k), Some(v)) = (pair.get(0), pair.get(1)) else {
            out.push((cond.and(Tri::Maybe), Verdict::Opaque));
            continue;
        };
        let verdict = v
            .as_object()
            .and_then(|o| o.iter().next())
            .and_then(|(n, b)| verdict_of(n, b))
            .unwrap_or(Verdict::Opaque);
        match known.map(|x| expr::is(x, k, sets)) {
            Some(Some(true)) => {
                out.push((cond, verdict));
                break;
            }
            Some(Some(false)) => {}
            _ => out.push((cond.and(Tri::Maybe), verdict)),
        }
    }
    out
}
