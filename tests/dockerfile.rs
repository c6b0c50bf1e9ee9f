//! The container image's `Dockerfile`, checked without a Docker engine: it is parsed into its
//! instructions (continuation lines joined) and build stages, and the properties the image
//! promises are asserted on them:
//!
//! - every base image is pinned to an exact version (or a digest), never `latest` or a floating
//!   major tag;
//! - the dependencies are compiled in a layer that only Cargo.toml and Cargo.lock feed, so a
//!   change to `src/` (or a new revision) reuses it and does not rebuild librdkafka; the stand-in
//!   sources it builds cover every target Cargo.toml declares, and the real build cannot reuse
//!   the stand-in's lagwatch artefacts;
//! - the runtime image carries the OCI labels, with the version and licence of Cargo.toml;
//! - it runs as the non-root user 65532, the user the Kubernetes manifests and the Helm chart
//!   expect;
//! - `.dockerignore` keeps `target/` and `.git` out of the build context.

use std::path::PathBuf;

use regex::Regex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of a Dockerfile: comments and blank lines dropped, lines ending in `\`
/// joined with the next (comment lines inside a continuation are skipped, as Docker does).
fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        });
    }
    assert!(
        current.trim().is_empty(),
        "Dockerfile ends in a continuation"
    );
    out
}

/// A build stage: its base image, its name (`AS name`) and its instructions after `FROM`.
#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    body: Vec<Instruction>,
}

fn stages(instructions: &[Instruction]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for i in instructions {
        if i.keyword == "FROM" {
            let words: Vec<&str> = i
                .args
                .split_whitespace()
                .filter(|w| !w.starts_with("--platform"))
                .collect();
            let name = match words.as_slice() {
                [_, kw, name] if kw.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                [_] => None,
                other => panic!("FROM {other:?}: expected `FROM image [AS name]`"),
            };
            out.push(Stage {
                image: words[0].to_owned(),
                name,
                body: Vec::new(),
            });
        } else {
            let stage = out
                .last_mut()
                .unwrap_or_else(|| panic!("{} before the first FROM", i.keyword));
            stage.body.push(i.clone());
        }
    }
    out
}

fn dockerfile() -> Vec<Stage> {
    stages(&parse(&read("Dockerfile")))
}

/// An image reference is pinned when it names a digest, or a tag with a full `X.Y` version and
/// no floating word (`latest`, `stable`, …).
fn is_pinned(image: &str) -> bool {
    if Regex::new(r"@sha256:[0-9a-f]{64}$")
        .expect("regex")
        .is_match(image)
    {
        return true;
    }
    let Some((_, tag)) = image.rsplit_once(':') else {
        return false;
    };
    let version = Regex::new(r"^v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$").expect("regex");
    version.is_match(tag)
        && !["latest", "stable", "current"]
            .iter()
            .any(|w| tag.contains(w))
}

#[test]
fn parser_joins_continuations_and_splits_stages() {
    let parsed = parse(
        "# comment\nFROM a:1.2 AS one\nRUN x \\\n  # inside\n  && y\n\nFROM scratch\nCOPY --from=one /a /a\n",
    );
    let keywords: Vec<&str> = parsed.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(keywords, ["FROM", "RUN", "FROM", "COPY"]);
    assert_eq!(parsed[1].args, "x  && y");
    let s = stages(&parsed);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].name.as_deref(), Some("one"));
    assert_eq!((s[1].image.as_str(), s[1].body.len()), ("scratch", 1));
}

#[test]
fn pinning_rules() {
    for pinned in [
        "rust:1.95.0-bookworm",
        "debian:12.11-slim",
        "gcr.io/distroless/cc-debian12:v1.2",
        &format!("rust:1@sha256:{}", "a".repeat(64)),
    ] {
        assert!(is_pinned(pinned), "{pinned} is pinned");
    }
    for floating in [
        "rust:1-bookworm",
        "debian:bookworm-slim",
        "debian",
        "debian:latest",
        "rust:1.95-latest",
    ] {
        assert!(!is_pinned(floating), "{floating} floats");
    }
}

#[test]
fn base_images_are_pinned() {
    let stages = dockerfile();
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    for (i, stage) in stages.iter().enumerate() {
        let earlier = stages[..i]
            .iter()
            .any(|s| s.name.as_deref() == Some(stage.image.as_str()));
        assert!(
            earlier || is_pinned(&stage.image),
            "FROM {} is not pinned to an exact version or digest",
            stage.image
        );
    }
}

/// The sources each instruction of a stage copies from the build context (not `--from=`).
fn context_sources(instruction: &Instruction) -> Vec<String> {
    if !matches!(instruction.keyword.as_str(), "COPY" | "ADD") {
        return Vec::new();
    }
    let words: Vec<&str> = instruction
        .args
        .split_whitespace()
        .filter(|w| !w.starts_with("--chown") && !w.starts_with("--chmod"))
        .collect();
    if words.iter().any(|w| w.starts_with("--from")) {
        return Vec::new();
    }
    let (_, sources) = words.split_last().expect("COPY has a destination");
    sources.iter().map(|s| (*s).to_owned()).collect()
}

/// Targets Cargo.toml declares with an explicit path or name: `[lib]`/`[[bin]]` paths and
/// `[[bench]]`/`[[example]]`/`[[test]]` default paths. Cargo refuses to load a manifest whose
/// declared target file is missing, so the dependency layer must create each of them.
fn declared_target_paths() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let mut out = Vec::new();
    let mut section = String::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match (section.as_str(), key.trim()) {
            ("lib" | "bin", "path") => out.push(value),
            ("bench", "name") => out.push(format!("benches/{value}.rs")),
            ("example", "name") => out.push(format!("examples/{value}.rs")),
            ("test", "name") => out.push(format!("tests/{value}.rs")),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn dependencies_are_built_in_a_layer_that_src_does_not_invalidate() {
    let stages = dockerfile();
    let build = stages
        .iter()
        .find(|s| {
            s.body
                .iter()
                .any(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        })
        .expect("a stage runs cargo build");
    let cargo_builds: Vec<usize> = build
        .body
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "RUN" && i.args.contains("cargo build"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        cargo_builds.len(),
        2,
        "two cargo builds: dependencies, then lagwatch"
    );
    let (deps, app) = (cargo_builds[0], cargo_builds[1]);

    // Docker reuses a layer while every instruction up to it is unchanged, COPY sources
    // included: before the dependency build only the manifest and the lock file may be copied,
    // and nothing that changes per commit may be declared.
    let before: Vec<String> = build.body[..deps]
        .iter()
        .flat_map(context_sources)
        .collect();
    assert_eq!(
        before,
        ["Cargo.toml", "Cargo.lock"],
        "only the manifest and lock file feed the dependency layer"
    );
    for i in &build.body[..deps] {
        assert!(
            !(matches!(i.keyword.as_str(), "ARG" | "ENV") && i.args.contains("REVISION")),
            "{} {} before the dependency build: every commit would rebuild librdkafka",
            i.keyword,
            i.args
        );
    }
    let dep_build = &build.body[deps].args;
    for path in declared_target_paths() {
        assert!(
            dep_build.contains(&format!("> {path}"))
                || dep_build.contains(&format!("touch {path}")),
            "the dependency layer does not create a stand-in for {path} (declared in Cargo.toml): \
             cargo would refuse the manifest"
        );
    }
    assert!(dep_build.contains("--locked"), "the lock file is honoured");
    // The stand-in's own artefacts go, so the real build never mistakes them for fresh ones
    // (COPY keeps the context's older modification times).
    assert!(
        dep_build.contains(".fingerprint/lagwatch-"),
        "the stand-in lagwatch fingerprints are removed: {dep_build}"
    );

    // Then the sources, then lagwatch.
    let after: Vec<String> = build.body[deps..app]
        .iter()
        .flat_map(context_sources)
        .collect();
    assert!(
        after.iter().any(|s| s.trim_end_matches('/') == "src"),
        "src/ is copied after the dependency build: {after:?}"
    );
    assert!(build.body[app].args.contains("--locked"));
    assert!(build.body[app].args.contains("--release"));
}

#[test]
fn runtime_image_has_oci_labels_and_runs_as_non_root() {
    let stages = dockerfile();
    let runtime = stages.last().expect("a runtime stage");
    let labels: String = runtime
        .body
        .iter()
        .filter(|i| i.keyword == "LABEL")
        .map(|i| i.args.clone())
        .collect::<Vec<_>>()
        .join(" ");
    let label = |key: &str| -> String {
        let re = Regex::new(&format!(r#"{}="([^"]*)""#, regex::escape(key))).expect("regex");
        re.captures(&labels)
            .map(|c| c[1].to_owned())
            .unwrap_or_else(|| panic!("no LABEL {key} in the runtime stage"))
    };
    let manifest = read("Cargo.toml");
    let field = |name: &str| {
        Regex::new(&format!(r#"(?m)^{name} = "([^"]+)""#))
            .expect("regex")
            .captures(&manifest)
            .map(|c| c[1].to_owned())
            .unwrap_or_else(|| panic!("Cargo.toml has no {name}"))
    };
    assert_eq!(label("org.opencontainers.image.title"), "lagwatch");
    assert_eq!(label("org.opencontainers.image.licenses"), field("license"));
    assert_eq!(
        label("org.opencontainers.image.description"),
        field("description")
    );
    assert_eq!(
        label("org.opencontainers.image.revision"),
        "${LAGWATCH_REVISION}"
    );
    assert_eq!(
        label("org.opencontainers.image.version"),
        "${LAGWATCH_VERSION}"
    );
    let version_arg = runtime
        .body
        .iter()
        .find(|i| i.keyword == "ARG" && i.args.starts_with("LAGWATCH_VERSION="))
        .expect("ARG LAGWATCH_VERSION in the runtime stage");
    assert_eq!(
        version_arg.args,
        format!("LAGWATCH_VERSION={}", field("version")),
        "the version label defaults to Cargo.toml's version"
    );
    assert!(
        runtime
            .body
            .iter()
            .any(|i| i.keyword == "ARG" && i.args.starts_with("LAGWATCH_REVISION")),
        "the runtime stage declares LAGWATCH_REVISION for its label"
    );
    assert_eq!(
        label("org.opencontainers.image.base.name"),
        format!("docker.io/library/{}", runtime.image),
        "base.name names the runtime base image"
    );

    let users: Vec<&Instruction> = runtime
        .body
        .iter()
        .filter(|i| i.keyword == "USER")
        .collect();
    let last_user = users.last().expect("a USER instruction");
    assert_eq!(
        last_user.args, "65532:65532",
        "runs as 65532, the runAsUser of deploy/"
    );
    let position = |i: &Instruction| {
        runtime
            .body
            .iter()
            .position(|x| std::ptr::eq(x, i))
            .expect("in the stage")
    };
    let user_at = position(last_user);
    assert!(
        runtime.body[user_at..]
            .iter()
            .all(|i| !matches!(i.keyword.as_str(), "RUN" | "COPY" | "ADD")),
        "nothing runs or is added as root after USER"
    );
    assert!(
        runtime
            .body
            .iter()
            .any(|i| i.keyword == "RUN" && i.args.contains("--uid 65532")),
        "the user exists in /etc/passwd"
    );
    let entrypoint = runtime
        .body
        .iter()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert_eq!(entrypoint.args, r#"["/usr/local/bin/lagwatch"]"#);
    assert!(runtime
        .body
        .iter()
        .any(|i| i.keyword == "EXPOSE" && i.args == "9308"));
}

#[test]
fn dockerignore_keeps_target_and_git_out_of_the_context() {
    let ignore = read(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // Last matching rule wins; `*` first, then exceptions, is the allow-list form.
    let excluded = |path: &str| {
        let mut out = false;
        for rule in &rules {
            let (negated, pattern) = match rule.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, *rule),
            };
            let pattern = pattern.trim_end_matches('/');
            let matches =
                pattern == "*" || pattern == path || path.starts_with(&format!("{pattern}/"));
            if matches {
                out = !negated;
            }
        }
        out
    };
    for path in ["target/debug/lagwatch", ".git/HEAD", "tests/golden.rs"] {
        assert!(excluded(path), ".dockerignore must exclude {path}");
    }
    // Everything the Dockerfile copies from the context stays in it.
    for stage in dockerfile() {
        for i in &stage.body {
            for source in context_sources(i) {
                let probe = if source.ends_with('/') || !source.contains('.') {
                    format!("{}/main.rs", source.trim_end_matches('/'))
                } else {
                    source.clone()
                };
                assert!(
                    !excluded(&probe),
                    ".dockerignore excludes {source}, which the Dockerfile copies"
                );
            }
        }
    }
}
