//! `cargo xtask fuzz`: the property tests of portwatch's parsers (`portwatch/src/fuzz.rs`) run
//! for minutes each instead of `cargo test`'s 256 cases, in rounds of `CASES_PER_ROUND`, each
//! with a fresh random seed, until a target's time is spent or it fails. Prints the case
//! counts.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

const CASES_PER_ROUND: u64 = 20_000;

pub fn run(root: &Path, minutes: f64, only: Option<&str>) -> Result<()> {
    let targets: Vec<String> = cargo_test(root, &["fuzz::", "--", "--list"], 0)?
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|t| only.is_none_or(|o| t.contains(o)))
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("no fuzz target matches");
    }
    let budget = Duration::from_secs_f64(minutes * 60.0);
    for target in &targets {
        let started = Instant::now();
        let mut cases = 0;
        while started.elapsed() < budget {
            cargo_test(root, &[target, "--", "--exact"], CASES_PER_ROUND)
                .with_context(|| format!("{target} failed after {cases} passing cases"))?;
            cases += CASES_PER_ROUND;
        }
        println!(
            "xtask: fuzz: {target}: {cases} cases in {:.0} s, no failure",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `cargo test --release -p portwatch --lib ARGS` with `cases` cases per property (0: the
/// default); its stdout, or an error with its output.
fn cargo_test(root: &Path, args: &[&str], cases: u64) -> Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--release",
        "--quiet",
        "--package",
        "portwatch",
        "--lib",
    ])
    .args(args)
    .current_dir(root);
    if cases > 0 {
        cmd.env("FUZZ_CASES", cases.to_string());
    }
    let out = cmd.output().context("running cargo test")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}
