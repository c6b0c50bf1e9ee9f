//! Checks of the bundled Grafana dashboards (`dashboards/*.json`): current schema, no `__inputs`
//! and no hard-coded data source (every panel and target uses the `${datasource}` variable), the
//! `datasource`, `cluster`, `group` and `topic` variables, a unit on every panel, every metric a
//! query uses documented in `docs/metrics.md`, and every query valid PromQL (promtool parses it).
//!
//! `cargo test --test dashboards -- --nocapture` also prints every (dashboard, panel, expr).
//! Whether each query returns data against a live lagwatch is checked end to end in
//! `tests/e2e_prometheus.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use regex::Regex;
use serde_json::Value;

/// The dashboards PRODUCT.md §8 promises, by file name.
const EXPECTED: [&str; 3] = [
    "lagwatch-overview.json",
    "lagwatch-group.json",
    "lagwatch-exporter.json",
];

/// Grafana unit ids the dashboards may use (from Grafana's value formats).
const UNITS: &[&str] = &[
    "s",
    "ms",
    "short",
    "none",
    "percentunit",
    "percent",
    "mps",
    "reqps",
    "ops",
    "bytes",
    "dateTimeFromNow",
];

const DATASOURCE_UID: &str = "${datasource}";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every dashboard as (file name, JSON), sorted by name.
fn dashboards() -> Vec<(String, Value)> {
    let dir = root().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, json)
        })
        .collect()
}

/// Every panel, with the panels nested in rows, rows excluded.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            if p["type"] == "row" {
                walk(&p["panels"], out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn title(panel: &Value) -> &str {
    panel["title"].as_str().unwrap_or("<untitled>")
}

/// Every query: (dashboard file, panel title, expr).
fn queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (file, dash) in dashboards() {
        for panel in panels(&dash) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((file.clone(), title(panel).to_owned(), expr.to_owned()));
                }
            }
        }
    }
    out
}

fn is_our_datasource(ds: &Value) -> bool {
    ds["type"] == "prometheus" && ds["uid"] == DATASOURCE_UID
}

/// Families documented in docs/metrics.md: the backquoted names in the first cell of a table
/// row, with the type from the second cell.
fn documented_families() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
    let name = Regex::new(r"`((?:kafka|lagwatch)_[a-z0-9_]+)`").expect("regex");
    let mut out = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').collect();
        let (Some(first), Some(kind)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        for c in name.captures_iter(first) {
            out.insert(c[1].to_owned(), kind.trim().to_owned());
        }
    }
    out
}

/// Metric names used in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = Regex::new(r"(?:^|[^A-Za-z0-9_:$])((?:kafka|lagwatch)_[a-z0-9_]+)").expect("regex");
    re.captures_iter(expr).map(|c| c[1].to_owned()).collect()
}

/// The documented family a sample name belongs to: the name itself, a histogram's
/// `_bucket`/`_count`/`_sum` series, or a counter documented without `_total`.
fn family_of<'a>(name: &str, documented: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some((family, _)) = documented.get_key_value(name) {
        return Some(family);
    }
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some((family, kind)) = documented.get_key_value(base) {
                if kind.contains("histogram") {
                    return Some(family);
                }
            }
        }
    }
    let base = name.strip_suffix("_total")?;
    match documented.get_key_value(base) {
        Some((family, kind)) if kind.contains("counter") => Some(family),
        _ => None,
    }
}

/// Grafana's variables replaced the way a user with "All" selected would see them.
fn substitute(expr: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m");
    for var in ["cluster", "group", "topic"] {
        e = e
            .replace(&format!("${{{var}}}"), ".*")
            .replace(&format!("${var}"), ".*");
    }
    e
}

#[test]
fn list_dashboard_queries() {
    let all = queries();
    for (file, title, expr) in &all {
        println!("{file}\t{title}\t{expr}");
    }
    assert!(!all.is_empty(), "no queries in dashboards/");
}

#[test]
fn the_three_dashboards_exist_with_unique_uids() {
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    for expected in EXPECTED {
        assert!(
            names.contains(&expected),
            "dashboards/{expected} is missing"
        );
    }
    let mut uids = BTreeSet::new();
    for (file, dash) in &all {
        let uid = dash["uid"].as_str().unwrap_or("");
        assert!(!uid.is_empty() && uid.len() <= 40, "{file}: uid {uid:?}");
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(
            !dash["title"].as_str().unwrap_or("").is_empty(),
            "{file}: title"
        );
        assert_eq!(
            dash["tags"]
                .as_array()
                .map(|t| t.contains(&"lagwatch".into())),
            Some(true),
            "{file}: tagged lagwatch, so the dashboard links find it"
        );
    }
}

#[test]
fn dashboards_use_the_current_schema_without_inputs() {
    for (file, dash) in dashboards() {
        let version = dash["schemaVersion"].as_u64().unwrap_or(0);
        assert!(version >= 39, "{file}: schemaVersion {version} < 39");
        assert!(dash.get("__inputs").is_none(), "{file}: has __inputs");
        assert!(dash.get("__requires").is_none(), "{file}: has __requires");
        assert!(
            dash["id"].is_null(),
            "{file}: id must be null so imports do not collide"
        );
    }
}

#[test]
fn templating_has_datasource_cluster_group_and_topic() {
    for (file, dash) in dashboards() {
        let vars = dash["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let var = |name: &str| {
            vars.iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{file}: no template variable {name}"))
        };
        let ds = var("datasource");
        assert_eq!(ds["type"], "datasource", "{file}: datasource variable type");
        assert_eq!(
            ds["query"], "prometheus",
            "{file}: datasource variable query"
        );
        for name in ["cluster", "group", "topic"] {
            let v = var(name);
            assert_eq!(v["type"], "query", "{file}: {name} is a query variable");
            assert!(
                is_our_datasource(&v["datasource"]),
                "{file}: variable {name} must query ${{datasource}}"
            );
            let definition = v["definition"].as_str().unwrap_or("");
            let query = v["query"]["query"].as_str().or(v["query"].as_str());
            assert!(
                definition.starts_with("label_values(")
                    && definition.ends_with(&format!(", {name})")),
                "{file}: {name} definition {definition:?} is not label_values(…, {name})"
            );
            assert_eq!(query, Some(definition), "{file}: {name} query = definition");
        }
    }
}

#[test]
fn every_panel_has_a_unit_and_the_datasource_variable() {
    for (file, dash) in dashboards() {
        let mut ids = BTreeSet::new();
        let all = panels(&dash);
        assert!(!all.is_empty(), "{file}: no panels");
        for panel in all {
            let t = title(panel);
            assert!(
                ids.insert(panel["id"].as_u64()),
                "{file} / {t}: duplicate id"
            );
            assert!(
                !panel["description"].as_str().unwrap_or("").is_empty(),
                "{file} / {t}: description (the panel's (i) tooltip)"
            );
            let unit = panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or("");
            assert!(
                UNITS.contains(&unit),
                "{file} / {t}: fieldConfig.defaults.unit {unit:?} is not one of {UNITS:?}"
            );
            assert!(
                is_our_datasource(&panel["datasource"]),
                "{file} / {t}: datasource must be {{type: prometheus, uid: ${{datasource}}}}, is {}",
                panel["datasource"]
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{file} / {t}: no targets");
            for target in &targets {
                assert!(
                    is_our_datasource(&target["datasource"]),
                    "{file} / {t}: target datasource {}",
                    target["datasource"]
                );
                assert!(
                    !target["expr"].as_str().unwrap_or("").trim().is_empty(),
                    "{file} / {t}: empty expr"
                );
            }
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
            assert!(
                matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
                "{file} / {t}: gridPos {grid}"
            );
        }
    }
}

/// Any `datasource` anywhere (panels, targets, variables, annotations) is the variable: a
/// hard-coded uid breaks the dashboard on every other Grafana.
#[test]
fn no_hard_coded_datasource_uid() {
    fn walk(v: &Value, path: &str, file: &str) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if k == "datasource" {
                        match child {
                            Value::Object(_) => assert!(
                                child["uid"] == DATASOURCE_UID,
                                "{file}: {path}.datasource = {child}"
                            ),
                            Value::String(s) => {
                                assert_eq!(s, DATASOURCE_UID, "{file}: {path}.datasource")
                            }
                            _ => {}
                        }
                    }
                    walk(child, &format!("{path}.{k}"), file);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), file);
                }
            }
            _ => {}
        }
    }
    for (file, dash) in dashboards() {
        walk(&dash, "", &file);
    }
}

#[test]
fn every_metric_in_a_query_is_documented() {
    let documented = documented_families();
    assert!(
        documented.contains_key("kafka_consumergroup_lag_messages"),
        "could not read the family tables of docs/metrics.md"
    );
    let mut missing = BTreeSet::new();
    let mut used = BTreeSet::new();
    for (file, title, expr) in queries() {
        let names = metric_names(&expr);
        assert!(
            !names.is_empty() || expr.contains("vector("),
            "{file} / {title}: no lagwatch metric in {expr}"
        );
        for name in names {
            match family_of(&name, &documented) {
                Some(family) => {
                    used.insert(family.to_owned());
                }
                None => {
                    missing.insert(format!("{name} ({file} / {title})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics used by dashboards but not documented in docs/metrics.md:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
    println!("families used by the dashboards: {used:?}");
}

#[test]
fn metric_names_map_to_families() {
    let documented: BTreeMap<String, String> = [
        ("lagwatch_poll_duration_seconds", "histogram"),
        ("lagwatch_poll_errors_total", "counter"),
        ("kafka_consumergroup_rewinds_total", "counter"),
        ("kafka_topic_latest_offsets", "gauge"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let names = metric_names(
        "histogram_quantile(0.9, rate(lagwatch_poll_duration_seconds_bucket{cluster=~\"$cluster\"}[$__rate_interval])) \
         / lagwatch_poll_errors_total + lagwatch:time_lag_slo_seconds",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "lagwatch_poll_duration_seconds_bucket",
            "lagwatch_poll_errors_total"
        ]
    );
    let f = |n| family_of(n, &documented);
    assert_eq!(
        f("lagwatch_poll_duration_seconds_count"),
        Some("lagwatch_poll_duration_seconds")
    );
    assert_eq!(
        f("lagwatch_poll_errors_total"),
        Some("lagwatch_poll_errors_total")
    );
    // `_sum` only maps back for histograms: a gauge's `_sum` is a different, unknown name.
    assert_eq!(f("kafka_topic_latest_offsets_sum"), None);
    assert_eq!(f("kafka_consumergroup_rewinds"), None);
}

/// Every query is valid PromQL: with the variables substituted, the queries become recording
/// rules of a temporary rule file, and `promtool check rules` parses them.
#[test]
fn every_query_parses_with_promtool() {
    let mut rules = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    for (i, (_, _, expr)) in queries().iter().enumerate() {
        let quoted = serde_json::to_string(&substitute(expr)).expect("quote");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = std::env::temp_dir().join(format!("lagwatch-dashboards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("queries.yaml");
    std::fs::write(&file, &rules).expect("write rules");
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): run .ci/setup, which installs Debian's `prometheus`")
        });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "promtool rejects a dashboard query:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The executive, on-call and debug dashboards cover what PRODUCT.md §8 lists.
#[test]
fn dashboards_cover_the_promised_panels() {
    let all = queries();
    let uses = |file: &str, needle: &str| {
        all.iter()
            .any(|(f, _, expr)| f == file && expr.contains(needle))
    };
    for (file, needles) in [
        (
            "lagwatch-overview.json",
            &[
                "kafka_consumergroup_lag_seconds",
                "kafka_consumergroup_status",
                "kafka_consumergroup_topic_retention_usage_ratio",
                "kafka_consumergroup_evicted_messages",
                "kafka_consumergroup_lag_messages",
                "lagwatch_kafka_up",
            ][..],
        ),
        (
            "lagwatch-group.json",
            &[
                "kafka_consumergroup_topic_lag_messages",
                "kafka_consumergroup_topic_lag_seconds",
                "kafka_consumergroup_partition_lag_messages",
                "kafka_consumergroup_partition_lag_seconds",
                "kafka_consumergroup_topic_commit_stall_seconds",
                "kafka_consumergroup_topic_lag_skew_seconds",
                "kafka_consumergroup_members",
                "kafka_consumergroup_state",
                "kafka_consumergroup_eviction_seconds",
                "kafka_consumergroup_rewinds_total",
            ][..],
        ),
        (
            "lagwatch-exporter.json",
            &[
                "histogram_quantile",
                "lagwatch_poll_duration_seconds_bucket",
                "lagwatch_poll_errors_total",
                "lagwatch_kafka_requests_total",
                "lagwatch_series",
                "lagwatch_series_dropped",
                "lagwatch_last_poll_success_timestamp_seconds",
                "lagwatch_timestamp_reads_pending",
            ][..],
        ),
    ] {
        for needle in needles {
            assert!(uses(file, needle), "{file}: no query uses {needle}");
        }
    }
    let overview = dashboards()
        .into_iter()
        .find(|(f, _)| f == "lagwatch-overview.json")
        .expect("overview");
    assert!(
        panels(&overview.1).iter().any(|p| p["type"] == "heatmap"),
        "overview: retention-risk heatmap"
    );
}
