//! Legacy iptables (x_tables) rules, from `iptables-legacy-save`: turned into nftables-JSON
//! chains and rules so the one walker judges them with the nftables ones (both run on the
//! kernel's netfilter hooks, each table at its priority). A rule becomes one `xt` match,
//! judged from its saved words (`xt::matches`), and its target's verdict; it is shown as saved.
use serde_json::{Value, json};

use super::xt::{Texts, split};

/// Where the legacy tables' built-in chains sit on the path to a listener: (table, chain) →
/// (hook, priority). nat is left out (it rewrites, it does not filter).
const HOOKS: &[(&str, &str, &str, i64)] = &[
    ("raw", "PREROUTING", "prerouting", -300),
    ("mangle", "PREROUTING", "prerouting", -150),
    ("mangle", "INPUT", "input", -150),
    ("filter", "INPUT", "input", 0),
    ("security", "INPUT", "input", 50),
];

/// The chains and rules of one save output, for `family` (`ip` or `ip6`), with each rule's words
/// added to `texts`.
pub fn items(save: &str, family: &str, texts: &mut Texts) -> Vec<Value> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut chains: Vec<String> = Vec::new();
    let mut handles: std::collections::HashMap<String, u64> = Default::default();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_owned();
            chains.clear();
            handles.clear();
            continue;
        }
        if table == "nat" {
            continue;
        }
        let shown = format!("{table} (legacy)");
        if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let (Some(name), Some(policy)) = (parts.next(), parts.next()) else {
                continue;
            };
            chains.push(name.to_owned());
            let mut c = json!({"family": family, "table": shown, "name": name});
            let hook = HOOKS.iter().find(|(t, n, ..)| *t == table && *n == name);
            if let (Some((.., hook, prio)), true) = (hook, policy != "-") {
                c["type"] = json!("filter");
                c["hook"] = json!(hook);
                c["prio"] = json!(prio);
                c["policy"] = json!(if policy == "DROP" { "drop" } else { "accept" });
            }
            out.push(json!({ "chain": c }));
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let mut words = split(rule);
            if words.is_empty() {
                continue;
            }
            let chain = words.remove(0);
            let handle = handles.entry(chain.clone()).or_insert(0);
            *handle += 1;
            let mut expr = vec![json!({"xt": {"type": "match", "name": "legacy"}})];
            expr.extend(verdict(&words, &chains));
            out.push(json!({"rule": {
                "family": family, "table": shown, "chain": chain, "handle": *handle,
                "expr": expr, "text": format!("-A {rule}"),
            }}));
            texts
                .entry((family.to_owned(), shown, chain))
                .or_default()
                .push(words);
        }
    }
    out
}

/// The rule's target as an nftables statement (none: it only counts).
fn verdict(words: &[String], chains: &[String]) -> Option<Value> {
    let at = words
        .iter()
        .position(|w| matches!(w.as_str(), "-j" | "--jump" | "-g" | "--goto"))?;
    let goto = matches!(words[at].as_str(), "-g" | "--goto");
    let target = words.get(at + 1)?.as_str();
    Some(match target {
        "ACCEPT" => json!({"accept": null}),
        "DROP" => json!({"drop": null}),
        "REJECT" => json!({"reject": null}),
        "RETURN" => json!({"return": null}),
        t if chains.iter().any(|c| c == t) => {
            json!({ (if goto { "goto" } else { "jump" }): {"target": t} })
        }
        // LOG, MARK, ... pass on (rule.rs knows which); anything else is not judged.
        t => json!({"xt": {"type": "target", "name": t}}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_output_becomes_chains_and_rules() {
        let save = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 6666 -j DROP\nCOMMIT\n\
*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.1\nCOMMIT\n\
*filter\n:INPUT DROP [0:0]\n:svc - [0:0]\n-A INPUT -p tcp -j svc\n-A INPUT -j LOG\n-A svc -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
        let mut texts = Texts::new();
        let items = items(save, "ip", &mut texts);
        let chains: Vec<&Value> = items.iter().filter_map(|i| i.get("chain")).collect();
        assert_eq!(chains.len(), 3, "nat left out: {items:?}");
        assert_eq!(chains[0]["hook"], "prerouting");
        assert_eq!(chains[0]["prio"], -300);
        assert_eq!(chains[1]["policy"], "drop");
        assert!(chains[2].get("hook").is_none(), "a user chain");
        let rules: Vec<&Value> = items.iter().filter_map(|i| i.get("rule")).collect();
        assert_eq!(rules[1]["expr"][1], json!({"jump": {"target": "svc"}}));
        assert_eq!(rules[2]["expr"][1]["xt"]["name"], "LOG");
        assert_eq!(rules[3]["handle"], 1);
        assert_eq!(
            rules[3]["text"],
            "-A svc -p tcp -m tcp --dport 22 -j ACCEPT"
        );
        let key = (
            "ip".to_owned(),
            "filter (legacy)".to_owned(),
            "INPUT".to_owned(),
        );
        assert_eq!(texts[&key].len(), 2);
    }
}
