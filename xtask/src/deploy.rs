//! The deployment files, checked: the systemd unit verified by `systemd-analyze verify` and
//! scored by `systemd-analyze security --offline=yes` (it must stay "OK" or better), the
//! Kubernetes manifest linted by yamllint; and both grant exactly the capabilities the README
//! documents and the capability test runs with (`DOCUMENTED_CAPS`).
use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{DOCUMENTED_CAPS, setup::run};

const UNIT: &str = "deploy/systemd/portwatch.service";
const MANIFEST: &str = "deploy/kubernetes/portwatch.yaml";
/// `systemd-analyze security`'s exposure, times ten, above which the unit fails: "OK" ends at 4.9.
const MAX_EXPOSURE: &str = "49";

/// The documented capabilities, lower case without `CAP_`.
fn documented() -> Vec<String> {
    let mut caps: Vec<String> = DOCUMENTED_CAPS
        .split(',')
        .map(|c| c.trim_start_matches('+').to_owned())
        .collect();
    caps.sort();
    caps
}

fn normalised<'a>(caps: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut caps: Vec<String> = caps
        .map(|c| {
            c.trim_matches(|ch: char| ch == '"' || ch == ',' || ch.is_whitespace())
                .trim_start_matches("CAP_")
                .to_lowercase()
        })
        .filter(|c| !c.is_empty())
        .collect();
    caps.sort();
    caps
}

pub fn check(root: &Path, portwatch: &Path) -> Result<()> {
    let unit = fs::read_to_string(root.join(UNIT)).context(UNIT)?;
    for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
        let line = unit
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("{UNIT}: no {key}"))?;
        let caps = normalised(line[key.len()..].split_whitespace());
        if caps != documented() {
            bail!(
                "{UNIT}: {key} grants {caps:?}, the README documents {:?}",
                documented()
            );
        }
    }
    // verify wants ExecStart's program to exist: the same unit, with the binary just built.
    let dir = root.join("target/deploy-check");
    fs::create_dir_all(&dir)?;
    let copy = dir.join("portwatch.service");
    let portwatch = portwatch.canonicalize().context("the portwatch binary")?;
    fs::write(
        &copy,
        unit.replace("/usr/local/bin/portwatch", &portwatch.display().to_string()),
    )?;
    eprintln!("xtask: systemd-analyze verify {UNIT}");
    run(Command::new("systemd-analyze").arg("verify").arg(&copy))?;
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={MAX_EXPOSURE}"))
        .arg(root.join(UNIT))
        .output()
        .context("systemd-analyze security")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let verdict = text
        .lines()
        .rev()
        .find(|l| l.contains("Overall exposure"))
        .unwrap_or("no verdict");
    eprintln!(
        "xtask: systemd-analyze security {UNIT}: {}",
        verdict.trim_start_matches(|c: char| !c.is_alphanumeric())
    );
    if !out.status.success() {
        bail!("{UNIT}: exposure above {MAX_EXPOSURE}/100 ({verdict})");
    }

    let manifest = fs::read_to_string(root.join(MANIFEST)).context(MANIFEST)?;
    eprintln!("xtask: yamllint {MANIFEST}");
    run(Command::new("yamllint")
        .args([
            "-s",
            "-d",
            "{extends: default, rules: {line-length: {max: 110}, document-start: disable}}",
        ])
        .arg(root.join(MANIFEST)))?;
    let added = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("add: ["))
        .with_context(|| format!("{MANIFEST}: no capabilities added"))?;
    let caps = normalised(added.trim_end_matches(']').split(','));
    if caps != documented() {
        bail!(
            "{MANIFEST}: adds {caps:?}, the README documents {:?}",
            documented()
        );
    }
    for needed in [
        "hostPID: true",
        "privileged: false",
        "drop: [\"ALL\"]",
        "readOnlyRootFilesystem: true",
    ] {
        if !manifest.contains(needed) {
            bail!("{MANIFEST}: no `{needed}`");
        }
    }
    Ok(())
}
