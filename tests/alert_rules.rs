//! Checks of the bundled Prometheus alerting rules (`alerts/lagwatch-rules.yaml`): promtool
//! accepts them and their unit tests pass, every alert carries what an on-call engineer needs
//! (severity, hold-down, summary, description, a runbook that exists), consumer alerts use
//! group-level families only, and the short-hold-down copy for end-to-end tests is valid.
//!
//! promtool must be on `PATH`: `.ci/setup` installs it (Debian package `prometheus`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_norway::Value;

const RULES: &str = "alerts/lagwatch-rules.yaml";
/// Per-group time-lag SLOs, an example users copy (docs/alerts.md#thresholds).
const SLO_EXAMPLE: &str = "alerts/time-lag-slo.example.yaml";
const RULE_TESTS: &str = "alerts/tests/lagwatch-rules.test.yaml";
const SLO_TESTS: &str = "alerts/tests/time-lag-slo.test.yaml";
const SHORTEN: &str = "alerts/with-short-holddowns.sh";
const RUNBOOK_BASE: &str = "https://github.com/lagwatch/lagwatch/blob/main/docs/runbooks/";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load_yaml(relative: &str) -> Value {
    let path = root().join(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Runs promtool with `args` in the repository root; fails with a pointer to `.ci/setup` when
/// promtool is not installed.
fn promtool(args: &[&str]) -> Output {
    match Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run promtool ({e}): it must be on PATH; run .ci/setup, which installs the \
             Debian package `prometheus`"
        ),
    }
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One alerting rule, with the fields the checks read.
struct Alert {
    name: String,
    rule: Value,
}

impl Alert {
    fn str_at(&self, path: &[&str]) -> Option<&str> {
        let mut v = &self.rule;
        for key in path {
            v = v.get(*key)?;
        }
        v.as_str()
    }
}

/// Every alerting rule of a rule file, in file order; recording rules are skipped.
fn alerts_of(rules: &Value) -> Vec<Alert> {
    let groups = rules
        .get("groups")
        .and_then(Value::as_sequence)
        .expect("rule file has `groups`");
    groups
        .iter()
        .flat_map(|g| {
            g.get("rules")
                .and_then(Value::as_sequence)
                .expect("every group has `rules`")
        })
        .filter_map(|r| {
            r.get("alert").and_then(Value::as_str).map(|name| Alert {
                name: name.to_owned(),
                rule: r.clone(),
            })
        })
        .collect()
}

fn alerts() -> Vec<Alert> {
    alerts_of(&load_yaml(RULES))
}

#[test]
fn promtool_check_rules_accepts_the_rule_files() {
    let out = promtool(&["check", "rules", RULES, SLO_EXAMPLE]);
    assert_success("promtool check rules", &out);
}

#[test]
fn promtool_rule_unit_tests_pass() {
    let out = promtool(&["test", "rules", RULE_TESTS, SLO_TESTS]);
    assert_success("promtool test rules", &out);
}

#[test]
fn rule_file_has_one_group_named_lagwatch() {
    let rules = load_yaml(RULES);
    let groups = rules["groups"].as_sequence().expect("groups");
    let names: Vec<_> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(names, ["lagwatch"]);
}

#[test]
fn every_alert_has_severity_holddown_annotations_and_runbook() {
    let alerts = alerts();
    assert!(!alerts.is_empty(), "no alerts in {RULES}");
    let mut seen = BTreeSet::new();
    for a in &alerts {
        let n = &a.name;
        assert!(seen.insert(n.clone()), "{n}: alert name used twice");
        let severity = a.str_at(&["labels", "severity"]);
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{n}: labels.severity must be critical (pages) or warning (a ticket), the names \
             kube-prometheus routes on; is {severity:?}"
        );
        let hold = a.str_at(&["for"]).unwrap_or("");
        assert!(
            !hold.is_empty() && hold != "0s" && hold != "0",
            "{n}: needs a non-zero `for:` hold-down against flapping, has {hold:?}"
        );
        for key in ["summary", "description"] {
            let text = a.str_at(&["annotations", key]).unwrap_or("");
            assert!(!text.trim().is_empty(), "{n}: annotations.{key} is empty");
        }
        let runbook = a.str_at(&["annotations", "runbook_url"]).unwrap_or("");
        assert_eq!(
            runbook,
            format!("{RUNBOOK_BASE}{n}.md"),
            "{n}: runbook_url must point at docs/runbooks/{n}.md"
        );
        let file = root().join("docs/runbooks").join(format!("{n}.md"));
        assert!(file.is_file(), "{n}: runbook {} is missing", file.display());
    }
}

/// The alerts the product promises (PRODUCT.md §8), with the severity on-call relies on.
#[test]
fn the_promised_alerts_exist_with_their_severity() {
    let alerts = alerts();
    let expected = [
        ("KafkaConsumerTimeLagHigh", "warning"),
        ("KafkaConsumerEvictionImminent", "critical"),
        ("KafkaConsumerMessagesEvicted", "critical"),
        ("KafkaConsumerInactiveMessagesEvicted", "warning"),
        ("KafkaConsumerStopped", "critical"),
        ("KafkaConsumerStalled", "warning"),
        ("KafkaConsumerRewind", "warning"),
        ("LagwatchKafkaDown", "critical"),
        ("LagwatchDataStale", "critical"),
        ("LagwatchTargetDown", "critical"),
        ("LagwatchClusterAbsent", "critical"),
        ("LagwatchAbsent", "critical"),
        ("LagwatchPollErrors", "warning"),
    ];
    for (name, severity) in expected {
        let alert = alerts
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("alert {name} is missing from {RULES}"));
        assert_eq!(
            alert.str_at(&["labels", "severity"]),
            Some(severity),
            "{name}"
        );
    }
}

/// `inactive` groups (abandoned) are never paged on: every critical consumer alert either leaves
/// them out or reads a status that excludes `inactive` (a group has one status at a time).
#[test]
fn no_critical_consumer_alert_fires_for_an_inactive_group() {
    const LEAVES_OUT_INACTIVE: &str = "unless on (cluster, group)\n\
                                       max by (cluster, group) (kafka_consumergroup_status{status=\"inactive\"}) == 1";
    let mut checked = 0;
    for a in alerts() {
        let expr = a.str_at(&["expr"]).unwrap_or("");
        if a.str_at(&["labels", "severity"]) != Some("critical")
            || !expr.contains("kafka_consumergroup_")
        {
            continue;
        }
        let one_other_status = expr.contains("kafka_consumergroup_status{status=\"")
            && !expr.contains("status=\"inactive\"");
        assert!(
            expr.contains(LEAVES_OUT_INACTIVE) || one_other_status,
            "{}: pages for inactive groups:\n{expr}",
            a.name
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} critical consumer alerts");
}

/// Thresholds are overridable without editing the rule file: each named recording rule is read
/// by its alert, with the default as the fallback.
#[test]
fn thresholds_are_overridable_by_recording_rules() {
    // (alert, recording rule, default)
    let cases = [
        (
            "KafkaConsumerTimeLagHigh",
            "lagwatch:time_lag_slo_seconds",
            "+ 900",
        ),
        (
            "KafkaConsumerEvictionImminent",
            "lagwatch:eviction_warning_seconds",
            "+ 3600",
        ),
        ("LagwatchDataStale", "lagwatch:stale_after_seconds", "+ 300"),
        (
            "LagwatchPollErrors",
            "lagwatch:poll_error_ratio_max",
            "+ 0.1",
        ),
    ];
    let alerts = alerts();
    for (name, record, default) in cases {
        let alert = alerts
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name} is missing"));
        let expr = alert.str_at(&["expr"]).unwrap_or("");
        assert!(expr.contains(record), "{name} does not read {record}");
        assert!(expr.contains(default), "{name} has no default {default}");
        let doc = std::fs::read_to_string(root().join("docs/alerts.md")).expect("docs/alerts.md");
        assert!(
            doc.contains(record),
            "docs/alerts.md does not explain {record}"
        );
    }
}

/// Descriptions must say which group or cluster and show the value that triggered them.
#[test]
fn descriptions_name_the_subject_and_show_the_value() {
    for a in alerts() {
        let n = &a.name;
        let description = a.str_at(&["annotations", "description"]).unwrap_or("");
        let expr = a.str_at(&["expr"]).unwrap_or("");
        if expr.contains("kafka_consumergroup_") {
            assert!(
                description.contains("$labels.group") && description.contains("$labels.cluster"),
                "{n}: description must name the group and the cluster"
            );
        } else if !expr.contains("absent(") {
            assert!(
                description.contains("$labels.cluster"),
                "{n}: description must name the cluster"
            );
        }
        // The figure behind the alert: its value, or a related figure looked up with `query`
        // where the value itself is only 0 or 1 (status, up). `absent()` has no figure.
        if !expr.contains("absent(") {
            assert!(
                description.contains("$value") || description.contains("| query"),
                "{n}: description must show a value"
            );
        }
    }
}

/// Consumer alerts use group-level families only: topic- and partition-level families are absent
/// at coarser `granularity` and may be dropped by the series guard (PRODUCT.md §5, §8).
#[test]
fn consumer_alerts_use_group_level_families_and_group_by_cluster_and_group() {
    for a in alerts() {
        let n = &a.name;
        let expr = a.str_at(&["expr"]).unwrap_or("");
        for finer in [
            "kafka_consumergroup_topic_",
            "kafka_consumergroup_partition_",
            "kafka_partition_",
        ] {
            assert!(
                !expr.contains(finer),
                "{n}: uses a {finer}* family, which is not emitted at every granularity"
            );
        }
        if expr.contains("kafka_consumergroup_") {
            assert!(
                expr.contains("by (cluster, group)"),
                "{n}: consumer alerts aggregate by (cluster, group)"
            );
        }
    }
}

/// Every alert is unit-tested both firing and not firing.
#[test]
fn every_alert_is_unit_tested_firing_and_silent() {
    let tests = load_yaml(RULE_TESTS);
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for test in tests["tests"].as_sequence().expect("tests") {
        let Some(cases) = test.get("alert_rule_test").and_then(Value::as_sequence) else {
            continue;
        };
        for case in cases {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let expected = case
                .get("exp_alerts")
                .and_then(Value::as_sequence)
                .map_or(0, Vec::len);
            if expected > 0 {
                firing.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    for a in alerts() {
        assert!(firing.contains(&a.name), "{}: no firing test", a.name);
        assert!(silent.contains(&a.name), "{}: no not-firing test", a.name);
    }
}

/// docs/alerts.md is the index: every alert is listed there.
#[test]
fn alerts_doc_lists_every_alert() {
    let doc = std::fs::read_to_string(root().join("docs/alerts.md")).expect("docs/alerts.md");
    for a in alerts() {
        assert!(
            doc.contains(&format!("`{}`", a.name)),
            "docs/alerts.md does not list {}",
            a.name
        );
    }
}

/// The end-to-end procedure: `with-short-holddowns.sh` rewrites every `for:` and nothing else,
/// and promtool still accepts the copy.
#[test]
fn short_holddown_copy_rewrites_every_for_and_stays_valid() {
    let dir = std::env::temp_dir().join(format!("lagwatch-alert-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out_file = dir.join("short.yaml");
    let out = Command::new("sh")
        .arg(root().join(SHORTEN))
        .arg(root().join(RULES))
        .arg(&out_file)
        .arg("5s")
        .output()
        .expect("run sh");
    assert_success(SHORTEN, &out);

    let original = alerts();
    let text = std::fs::read_to_string(&out_file).expect("short copy");
    let short = alerts_of(&serde_norway::from_str(&text).expect("short copy parses"));
    assert_eq!(short.len(), original.len());
    for (s, o) in short.iter().zip(&original) {
        assert_eq!(s.name, o.name);
        assert_eq!(s.str_at(&["for"]), Some("5s"), "{}", s.name);
        let mut unchanged = s.rule.clone();
        let mut before = o.rule.clone();
        if let (Some(a), Some(b)) = (unchanged.as_mapping_mut(), before.as_mapping_mut()) {
            a.remove("for");
            b.remove("for");
        }
        assert_eq!(unchanged, before, "{}: only `for` may change", s.name);
    }

    let check = promtool(&["check", "rules", out_file.to_str().expect("utf-8 path")]);
    assert_success("promtool check rules on the short copy", &check);

    let bad = Command::new("sh")
        .arg(root().join(SHORTEN))
        .arg(root().join(RULES))
        .arg(dir.join("bad.yaml"))
        .arg("soon")
        .output()
        .expect("run sh");
    assert_eq!(bad.status.code(), Some(2), "a bad duration is refused");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runbooks have the sections on-call expects.
#[test]
fn runbooks_have_the_expected_sections() {
    for a in alerts() {
        let path: PathBuf = Path::new("docs/runbooks").join(format!("{}.md", a.name));
        let text = std::fs::read_to_string(root().join(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.starts_with(&format!("# {}", a.name)),
            "{}: title must be the alert name",
            path.display()
        );
        for section in [
            "## Meaning",
            "## Confirm",
            "## Likely causes",
            "## Actions",
            "## Escalate",
        ] {
            assert!(
                text.contains(section),
                "{}: missing section {section:?}",
                path.display()
            );
        }
    }
}
