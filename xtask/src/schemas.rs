//! The official format definitions the tests check portwatch's ECS and OCSF lines against
//! (`tests/schemas/check.py`), fetched from the package registries into `target/schemas/`
//! once (idempotent):
//! - OCSF 1.8.0: the `ocsf-json-schema` package (PyPI) bundles the schema server's 1.8.0 export
//!   and generates a JSON Schema per class and profiles from it; `jsonschema` validates.
//! - ECS 9.4.0: Elastic's `@elastic/ecs` package (npm), generated from the ECS repository's
//!   field definitions; dumped here as one JSON field list (name, type, normalisation, allowed
//!   values). It lacks some reused field sets of ecs_flat.yml (process.group.*), which only
//!   makes the check stricter.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::setup::{apt_install, output, run};

const OCSF_PACKAGES: &[&str] = &["ocsf-json-schema==1.2.0", "jsonschema==4.26.0", "PyYAML"];
const ECS_PACKAGE: &str = "@elastic/ecs@9.4.0";
pub const ECS_FIELDS: &str = "ecs-9.4.0-fields.json";

/// Where the definitions are (`PORTWATCH_SCHEMAS` for the tests).
pub fn dir(root: &Path) -> PathBuf {
    root.join("target/schemas")
}

pub fn ensure(root: &Path) -> Result<()> {
    let dir = dir(root);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let python = dir.join("venv/bin/python");
    let ready = |py: &Path| {
        output(Command::new(py).args(["-c", "import ocsf_json_schema, jsonschema, yaml"])).is_some()
    };
    if !ready(&python) {
        apt_install(&["python3-venv"])?;
        eprintln!(
            "xtask: installing the OCSF checker: {}",
            OCSF_PACKAGES.join(" ")
        );
        run(Command::new("/usr/bin/python3")
            .args(["-m", "venv", "--clear"])
            .arg(dir.join("venv")))?;
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q"])
            .args(OCSF_PACKAGES))?;
    }
    let fields = dir.join(ECS_FIELDS);
    if !fields.exists() {
        if output(Command::new("npm").arg("--version")).is_none() {
            apt_install(&["npm"])?;
        }
        eprintln!("xtask: fetching ECS's field definitions ({ECS_PACKAGE})");
        let unpacked = dir.join("ecs-package");
        let _ = fs::remove_dir_all(&unpacked);
        fs::create_dir_all(&unpacked)?;
        run(Command::new("npm")
            .args(["pack", "--silent", ECS_PACKAGE, "--pack-destination"])
            .arg(&unpacked))?;
        let tarball = fs::read_dir(&unpacked)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .context("npm pack left no tarball")?;
        run(Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked))?;
        run(Command::new("node")
            .args(["-e", DUMP_FIELDS])
            .arg(unpacked.join("package/generated"))
            .arg(&fields))?;
    }
    Ok(())
}

/// The flat field list, plus the fields the nested list has beyond it (reused field sets such
/// as process.parent.*), keeping what the checker reads.
const DUMP_FIELDS: &str = r#"
const [dir, out] = process.argv.slice(1);
const flat = require(dir + "/ecs_flat.js").EcsFlat;
const nested = require(dir + "/ecs_nested.js").EcsNested;
const keep = f => ({
  type: f.type,
  normalize: f.normalize || [],
  allowed_values: (f.allowed_values || []).map(a => ({
    name: a.name, expected_event_types: a.expected_event_types || [],
  })),
});
const fields = {};
for (const [name, f] of Object.entries(flat)) fields[name] = keep(f);
for (const set of Object.values(nested))
  for (const [name, f] of Object.entries(set.fields)) if (!(name in fields)) fields[name] = keep(f);
require("fs").writeFileSync(out, JSON.stringify(fields));
"#;
