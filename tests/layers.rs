//! The layer rule of `docs/architecture.md`, checked on the source: every top-level module of
//! `src/` imports only from the modules below it in `LAYERS`, and the model imports nothing
//! outside itself (it is pure: no Kafka, no configuration, no rendering).

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom first: a module may use the modules listed before it, never those after it. The two
/// entry points come last: `lagwatch lag` shares the poll with the daemon through `poll`, not
/// through `app`.
const LAYERS: &[&str] = &[
    "model",
    "config",
    "kafka",
    "poll",
    "cluster_state",
    "metrics",
    "human",
    "status_page",
    "http",
    "lag_command",
    "app",
];

/// `(module, file, imported module)` for every `crate::X` path in `src/` (comments skipped).
fn imports() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let path_re = regex::Regex::new(r"crate::([a-z_]+)").expect("regex");
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_string())
            .expect("module name");
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for c in path_re.captures_iter(code) {
                found.push((
                    module.clone(),
                    relative.display().to_string(),
                    c[1].to_string(),
                ));
            }
        }
    }
    found
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let found = imports();
    assert!(
        found.len() > 20,
        "the scan found only {} imports: is it reading src/?",
        found.len()
    );
    let mut wrong = BTreeSet::new();
    for (module, file, imported) in &found {
        let Some(own) = rank(module) else {
            wrong.insert(format!(
                "{file}: module `{module}` has no place in LAYERS (tests/layers.rs)"
            ));
            continue;
        };
        let Some(theirs) = rank(imported) else {
            wrong.insert(format!("{file}: imports unknown module `{imported}`"));
            continue;
        };
        let pure_model_violation = module == "model" && imported != "model";
        if theirs > own || pure_model_violation {
            wrong.insert(format!(
                "{file}: `{module}` imports `crate::{imported}`, a layer above it"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_layer_list_names_every_module_of_the_crate() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    let listed: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(declared, listed);
}
