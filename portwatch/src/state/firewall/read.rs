//! Reading the calling thread's namespace's firewall: its nftables ruleset (`nft -j`), the
//! saved text of iptables-nft rules whose `xt` matches nft cannot show, and the legacy
//! iptables tables loaded there (`iptables-legacy-save`), as one ruleset.
use std::{
    fs,
    io::Read,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{Ruleset, legacy, xt};

/// Where the tools usually are: a daemon's PATH often lacks the sbin directories.
fn tool(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// How long a tool may take: the stream waits for it (a ruleset of thousands of rules lists in
/// well under a second).
const PATIENCE: Duration = Duration::from_secs(3);

/// Runs `path` with `args`, killed if it takes longer than `PATIENCE`: a tool stuck on a lock
/// must not stall the stream behind it.
fn run(path: &Path, args: &[&str]) -> Result<Output, String> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name} could not be run: {e}"))?;
    // Read on threads, so a large output cannot block the tool on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{name} did not answer within {} s",
                    PATIENCE.as_secs()
                ));
            }
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `tool`'s standard output; else why not (not installed, or its first line on stderr).
fn output(name: &str) -> Result<String, String> {
    let path = tool(name).ok_or_else(|| format!("{name} is not installed"))?;
    let out = run(&path, &[])?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    Err(format!("{name}: {}", first.trim()))
}

/// The legacy iptables tables loaded in this namespace, per family.
fn legacy_tables() -> [(&'static str, &'static str, Vec<String>); 2] {
    let names = |f: &str| {
        fs::read_to_string(Path::new("/proc/thread-self/net").join(f))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    [
        ("ip", "iptables-legacy-save", names("ip_tables_names")),
        ("ip6", "ip6tables-legacy-save", names("ip6_tables_names")),
    ]
}

pub fn ruleset() -> Result<Ruleset, String> {
    let mut items = nft()?;
    let mut texts = xt::Texts::new();
    // iptables-nft rules with matches nft cannot show: their saved text says what they test.
    let has_xt = items.iter().any(|i| {
        i.pointer("/rule/expr")
            .and_then(Value::as_array)
            .is_some_and(|e| e.iter().any(|s| s.get("xt").is_some()))
    });
    if has_xt {
        for (tool, family) in [("iptables-nft-save", "ip"), ("ip6tables-nft-save", "ip6")] {
            if let Ok(text) = output(tool) {
                xt::parse_save(&text, family, &mut texts);
            }
        }
    }
    for (family, save, tables) in legacy_tables() {
        if tables.is_empty() {
            continue;
        }
        let text = output(save).map_err(|why| {
            let fix = if why.contains("not installed") {
                "apt-get install iptables"
            } else if why.contains("Permission denied") {
                // A raw socket, and the root-only /proc/net/ip_tables_names.
                "reading them needs CAP_NET_RAW and CAP_DAC_READ_SEARCH, or root"
            } else {
                "their rules are not read"
            };
            format!(
                "legacy iptables tables are loaded ({}): {fix} ({why})",
                tables.join(", ")
            )
        })?;
        items.extend(legacy::items(&text, family, &mut texts));
    }
    Ok(Ruleset::new(&serde_json::json!({ "nftables": items }))?.with_xt(texts))
}

/// The nftables ruleset's items.
fn nft() -> Result<Vec<Value>, String> {
    let nft = tool("nft").ok_or(
        "nft is not installed (apt-get install nftables): the firewall rules are not read",
    )?;
    let out = run(&nft, &["-j", "list", "ruleset"])?;
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
    let mut json: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("nft's JSON could not be read: {e}"))?;
    match json.get_mut("nftables").map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err("no `nftables` array in nft's output".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_hangs_is_killed_and_said_so() {
        let out = run(Path::new("/bin/echo"), &["hi"]).unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert!(out.status.success());
        let err = run(Path::new("/bin/sleep"), &["60"]).unwrap_err();
        assert_eq!(err, "sleep did not answer within 3 s");
    }
}
