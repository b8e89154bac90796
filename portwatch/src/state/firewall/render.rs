//! Rules from nftables' JSON back into the text `nft list ruleset` shows, near enough for a
//! person to find the rule: `tcp dport { 22, 8000-8100 } ip saddr 10.0.0.0/8 accept`.
use serde_json::Value;

/// The rule's statements as nft text.
pub fn rule(exprs: &[Value]) -> String {
    exprs
        .iter()
        .map(statement)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn statement(s: &Value) -> String {
    let Some((name, body)) = s.as_object().and_then(|o| o.iter().next()) else {
        return String::new();
    };
    match name.as_str() {
        "match" => {
            let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
            let l = body.get("left").map(value).unwrap_or_default();
            let r = body.get("right").map(value).unwrap_or_default();
            match op {
                "==" | "in" => format!("{l} {r}"),
                op => format!("{l} {op} {r}"),
            }
        }
        "jump" | "goto" => {
            let target = body.get("target").and_then(Value::as_str).unwrap_or("?");
            format!("{name} {target}")
        }
        "reject" => match body.get("type").and_then(Value::as_str) {
            Some(t) => format!("reject with {t}"),
            None => "reject".into(),
        },
        "vmap" => {
            let key = body.get("key").map(value).unwrap_or_default();
            let data = body.get("data").map(value).unwrap_or_default();
            format!("{key} vmap {data}")
        }
        "xt" => {
            let kind = body.get("type").and_then(Value::as_str).unwrap_or("?");
            let what = body.get("name").and_then(Value::as_str).unwrap_or("?");
            format!("xt {kind} {what}")
        }
        other => other.to_owned(),
    }
}

const UNQUALIFIED_META: &[&str] = &["iif", "iifname", "oif", "oifname", "mark", "skuid", "skgid"];

/// A value or left-hand expression.
fn value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value).collect();
            // A pair in a map: key and verdict.
            let verdict = |v: &Value| {
                v.as_object()
                    .and_then(|o| o.keys().next())
                    .is_some_and(|k| {
                        matches!(
                            k.as_str(),
                            "accept" | "drop" | "jump" | "goto" | "return" | "continue"
                        )
                    })
            };
            if items.len() == 2 && verdict(&items[1]) {
                return format!("{} : {}", parts[0], parts[1]);
            }
            // Flags, as in `ct state established,related`.
            parts.join(",")
        }
        Value::Object(o) => {
            let Some((k, b)) = o.iter().next() else {
                return String::new();
            };
            let field = |name: &str| b.get(name).map(value).unwrap_or_default();
            match k.as_str() {
                "payload" => format!("{} {}", field("protocol"), field("field")),
                // nft shows these meta keys without `meta`.
                "meta" if UNQUALIFIED_META.contains(&field("key").as_str()) => field("key"),
                "meta" | "ct" | "rt" | "socket" => format!("{k} {}", field("key")),
                "fib" => format!(
                    "fib {} {}",
                    field("flags").replace(", ", " . "),
                    field("result")
                ),
                "set" => {
                    let items = b
                        .as_array()
                        .map_or_else(|| vec![value(b)], |i| i.iter().map(value).collect());
                    format!("{{ {} }}", items.join(", "))
                }
                "range" => match b.as_array().map(Vec::as_slice) {
                    Some([lo, hi]) => format!("{}-{}", value(lo), value(hi)),
                    _ => "?".into(),
                },
                "prefix" => format!("{}/{}", field("addr"), field("len")),
                "concat" => b.as_array().map_or_else(String::new, |items| {
                    items.iter().map(value).collect::<Vec<_>>().join(" . ")
                }),
                "elem" => field("val"),
                "jump" | "goto" => format!("{k} {}", field("target")),
                verdict @ ("accept" | "drop" | "return" | "continue") => verdict.to_owned(),
                other => other.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_as_nft_lists_them() {
        let r = json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                "right": {"set": [7000, {"range": [9000, 9100]}]}}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}},
            {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
            {"counter": {"packets": 0, "bytes": 0}},
            {"accept": null}
        ]);
        assert_eq!(
            rule(r.as_array().unwrap()),
            "tcp dport { 7000, 9000-9100 } ip saddr 10.0.0.0/8 iifname != lo counter accept"
        );
        let v = json!([{"vmap": {"key": {"ct": {"key": "state"}},
            "data": {"set": [["established", {"accept": null}], ["invalid", {"drop": null}]]}}}]);
        assert_eq!(
            rule(v.as_array().unwrap()),
            "ct state vmap { established : accept, invalid : drop }"
        );
        let x = json!([{"xt": {"type": "match", "name": "conntrack"}}, {"jump": {"target": "x"}}]);
        assert_eq!(rule(x.as_array().unwrap()), "xt match conntrack jump x");
    }
}
