//! The stages' order, checked: every production file's `crate::` paths (in `use` lines, braces
//! included, and inline) may name its own stage and the stages below it only. Test code (files
//! named `tests.rs`, `*_tests.rs`, the test kits, and a file's inline `#[cfg(test)] mod` at its
//! end) may reach anywhere. Not read: `super::` paths that climb to the crate root (none do).
use std::{collections::BTreeSet, fs, path::Path};

/// Bottom first. A stage may import its own layer and those before it.
const LAYERS: [&[&str]; 12] = [
    &["error", "clock", "files", "trusted"],
    &["model"],
    &["host"],
    &["kernel"],
    &["enrich"],
    &["filter"],
    &["state"],
    &["judge"],
    &["output"],
    &["metrics"],
    &["pipeline"],
    &["cli", "config", "cmd"],
];

/// Files that are tests whatever their place.
const TEST_FILES: [&str; 3] = ["testkit.rs", "fuzz.rs", "golden.rs"];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level modules a source text names through `crate::`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(body) = rest.strip_prefix('{') {
            // `use crate::{a::b, c::{d, e}}`: the names at the braces' top level.
            let (mut depth, mut start) = (0, 0);
            for (j, ch) in body.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(first_name(&body[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_name(&body[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(first_name(rest));
        }
    }
    found.remove("");
    found
}

fn first_name(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The production part of a file: without its test modules' declarations (`mod tests;`, whose
/// files are skipped by name) and up to an inline test module (`mod tests {`, which ends a file).
fn production(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            match lines.next() {
                Some(m) if m.starts_with("mod ") && m.trim_end().ends_with(';') => continue,
                Some(m) if m.starts_with("mod ") => break,
                Some(other) => {
                    out.push_str(other);
                    out.push('\n');
                    continue;
                }
                None => break,
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import that goes up the stack: (file, its stage, the stage it names).
fn violations(src: &Path) -> Vec<(String, String, String)> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut bad = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy();
        if name == "tests.rs" || name.ends_with("_tests.rs") || TEST_FILES.contains(&&*name) {
            continue;
        }
        let module = first_name(&rel);
        let Some(own) = layer(&module) else {
            continue; // lib.rs, main.rs, layering.rs
        };
        let text = fs::read_to_string(&path).unwrap();
        for imported in imports(&production(&text)) {
            let Some(theirs) = layer(&imported) else {
                continue;
            };
            if theirs > own {
                bad.push((rel.clone(), module.clone(), imported));
            }
        }
    }
    bad.sort();
    bad
}

#[test]
fn every_stage_imports_only_itself_and_the_stages_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports up the stack (stage order: {LAYERS:?}):\n{}",
        bad.iter()
            .map(|(f, a, b)| format!("  {f}: {a} imports {b}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(layer(name).is_some(), "{name} has no place in LAYERS");
        }
    }
}

#[test]
fn the_parser_finds_braced_nested_and_inline_imports() {
    let text = "use crate::{\n    clock::Clock,\n    model::{a::B, c},\n    output,\n};\nfn f() { crate::judge::x(); }\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["clock", "judge", "model", "output"]);
    let upward = "use crate::{model::x, pipeline::y};\n";
    assert!(imports(upward).contains("pipeline"));
    // A test module's declaration hides nothing after it; an inline one ends the file.
    let declared = "#[cfg(test)]\nmod tests;\nuse crate::pipeline::x;\n#[cfg(test)]\nmod more {\nuse crate::cmd::y;\n}\n";
    let seen = imports(&production(declared));
    assert!(
        seen.contains("pipeline") && !seen.contains("cmd"),
        "{seen:?}"
    );
}
