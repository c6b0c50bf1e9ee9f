//! Checks of the bundled Grafana dashboards (`dashboards/*.json`): current schema, no `__inputs`
//! and no hard-coded data source (every panel and target uses the `${datasource}` variable), the
//! `datasource`, `cluster`, `group_type`, `group` and `topic` variables, a unit on every panel,
//! every metric a query uses documented in `docs/metrics.md`, and every query valid PromQL
//! (promtool parses it). And what makes the figures right: `rate`/`increase` only on counters and
//! `deriv` only on gauges (by the types in docs/metrics.md), variables matched exactly (`=` for
//! single values, `=~` only where Grafana regex-escapes), every Kafka series deduplicated over
//! lagwatch replicas (`max`/`min` by its identifying labels before any `sum` or `count`), `topk`
//! where a panel ranks, partition-level panels in a collapsed row that says so, and alert and
//! rewind annotations.
//!
//! `cargo test --test dashboards -- --nocapture` also prints every (dashboard, panel, expr).
//! The values each query returns from a real Prometheus, at every granularity and with three
//! replicas, are checked in `tests/dashboards_prometheus.rs`; `tests/e2e_prometheus.rs` checks
//! that every query has data in the end-to-end scenario.

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
    // group_type first: `$group` is a prefix of `$group_type`.
    for var in ["group_type", "cluster", "group", "topic"] {
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

/// Runs `promtool check rules` on the expressions, each as a recording rule of a temporary
/// rule file, with the variables substituted; panics naming `what` when promtool rejects one.
fn assert_promtool_parses(what: &str, exprs: &[String]) {
    let mut rules = format!("groups:\n  - name: dashboard-{what}\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(&substitute(expr)).expect("quote");
        rules.push_str(&format!(
            "      - record: dashboard:{what}_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = std::env::temp_dir().join(format!("lagwatch-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("rules.yaml");
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
        "promtool rejects a dashboard {what} expression:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every query is valid PromQL: with the variables substituted, the queries become recording
/// rules of a temporary rule file, and `promtool check rules` parses them.
#[test]
fn every_query_parses_with_promtool() {
    let exprs: Vec<String> = queries().into_iter().map(|(_, _, e)| e).collect();
    assert_promtool_parses("query", &exprs);
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

/// Every annotation query: (dashboard file, annotation name, expr).
fn annotation_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (file, dash) in dashboards() {
        for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(expr) = a["expr"].as_str() {
                let name = a["name"].as_str().unwrap_or("").to_owned();
                out.push((file.clone(), name, expr.to_owned()));
            }
        }
    }
    out
}

/// The argument of the call that opens at `open` (the index of its `(`), parentheses balanced.
fn call_argument(expr: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in expr[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &expr[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {expr}")
}

/// `rate`, `irate` and `increase` only over counters (and histogram series), `deriv` and
/// `delta` only over gauges: a gauge that goes down (a poll that missed a partition) is not a
/// counter reset, and a counter's reset is not a fall.
#[test]
fn range_functions_match_the_metric_type() {
    let documented = documented_families();
    let call = Regex::new(r"\b(rate|irate|increase|deriv|delta)\(").expect("regex");
    let mut checked = 0;
    let all = queries().into_iter().chain(annotation_queries());
    for (file, title, expr) in all {
        for m in call.captures_iter(&expr) {
            let function = &m[1];
            let open = m.get(0).expect("match").end() - 1;
            for name in metric_names(call_argument(&expr, open)) {
                let family = family_of(&name, &documented)
                    .unwrap_or_else(|| panic!("{file} / {title}: {name} is not documented"));
                let kind = &documented[family];
                let wants_counter = matches!(function, "rate" | "irate" | "increase");
                let ok = if wants_counter {
                    kind.contains("counter") || kind.contains("histogram")
                } else {
                    kind.contains("gauge")
                };
                assert!(
                    ok,
                    "{file} / {title}: {function}() over {name}, a {kind}: use {}",
                    if wants_counter {
                        "deriv()"
                    } else {
                        "rate()/increase()"
                    }
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} range-function uses found");
}

/// Template variables by dashboard: name → (multi or includeAll).
fn variables(dash: &Value) -> BTreeMap<String, bool> {
    dash["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let many = v["multi"] == true || v["includeAll"] == true;
            (v["name"].as_str().unwrap_or("").to_owned(), many)
        })
        .collect()
}

/// Grafana's Prometheus data source regex-escapes the values of multi-value and "All"
/// variables (`a.b` → `a\\.b`), so `=~"$group"` is an exact match there; a single-value
/// variable is interpolated as it is, so it must be matched with `=`, or a group named `a.b`
/// would also select `axb`. `${var:regex}` escapes with one backslash, which is not a valid
/// escape in a PromQL string: never used.
#[test]
fn variables_select_exactly() {
    let matcher = Regex::new(r#"([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*\$[^"]*)""#).expect("regex");
    for (file, dash) in dashboards() {
        let vars = variables(&dash);
        let mut exprs: Vec<(String, String)> = panels(&dash)
            .iter()
            .flat_map(|p| {
                p["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| Some((title(p).to_owned(), t["expr"].as_str()?.to_owned())))
            })
            .collect();
        for v in dash["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(d) = v["definition"].as_str() {
                exprs.push((format!("variable {}", v["name"]), d.to_owned()));
            }
        }
        for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(e) = a["expr"].as_str() {
                exprs.push((format!("annotation {}", a["name"]), e.to_owned()));
            }
        }
        let mut seen = 0;
        for (what, expr) in &exprs {
            assert!(
                !expr.contains(":regex}"),
                "{file} / {what}: ${{var:regex}} breaks PromQL strings: {expr}"
            );
            for m in matcher.captures_iter(expr) {
                let (label, op, value) = (&m[1], &m[2], &m[3]);
                let var = value.trim_start_matches('$').trim_matches(['{', '}']);
                let many = *vars
                    .get(var)
                    .unwrap_or_else(|| panic!("{file} / {what}: unknown variable {value}"));
                assert_eq!(
                    value,
                    format!("${var}"),
                    "{file} / {what}: {label} must be the variable alone"
                );
                let expected = if many { "=~" } else { "=" };
                assert_eq!(
                    op,
                    expected,
                    "{file} / {what}: {label}{op}\"{value}\" — ${var} is {} here",
                    if many {
                        "multi-value (escaped by Grafana)"
                    } else {
                        "single-value (not escaped)"
                    }
                );
                seen += 1;
            }
        }
        assert!(seen > 0, "{file}: no variable matchers found");
    }
}

/// The group dashboard selects one cluster and one group, exactly.
#[test]
fn group_dashboard_selects_one_group() {
    let dash = dashboard("lagwatch-group.json");
    let vars = variables(&dash);
    assert_eq!(vars.get("cluster"), Some(&false));
    assert_eq!(vars.get("group"), Some(&false));
    for (title, expr) in consumer_group_queries(&dash) {
        assert!(expr.contains(r#"group="$group""#), "{title}: {expr}");
    }
}

/// The dashboard of that file name.
fn dashboard(file: &str) -> Value {
    dashboards()
        .into_iter()
        .find(|(f, _)| f == file)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no dashboards/{file}"))
}

/// (panel title, expr) of every query over a consumer-group family.
fn consumer_group_queries(dash: &Value) -> Vec<(String, String)> {
    panels(dash)
        .into_iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .filter(|e| e.contains("kafka_consumergroup_"))
                .map(|e| (title(p).to_owned(), e.to_owned()))
        })
        .collect()
}

/// The `group_type` variable: the four group types, "All" = `.*` (which also matches series
/// without the label), and every group filtered by it: the group dashboard through its group
/// variable, the overview through each query.
#[test]
fn group_type_variable_filters_groups() {
    for (file, dash) in dashboards() {
        let list = dash["templating"]["list"].as_array().expect("variables");
        let v = list
            .iter()
            .find(|v| v["name"] == "group_type")
            .unwrap_or_else(|| panic!("{file}: no group_type variable"));
        assert_eq!(v["type"], "custom", "{file}");
        assert_eq!(v["query"], "classic,consumer,share,streams", "{file}");
        assert_eq!(
            (&v["includeAll"], &v["allValue"]),
            (&Value::from(true), &Value::from(".*")),
            "{file}"
        );
        let group = list.iter().find(|v| v["name"] == "group").expect("group");
        assert!(
            group["definition"]
                .as_str()
                .is_some_and(|d| d.contains(r#"group_type=~"$group_type""#)),
            "{file}: the group variable lists only groups of the selected types"
        );
        let position = |name: &str| list.iter().position(|v| v["name"] == name);
        assert!(
            position("group_type") < position("group"),
            "{file}: group_type comes before group, which depends on it"
        );
    }
    for (title, expr) in consumer_group_queries(&dashboard("lagwatch-overview.json")) {
        assert!(
            expr.contains(r#"group_type=~"$group_type""#),
            "overview / {title}: not filtered by group type: {expr}"
        );
    }
}

/// The head of the call or aggregation whose `(` is at `open`: `max` for `max by (a, b) (`,
/// `increase` for `increase(`, "" for plain grouping parentheses.
fn head_of(expr: &str, open: usize) -> String {
    let before = expr[..open].trim_end();
    let by = Regex::new(r"([a-z_]+)\s+(?:by|without)\s*\([^()]*\)$").expect("regex");
    if let Some(c) = by.captures(before) {
        return c[1].to_owned();
    }
    let word = Regex::new(r"([a-z_]+)$").expect("regex");
    word.captures(before)
        .map(|c| c[1].to_owned())
        .unwrap_or_default()
}

/// With N lagwatch replicas scraping one cluster (sidecars, or shards), every Kafka series
/// comes N times, once per instance: each Kafka selector's innermost aggregation must be
/// `max`, `min` or `group` (deduplicating over the instances), never `sum` or `count` directly
/// and never a bare selector, unless the selector only filters (`and on (…)`, `unless`).
#[test]
fn kafka_series_are_deduplicated_across_replicas() {
    let selector = Regex::new(r"\bkafka_[a-z0-9_]+\{").expect("regex");
    let filter = Regex::new(r"(?:and|unless)(?:\s+on\s*\([^)]*\))?\s*$").expect("regex");
    let range = [
        "increase", "rate", "irate", "deriv", "delta", "changes", "resets",
    ];
    let mut checked = 0;
    for (file, title, expr) in queries().into_iter().chain(annotation_queries()) {
        for m in selector.find_iter(&expr) {
            if filter.is_match(&expr[..m.start()]) {
                continue;
            }
            // Open parentheses around the selector, innermost last.
            let mut open = Vec::new();
            for (i, c) in expr[..m.start()].char_indices() {
                match c {
                    '(' => open.push(i),
                    ')' => {
                        open.pop();
                    }
                    _ => {}
                }
            }
            let innermost = open
                .iter()
                .rev()
                .map(|&i| head_of(&expr, i))
                .find(|h| !h.is_empty() && !range.contains(&h.as_str()));
            assert!(
                matches!(innermost.as_deref(), Some("max" | "min" | "group")),
                "{file} / {title}: {} is aggregated first by {innermost:?}, which counts each \
                 replica: use max/min by the identifying labels first\n{expr}",
                m.as_str().trim_end_matches('{')
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} Kafka selectors checked");
}

/// Panels that rank groups show the top 10, not every group.
#[test]
fn ranking_panels_use_topk() {
    let mut ranked = 0;
    for (file, dash) in dashboards() {
        for panel in panels(&dash) {
            if panel["type"] == "bargauge" {
                for t in panel["targets"].as_array().into_iter().flatten() {
                    let expr = t["expr"].as_str().unwrap_or("");
                    assert!(
                        expr.contains("topk("),
                        "{file} / {}: a ranking without topk: {expr}",
                        title(panel)
                    );
                    ranked += 1;
                }
            }
        }
    }
    assert!(ranked >= 1, "the overview ranks groups by time lag");
}

/// Panels that need `granularity: partition` say so and sit in a collapsed row, so at the
/// default granularity (topic) the dashboard shows no empty panels.
#[test]
fn partition_level_panels_are_collapsed_and_say_so() {
    let partition_family =
        Regex::new(r"\bkafka_(?:consumergroup_)?partition_[a-z_]+\{").expect("regex");
    let needs_partition = Regex::new(r"granularity:? partition").expect("regex");
    let mut found = 0;
    for (file, dash) in dashboards() {
        let top: Vec<&Value> = dash["panels"].as_array().into_iter().flatten().collect();
        for p in &top {
            if p["type"] == "row" && p["collapsed"] == false {
                assert!(
                    p["panels"].as_array().is_none_or(Vec::is_empty),
                    "{file}: an open row keeps its panels at the top level"
                );
            }
        }
        for panel in panels(&dash) {
            let targets: Vec<&str> = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .collect();
            if !targets.iter().any(|e| partition_family.is_match(e)) {
                continue;
            }
            let t = title(panel);
            let description = panel["description"].as_str().unwrap_or("");
            assert!(
                needs_partition.is_match(description),
                "{file} / {t}: the description must say it needs granularity: partition"
            );
            // Panels with a fallback for coarser granularities (`… or …`) may stay open.
            if targets
                .iter()
                .all(|e| partition_family.is_match(e) && !e.contains(" or "))
            {
                let in_collapsed_row = top.iter().any(|r| {
                    r["type"] == "row"
                        && r["collapsed"] == true
                        && r["panels"]
                            .as_array()
                            .is_some_and(|ps| ps.iter().any(|p| p["id"] == panel["id"]))
                });
                assert!(
                    in_collapsed_row,
                    "{file} / {t}: partition-level panel outside a collapsed row"
                );
                found += 1;
            }
        }
    }
    assert!(found >= 3, "only {found} partition-level panels found");
}

/// Alerts and rewinds are marked on the timelines of the overview and group dashboards.
#[test]
fn alert_and_rewind_annotations() {
    for (file, dash) in dashboards() {
        if file == "lagwatch-exporter.json" {
            continue;
        }
        let list = dash["annotations"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has = |needle: &str| {
            list.iter().any(|a| {
                a["enable"] == true
                    && a["expr"].as_str().is_some_and(|e| e.contains(needle))
                    && is_our_datasource(&a["datasource"])
            })
        };
        assert!(
            has(r#"ALERTS{alertstate="firing""#),
            "{file}: alert annotation"
        );
        assert!(
            has("increase(kafka_consumergroup_rewinds_total"),
            "{file}: rewind annotation"
        );
    }
}

/// The annotation queries are valid PromQL too.
#[test]
fn annotation_queries_parse_with_promtool() {
    let exprs: Vec<String> = annotation_queries()
        .into_iter()
        .map(|(_, _, e)| e)
        .collect();
    assert!(exprs.len() >= 4, "annotations: {exprs:?}");
    assert_promtool_parses("annotation", &exprs);
}
