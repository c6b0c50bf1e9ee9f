//! Render tests: a small fixed input, asserted line by line on real values.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::model::{
    self, CommittedOffset, GroupSnapshot, GroupState, PartitionOffsets, Report, Snapshot,
    TopicConfig, TopicSnapshot,
};

fn po(partition: i32, earliest: i64, latest: i64) -> PartitionOffsets {
    PartitionOffsets {
        partition,
        earliest,
        latest,
    }
}

fn commit(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
    CommittedOffset {
        topic: Arc::from(topic),
        partition,
        offset,
    }
}

/// Topics `orders` (3 partitions, 1h retention) and `payments` (2 partitions, retention
/// unknown); groups `billing` (lag 26 on orders, 4 on payments, one partition uncommitted) and
/// `shipping` (caught up on orders/0, two partitions uncommitted).
///
/// Series per level: always 15 (topic 7, group 8), topic 3, partition 20.
fn report_with_groups(groups: Vec<GroupSnapshot>) -> Arc<Report> {
    let snapshot = Snapshot {
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        topics: vec![
            TopicSnapshot {
                name: Arc::from("orders"),
                partitions: vec![po(0, 0, 10), po(1, 0, 20), po(2, 0, 30)],
                config: TopicConfig {
                    retention_ms: Some(3_600_000),
                    retention_bytes: Some(-1),
                    cleanup_policy: Some("delete".into()),
                },
            },
            TopicSnapshot {
                name: Arc::from("payments"),
                partitions: vec![po(0, 5, 9), po(1, 0, 3)],
                config: TopicConfig::default(),
            },
        ],
        groups,
    };
    Arc::new(model::report(&snapshot))
}

fn report() -> Arc<Report> {
    report_with_groups(vec![
        GroupSnapshot {
            id: "billing".into(),
            state: GroupState::Empty,
            members: Some(0),
            offsets: vec![
                commit("orders", 0, 4),
                commit("orders", 1, 20),
                commit("orders", 2, 10),
                commit("payments", 0, 1),
            ],
        },
        GroupSnapshot {
            id: "shipping".into(),
            state: GroupState::Stable,
            members: Some(2),
            offsets: vec![commit("orders", 0, 10)],
        },
    ])
}

fn cluster(name: &str, report: Option<Arc<Report>>) -> ClusterState {
    let mut c = ClusterState::new(name);
    c.up = report.is_some();
    c.report = report;
    c
}

fn settings(granularity: Granularity) -> RenderSettings {
    RenderSettings {
        granularity,
        max_series: 100_000,
        version: "0.1.0",
        revision: "abc123".into(),
        compat_kafka_lag_exporter: false,
        shard_zero: true,
    }
}

fn text(r: &Rendered) -> &str {
    std::str::from_utf8(&r.text).expect("text is UTF-8")
}

fn om(r: &Rendered) -> &str {
    std::str::from_utf8(&r.openmetrics).expect("openmetrics is UTF-8")
}

/// Sample lines (not comments) of Kafka families.
fn kafka_samples(exposition: &str) -> Vec<&str> {
    exposition
        .lines()
        .filter(|l| l.starts_with("kafka_"))
        .collect()
}

fn has_family(exposition: &str, name: &str) -> bool {
    exposition
        .lines()
        .any(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
}

#[test]
fn partition_granularity_emits_exact_values() {
    let r = render(
        &[cluster("a", Some(report()))],
        &settings(Granularity::Partition),
    );
    for exposition in [text(&r), om(&r)] {
        let lines: Vec<&str> = exposition.lines().collect();
        let expected = [
            r#"kafka_partition_latest_offset{cluster="a",topic="orders",partition="2"} 30"#,
            r#"kafka_partition_earliest_offset{cluster="a",topic="payments",partition="0"} 5"#,
            r#"kafka_topic_partitions{cluster="a",topic="orders"} 3"#,
            r#"kafka_topic_latest_offsets{cluster="a",topic="orders"} 60"#,
            r#"kafka_topic_earliest_offsets{cluster="a",topic="payments"} 5"#,
            r#"kafka_topic_retention_seconds{cluster="a",topic="orders"} 3600.0"#,
            r#"kafka_consumergroup_state{cluster="a",group="billing",state="empty"} 1"#,
            r#"kafka_consumergroup_state{cluster="a",group="shipping",state="stable"} 1"#,
            r#"kafka_consumergroup_members{cluster="a",group="shipping"} 2"#,
            r#"kafka_consumergroup_uncommitted_partitions{cluster="a",group="billing"} 1"#,
            r#"kafka_consumergroup_uncommitted_partitions{cluster="a",group="shipping"} 2"#,
            r#"kafka_consumergroup_lag_messages{cluster="a",group="billing"} 30"#,
            r#"kafka_consumergroup_lag_messages{cluster="a",group="shipping"} 0"#,
            r#"kafka_consumergroup_topic_lag_messages{cluster="a",group="billing",topic="orders"} 26"#,
            r#"kafka_consumergroup_topic_lag_messages{cluster="a",group="billing",topic="payments"} 4"#,
            r#"kafka_consumergroup_partition_committed_offset{cluster="a",group="billing",topic="orders",partition="0"} 4"#,
            r#"kafka_consumergroup_partition_lag_messages{cluster="a",group="billing",topic="orders",partition="2"} 20"#,
            r#"kafka_consumergroup_partition_lag_messages{cluster="a",group="billing",topic="payments",partition="0"} 4"#,
            r#"lagwatch_kafka_up{cluster="a"} 1"#,
            r#"lagwatch_series{cluster="a"} 38"#,
            r#"lagwatch_series_dropped{cluster="a"} 0"#,
            r#"lagwatch_timestamp_reads_pending{cluster="a"} 0"#,
            r#"lagwatch_build_info{version="0.1.0",revision="abc123"} 1"#,
        ];
        for line in expected {
            assert!(lines.contains(&line), "missing {line}\n{exposition}");
        }
        // Infinite retention.bytes and unknown retention.ms have no series; no family is empty.
        assert!(
            !exposition.contains("kafka_topic_retention_bytes"),
            "{exposition}"
        );
        assert!(
            !exposition.contains(r#"kafka_topic_retention_seconds{cluster="a",topic="payments"}"#)
        );
        // Partitions without a commit have no lag series (no -1 sentinel).
        assert!(!exposition.contains(r#"group="billing",topic="payments",partition="1""#));
        assert_eq!(kafka_samples(exposition).len(), 38);
    }
    assert_eq!((r.series, r.dropped), (38, 0));
}

#[test]
fn granularity_sets_the_finest_level() {
    // (granularity, families that must be present, families that must be absent, Kafka series)
    let partition_only = [
        "kafka_partition_latest_offset",
        "kafka_partition_earliest_offset",
        "kafka_consumergroup_partition_committed_offset",
        "kafka_consumergroup_partition_lag_messages",
    ];
    let always = [
        "kafka_topic_partitions",
        "kafka_topic_latest_offsets",
        "kafka_consumergroup_state",
        "kafka_consumergroup_lag_messages",
    ];
    let topic = ["kafka_consumergroup_topic_lag_messages"];
    let cases: [(Granularity, Vec<&str>, Vec<&str>, usize); 3] = [
        (
            Granularity::Group,
            always.to_vec(),
            [&topic[..], &partition_only[..]].concat(),
            15,
        ),
        (
            Granularity::Topic,
            [&always[..], &topic[..]].concat(),
            partition_only.to_vec(),
            18,
        ),
        (
            Granularity::Partition,
            [&always[..], &topic[..], &partition_only[..]].concat(),
            vec![],
            38,
        ),
    ];
    for (granularity, present, absent, series) in cases {
        let r = render(&[cluster("a", Some(report()))], &settings(granularity));
        let t = text(&r);
        for name in present {
            assert!(has_family(t, name), "{granularity:?}: {name} missing");
        }
        for name in absent {
            assert!(!t.contains(name), "{granularity:?}: {name} present");
        }
        assert_eq!((r.series, r.dropped), (series, 0), "{granularity:?}");
        assert_eq!(kafka_samples(t).len(), series, "{granularity:?}");
    }
}

#[test]
fn max_series_drops_partition_level_then_topic_level() {
    // Two clusters with the same report: always 30, topic 6, partition 40 (76 in all).
    // (max_series, series emitted, dropped, per-cluster series, topic level kept, partition kept)
    let cases = [
        (76, 76, 0, 38, true, true),
        (75, 36, 40, 18, true, false),
        (36, 36, 40, 18, true, false),
        (35, 30, 46, 15, false, false),
        (30, 30, 46, 15, false, false),
        // Group level alone is over: emitted anyway (and logged as an error).
        (10, 30, 46, 15, false, false),
    ];
    for (max_series, series, dropped, per_cluster, topic_kept, partition_kept) in cases {
        let mut s = settings(Granularity::Partition);
        s.max_series = max_series;
        let r = render(
            &[cluster("a", Some(report())), cluster("b", Some(report()))],
            &s,
        );
        let t = text(&r);
        assert_eq!(
            (r.series, r.dropped),
            (series, dropped),
            "max_series {max_series}"
        );
        assert_eq!(kafka_samples(t).len(), series, "max_series {max_series}");
        for c in ["a", "b"] {
            let line = format!(r#"lagwatch_series{{cluster="{c}"}} {per_cluster}"#);
            assert!(t.lines().any(|l| l == line), "{line}\n{t}");
            let line = format!(
                r#"lagwatch_series_dropped{{cluster="{c}"}} {}"#,
                dropped / 2
            );
            assert!(t.lines().any(|l| l == line), "{line}\n{t}");
        }
        assert_eq!(
            has_family(t, "kafka_consumergroup_topic_lag_messages"),
            topic_kept
        );
        assert_eq!(
            has_family(t, "kafka_consumergroup_partition_lag_messages"),
            partition_kept
        );
        assert_eq!(
            has_family(t, "kafka_partition_latest_offset"),
            partition_kept
        );
        // Never dropped.
        assert!(has_family(t, "kafka_consumergroup_lag_messages"));
        assert!(has_family(t, "kafka_topic_latest_offsets"));
        assert!(has_family(t, "lagwatch_kafka_up"));
    }
}

#[test]
fn max_series_counts_only_configured_levels_as_dropped() {
    // Granularity topic: the partition level is not configured, so not "dropped".
    let mut s = settings(Granularity::Topic);
    s.max_series = 17;
    let r = render(&[cluster("a", Some(report()))], &s);
    assert_eq!((r.series, r.dropped), (15, 3));
}

#[test]
fn every_family_has_one_descriptor_block_across_clusters() {
    for compat in [false, true] {
        let mut s = settings(Granularity::Partition);
        s.compat_kafka_lag_exporter = compat;
        let r = render(
            &[
                cluster("a", Some(report_with_analytics())),
                cluster("b", Some(report_with_analytics())),
                cluster("c", None),
            ],
            &s,
        );
        for exposition in [text(&r), om(&r)] {
            let mut seen = std::collections::HashSet::new();
            let mut current = "";
            for line in exposition.lines() {
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let name = rest.split(' ').next().unwrap_or_default();
                    assert!(seen.insert(name.to_owned()), "{name} has two TYPE lines");
                    current = name;
                } else if !line.starts_with('#') {
                    // Every sample belongs to the family of the last TYPE line.
                    let base = current.strip_suffix("_total").unwrap_or(current);
                    let name = line.split(['{', ' ']).next().unwrap_or_default();
                    let suffix = name.strip_prefix(base);
                    assert!(
                        matches!(suffix, Some("" | "_total" | "_sum" | "_count" | "_bucket")),
                        "{line} after TYPE {current} (compat {compat})"
                    );
                }
            }
        }
    }
}

#[test]
fn cluster_without_report_has_only_exporter_families() {
    let mut down = cluster("b", None);
    down.errors.insert(Stage::Metadata, 3);
    down.requests.insert("bootstrap".into(), 7);
    down.poll_duration.observe(0.07);
    down.timestamp_reads_pending = 4;
    let mut up = cluster("a", Some(report()));
    up.last_success = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
    let r = render(&[up, down], &settings(Granularity::Partition));
    let t = text(&r);
    assert!(!t.contains(r#"kafka_consumergroup_lag_messages{cluster="b""#));
    assert!(kafka_samples(t)
        .iter()
        .all(|l| l.contains(r#"cluster="a""#)));
    let lines: Vec<&str> = t.lines().collect();
    for line in [
        r#"lagwatch_kafka_up{cluster="a"} 1"#,
        r#"lagwatch_kafka_up{cluster="b"} 0"#,
        r#"lagwatch_last_poll_success_timestamp_seconds{cluster="a"} 1700000000.5"#,
        r#"lagwatch_poll_errors_total{cluster="b",stage="metadata"} 3"#,
        r#"lagwatch_poll_errors_total{cluster="b",stage="read_timestamps"} 0"#,
        r#"lagwatch_poll_errors_total{cluster="a",stage="offset_fetch"} 0"#,
        r#"lagwatch_kafka_requests_total{cluster="b",broker="bootstrap"} 7"#,
        r#"lagwatch_poll_duration_seconds_bucket{le="0.05",cluster="b"} 0"#,
        r#"lagwatch_poll_duration_seconds_bucket{le="0.1",cluster="b"} 1"#,
        r#"lagwatch_poll_duration_seconds_bucket{le="+Inf",cluster="b"} 1"#,
        r#"lagwatch_poll_duration_seconds_count{cluster="b"} 1"#,
        r#"lagwatch_poll_duration_seconds_count{cluster="a"} 0"#,
        r#"lagwatch_series{cluster="b"} 0"#,
        r#"lagwatch_timestamp_reads_pending{cluster="b"} 4"#,
    ] {
        assert!(lines.contains(&line), "missing {line}\n{t}");
    }
    // Never polled successfully: no timestamp series at all.
    assert!(!t.contains(r#"lagwatch_last_poll_success_timestamp_seconds{cluster="b"}"#));
    // Every stage, for every cluster.
    let stages = lines
        .iter()
        .filter(|l| l.starts_with("lagwatch_poll_errors_total{"))
        .count();
    assert_eq!(stages, 2 * Stage::ALL.len());
}

#[test]
fn text_and_openmetrics_differ_only_in_format() {
    let r = render(
        &[cluster("a", Some(report()))],
        &settings(Granularity::Partition),
    );
    let (t, o) = (text(&r), om(&r));
    // (format, line, expected present)
    let cases = [
        ("text", "# TYPE lagwatch_poll_errors_total counter", true),
        (
            "text",
            "# HELP lagwatch_poll_errors_total Poll stages that failed, by stage, since start.",
            true,
        ),
        ("text", "# TYPE lagwatch_poll_errors counter", false),
        ("openmetrics", "# TYPE lagwatch_poll_errors counter", true),
        (
            "openmetrics",
            "# TYPE lagwatch_poll_errors_total counter",
            false,
        ),
        ("text", "# EOF", false),
        (
            "openmetrics",
            "# UNIT kafka_consumergroup_lag_messages messages",
            true,
        ),
        (
            "openmetrics",
            "# UNIT lagwatch_poll_duration_seconds seconds",
            true,
        ),
        (
            "text",
            "# TYPE kafka_consumergroup_lag_messages gauge",
            true,
        ),
        (
            "openmetrics",
            "# TYPE kafka_consumergroup_lag_messages gauge",
            true,
        ),
    ];
    for (format, line, want) in cases {
        let exposition = if format == "text" { t } else { o };
        assert_eq!(
            exposition.lines().any(|l| l == line),
            want,
            "{format}: {line}"
        );
    }
    assert!(!t.contains("# UNIT"));
    assert!(o.ends_with("\n# EOF\n"));
    assert_eq!(o.matches("# EOF").count(), 1);
    // The text format is derived from the OpenMetrics one: the same sample lines, in the same
    // order (counter samples are `_total` in both formats).
    fn samples(s: &str) -> Vec<&str> {
        s.lines().filter(|l| !l.starts_with('#')).collect()
    }
    assert_eq!(samples(t), samples(o));
    assert!(t.contains("\nlagwatch_poll_errors_total{cluster=\"a\",stage=\"metadata\"} 0\n"));
}

#[test]
fn gzip_copies_round_trip() {
    let r = render(
        &[cluster("a", Some(report())), cluster("b", None)],
        &settings(Granularity::Partition),
    );
    for (plain, gz) in [
        (&r.text, &r.text_gzip),
        (&r.openmetrics, &r.openmetrics_gzip),
    ] {
        assert!(gz.starts_with(&[0x1f, 0x8b]), "gzip magic");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut out)
            .expect("valid gzip");
        assert_eq!(&out, plain);
        assert!(gz.len() < plain.len());
    }
}

#[test]
fn label_values_are_escaped() {
    // (group id, how it appears in the exposition)
    let cases = [
        (r#"say "hi""#, r#"group="say \"hi\"""#),
        (r"back\slash", r#"group="back\\slash""#),
        ("new\nline", r#"group="new\nline""#),
        ("ünïcode", r#"group="ünïcode""#),
    ];
    for (id, escaped) in cases {
        let report = report_with_groups(vec![GroupSnapshot {
            id: id.into(),
            state: GroupState::Stable,
            members: Some(1),
            offsets: vec![commit("orders", 0, 4)],
        }]);
        let r = render(&[cluster("a", Some(report))], &settings(Granularity::Group));
        for exposition in [text(&r), om(&r)] {
            let line = format!(r#"kafka_consumergroup_lag_messages{{cluster="a",{escaped}}} 6"#);
            assert!(
                exposition.lines().any(|l| l == line),
                "{line}\n{exposition}"
            );
        }
    }
}

#[test]
fn other_shards_omit_topic_wide_families() {
    let mut s = settings(Granularity::Partition);
    s.shard_zero = false;
    let r = render(&[cluster("a", Some(report()))], &s);
    let t = text(&r);
    assert!(!t.contains("kafka_topic_"), "{t}");
    assert!(!t.contains("kafka_partition_"), "{t}");
    assert!(has_family(t, "kafka_consumergroup_partition_lag_messages"));
    // 38 minus 7 topic-level and 10 partition-offset series.
    assert_eq!((r.series, r.dropped), (21, 0));
}

#[test]
fn no_clusters_still_renders_build_info() {
    let r = render(&[], &settings(Granularity::Topic));
    assert_eq!(
        text(&r),
        "# HELP lagwatch_build_info Version and revision of the running lagwatch; value 1.\n\
         # TYPE lagwatch_build_info gauge\n\
         lagwatch_build_info{version=\"0.1.0\",revision=\"abc123\"} 1\n"
    );
    assert!(om(&r).ends_with("# EOF\n"));
    assert_eq!((r.series, r.dropped), (0, 0));
}

/// `report()` with the analytics fields set as `Report::apply_analytics` would (aggregates
/// consistent with the partitions): billing is `evicting` (4 messages evicted on payments/0),
/// orders/2's time lag is not known yet, billing rewound once on orders; shipping is `ok`.
///
/// Series per level: always 32, topic 18, partition 30 (80); kafka-lag-exporter's families add
/// always 6, topic 3, partition 14 (23).
fn report_with_analytics() -> Arc<Report> {
    let mut report = (*report()).clone();
    type Partition = (Option<f64>, Option<f64>, Option<f64>, i64, f64);
    // (lag s, eviction s, usage, evicted, stall s) per partition, in report order.
    let partitions: [&[Partition]; 3] = [
        &[
            (Some(36.0), Some(3564.0), Some(0.01), 0, 30.0),
            (Some(0.0), None, Some(0.0), 0, 0.0),
            (None, None, None, 0, 90.0),
        ],
        &[(Some(12.5), None, None, 4, 0.0)],
        &[(Some(0.0), None, Some(0.0), 0, 0.0)],
    ];
    let topics = report.groups.iter_mut().flat_map(|g| &mut g.topics);
    for (t, values) in topics.zip(partitions) {
        for (p, &(lag, eviction, usage, evicted, stall)) in t.partitions.iter_mut().zip(values) {
            p.lag_seconds = lag;
            p.eviction_seconds = eviction;
            p.retention_usage_ratio = usage;
            p.evicted_messages = Some(evicted);
            p.commit_stall_seconds = Some(stall);
        }
    }
    let max = |v: &mut dyn Iterator<Item = Option<f64>>| v.flatten().reduce(f64::max);
    let min = |v: &mut dyn Iterator<Item = Option<f64>>| v.flatten().reduce(f64::min);
    for g in &mut report.groups {
        for t in &mut g.topics {
            let ps = &t.partitions;
            t.lag_seconds = max(&mut ps.iter().map(|p| p.lag_seconds));
            t.eviction_seconds = min(&mut ps.iter().map(|p| p.eviction_seconds));
            t.retention_usage_ratio = max(&mut ps.iter().map(|p| p.retention_usage_ratio));
            t.evicted_messages = Some(ps.iter().filter_map(|p| p.evicted_messages).sum());
            t.commit_stall_seconds = max(&mut ps.iter().map(|p| p.commit_stall_seconds));
            t.lag_skew_seconds = max(&mut ps.iter().map(|p| p.lag_seconds))
                .zip(min(&mut ps.iter().map(|p| p.lag_seconds)))
                .map(|(hi, lo)| hi - lo);
            t.rewinds_total = Some(0);
            t.rewound_messages_total = Some(0);
        }
        let ts = &g.topics;
        g.lag_seconds = max(&mut ts.iter().map(|t| t.lag_seconds));
        g.eviction_seconds = min(&mut ts.iter().map(|t| t.eviction_seconds));
        g.retention_usage_ratio = max(&mut ts.iter().map(|t| t.retention_usage_ratio));
        g.evicted_messages = Some(ts.iter().filter_map(|t| t.evicted_messages).sum());
        g.commit_stall_seconds = max(&mut ts.iter().map(|t| t.commit_stall_seconds));
        g.status = Some(if g.evicted_messages > Some(0) {
            model::analytics::Status::Evicting
        } else {
            model::analytics::Status::Ok
        });
    }
    report.groups[0].topics[0].rewinds_total = Some(1);
    report.groups[0].topics[0].rewound_messages_total = Some(7);
    Arc::new(report)
}

/// Sample lines as (family, labels without `cluster_name`, value).
fn samples_by_family(exposition: &str) -> Vec<(&str, String, f64)> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{')?;
            let labels = labels.replace(r#"cluster_name="a","#, "");
            Some((name, labels, value.parse().ok()?))
        })
        .collect()
}

fn family_samples(exposition: &str, family: &str) -> Vec<(String, f64)> {
    samples_by_family(exposition)
        .into_iter()
        .filter(|(name, _, _)| *name == family)
        .map(|(_, labels, value)| (labels, value))
        .collect()
}

#[test]
fn analytics_families_emit_exact_values() {
    let r = render(
        &[cluster("a", Some(report_with_analytics()))],
        &settings(Granularity::Partition),
    );
    for exposition in [text(&r), om(&r)] {
        let lines: Vec<&str> = exposition.lines().collect();
        let expected = [
            r#"kafka_consumergroup_status{cluster="a",group="billing",status="evicting"} 1"#,
            r#"kafka_consumergroup_status{cluster="a",group="shipping",status="ok"} 1"#,
            r#"kafka_consumergroup_lag_seconds{cluster="a",group="billing"} 36.0"#,
            r#"kafka_consumergroup_lag_seconds{cluster="a",group="shipping"} 0.0"#,
            r#"kafka_consumergroup_eviction_seconds{cluster="a",group="billing"} 3564.0"#,
            r#"kafka_consumergroup_retention_usage_ratio{cluster="a",group="billing"} 0.01"#,
            r#"kafka_consumergroup_retention_usage_ratio{cluster="a",group="shipping"} 0.0"#,
            r#"kafka_consumergroup_evicted_messages{cluster="a",group="billing"} 4"#,
            r#"kafka_consumergroup_evicted_messages{cluster="a",group="shipping"} 0"#,
            r#"kafka_consumergroup_commit_stall_seconds{cluster="a",group="billing"} 90.0"#,
            r#"kafka_consumergroup_topic_lag_seconds{cluster="a",group="billing",topic="payments"} 12.5"#,
            r#"kafka_consumergroup_topic_eviction_seconds{cluster="a",group="billing",topic="orders"} 3564.0"#,
            r#"kafka_consumergroup_topic_retention_usage_ratio{cluster="a",group="billing",topic="orders"} 0.01"#,
            r#"kafka_consumergroup_topic_evicted_messages{cluster="a",group="billing",topic="payments"} 4"#,
            r#"kafka_consumergroup_topic_commit_stall_seconds{cluster="a",group="billing",topic="orders"} 90.0"#,
            r#"kafka_consumergroup_topic_lag_skew_seconds{cluster="a",group="billing",topic="orders"} 36.0"#,
            r#"kafka_consumergroup_rewinds_total{cluster="a",group="billing",topic="orders"} 1"#,
            r#"kafka_consumergroup_rewinds_total{cluster="a",group="shipping",topic="orders"} 0"#,
            r#"kafka_consumergroup_rewound_messages_total{cluster="a",group="billing",topic="orders"} 7"#,
            r#"kafka_consumergroup_partition_lag_seconds{cluster="a",group="billing",topic="orders",partition="0"} 36.0"#,
            r#"kafka_consumergroup_partition_eviction_seconds{cluster="a",group="billing",topic="orders",partition="0"} 3564.0"#,
            r#"kafka_consumergroup_partition_evicted_messages{cluster="a",group="billing",topic="payments",partition="0"} 4"#,
        ];
        for line in expected {
            assert!(lines.contains(&line), "missing {line}\n{exposition}");
        }
        // Absent, not -1 or NaN: time lag not read yet (orders/2); eviction countdown of a
        // partition that is not behind, and of a topic whose retention is unknown (payments).
        for absent in [
            r#"kafka_consumergroup_partition_lag_seconds{cluster="a",group="billing",topic="orders",partition="2"}"#,
            r#"kafka_consumergroup_partition_eviction_seconds{cluster="a",group="billing",topic="orders",partition="1"}"#,
            r#"kafka_consumergroup_topic_eviction_seconds{cluster="a",group="billing",topic="payments"}"#,
            r#"kafka_consumergroup_topic_retention_usage_ratio{cluster="a",group="billing",topic="payments"}"#,
            r#"kafka_consumergroup_eviction_seconds{cluster="a",group="shipping"}"#,
        ] {
            assert!(!exposition.contains(absent), "{absent}\n{exposition}");
        }
        assert!(!exposition.contains("NaN"));
        assert_eq!(kafka_samples(exposition).len(), 80);
    }
    // Counters: `_total` in both formats' samples, TYPE names the family without it in
    // OpenMetrics only.
    assert!(text(&r).contains("# TYPE kafka_consumergroup_rewinds_total counter\n"));
    assert!(om(&r).contains("# TYPE kafka_consumergroup_rewinds counter\n"));
    assert!(om(&r).contains("# UNIT kafka_consumergroup_retention_usage_ratio ratio\n"));
    assert_eq!((r.series, r.dropped), (80, 0));
}

#[test]
fn compat_off_emits_no_kafka_lag_exporter_family() {
    let r = render(
        &[cluster("a", Some(report_with_analytics()))],
        &settings(Granularity::Partition),
    );
    for exposition in [text(&r), om(&r)] {
        assert!(
            !exposition.contains("kafka_consumergroup_group_"),
            "{exposition}"
        );
        assert!(!exposition.contains("cluster_name"), "{exposition}");
    }
    assert_eq!((r.series, r.dropped), (80, 0));
}

#[test]
fn compat_aliases_carry_the_native_values() {
    let mut s = settings(Granularity::Partition);
    let native = render(&[cluster("a", Some(report_with_analytics()))], &s);
    s.compat_kafka_lag_exporter = true;
    let r = render(&[cluster("a", Some(report_with_analytics()))], &s);
    assert_eq!((r.series, r.dropped), (80 + 23, 0));
    for exposition in [text(&r), om(&r)] {
        // (kafka-lag-exporter family, lagwatch family with the same series and values)
        let aliases = [
            (
                "kafka_consumergroup_group_sum_lag",
                "kafka_consumergroup_lag_messages",
            ),
            (
                "kafka_consumergroup_group_max_lag_seconds",
                "kafka_consumergroup_lag_seconds",
            ),
            (
                "kafka_consumergroup_group_topic_sum_lag",
                "kafka_consumergroup_topic_lag_messages",
            ),
            (
                "kafka_consumergroup_group_lag",
                "kafka_consumergroup_partition_lag_messages",
            ),
            (
                "kafka_consumergroup_group_lag_seconds",
                "kafka_consumergroup_partition_lag_seconds",
            ),
            (
                "kafka_consumergroup_group_offset",
                "kafka_consumergroup_partition_committed_offset",
            ),
        ];
        for (alias, family) in aliases {
            let want = family_samples(exposition, family);
            assert!(!want.is_empty(), "{family}");
            assert_eq!(
                family_samples(exposition, alias),
                want,
                "{alias} vs {family}"
            );
        }
        // max_lag: the highest partition lag of each group.
        let mut max_lag = std::collections::BTreeMap::<String, f64>::new();
        for (labels, lag) in
            family_samples(exposition, "kafka_consumergroup_partition_lag_messages")
        {
            let group = labels
                .split(",topic=")
                .next()
                .unwrap_or_default()
                .to_owned();
            let max = max_lag.entry(group + "}").or_insert(f64::MIN);
            *max = max.max(lag);
        }
        let max_lag: Vec<(String, f64)> = max_lag.into_iter().collect();
        assert_eq!(
            family_samples(exposition, "kafka_consumergroup_group_max_lag"),
            max_lag
        );
        let lines: Vec<&str> = exposition.lines().collect();
        for line in [
            r#"kafka_consumergroup_group_max_lag{cluster="a",cluster_name="a",group="billing"} 20"#,
            r#"kafka_consumergroup_group_max_lag{cluster="a",cluster_name="a",group="shipping"} 0"#,
            r#"kafka_consumergroup_group_sum_lag{cluster="a",cluster_name="a",group="billing"} 30"#,
            r#"kafka_consumergroup_group_max_lag_seconds{cluster="a",cluster_name="a",group="billing"} 36.0"#,
            r#"kafka_consumergroup_group_topic_sum_lag{cluster="a",cluster_name="a",group="billing",topic="orders"} 26"#,
            r#"kafka_consumergroup_group_lag{cluster="a",cluster_name="a",group="billing",topic="orders",partition="2"} 20"#,
            r#"kafka_consumergroup_group_lag_seconds{cluster="a",cluster_name="a",group="billing",topic="payments",partition="0"} 12.5"#,
            // Shared names: emitted once, with cluster_name beside cluster.
            r#"kafka_partition_latest_offset{cluster="a",cluster_name="a",topic="orders",partition="2"} 30"#,
            r#"kafka_partition_earliest_offset{cluster="a",cluster_name="a",topic="payments",partition="0"} 5"#,
        ] {
            assert!(lines.contains(&line), "missing {line}\n{exposition}");
        }
        // Time lag not read yet: absent from the alias too.
        assert!(!exposition.contains(
            r#"kafka_consumergroup_group_lag_seconds{cluster="a",cluster_name="a",group="billing",topic="orders",partition="2"}"#
        ));
        assert_eq!(
            exposition
                .matches("# TYPE kafka_partition_latest_offset gauge\n")
                .count(),
            1
        );
        // Only the shared and kafka-lag-exporter families carry cluster_name.
        for line in kafka_samples(exposition) {
            let aliased = line.starts_with("kafka_consumergroup_group_")
                || line.starts_with("kafka_partition_");
            assert_eq!(line.contains("cluster_name="), aliased, "{line}");
        }
    }
    // The lagwatch families are unchanged by compat: same samples, same order.
    let native_lines: Vec<&str> = text(&native)
        .lines()
        .filter(|l| l.starts_with("kafka_") && !l.starts_with("kafka_partition_"))
        .collect();
    let compat_lines: Vec<&str> = text(&r)
        .lines()
        .filter(|l| l.starts_with("kafka_") && !l.starts_with("kafka_partition_"))
        .filter(|l| !l.starts_with("kafka_consumergroup_group_"))
        .collect();
    assert_eq!(native_lines, compat_lines);
}

#[test]
fn compat_families_follow_granularity_and_the_guard() {
    // (granularity, max_series, series, dropped, families present, families absent)
    let group_level = [
        "kafka_consumergroup_group_max_lag",
        "kafka_consumergroup_group_max_lag_seconds",
        "kafka_consumergroup_group_sum_lag",
    ];
    let topic_level = ["kafka_consumergroup_group_topic_sum_lag"];
    let partition_level = [
        "kafka_consumergroup_group_lag",
        "kafka_consumergroup_group_lag_seconds",
        "kafka_consumergroup_group_offset",
    ];
    let with = |parts: &[&[&'static str]]| parts.concat();
    type Case = (
        Granularity,
        usize,
        usize,
        usize,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: [Case; 5] = [
        (
            Granularity::Group,
            100_000,
            32 + 6,
            0,
            with(&[&group_level]),
            with(&[&topic_level, &partition_level]),
        ),
        (
            Granularity::Topic,
            100_000,
            32 + 6 + 18 + 3,
            0,
            with(&[&group_level, &topic_level]),
            with(&[&partition_level]),
        ),
        (
            Granularity::Partition,
            103,
            103,
            0,
            with(&[&group_level, &topic_level, &partition_level]),
            vec![],
        ),
        // The compat series count: one over the limit drops the partition level, theirs too.
        (
            Granularity::Partition,
            102,
            59,
            44,
            with(&[&group_level, &topic_level]),
            with(&[&partition_level]),
        ),
        (
            Granularity::Partition,
            58,
            38,
            65,
            with(&[&group_level]),
            with(&[&topic_level, &partition_level]),
        ),
    ];
    for (granularity, max_series, series, dropped, present, absent) in cases {
        let mut s = settings(granularity);
        s.compat_kafka_lag_exporter = true;
        s.max_series = max_series;
        let r = render(&[cluster("a", Some(report_with_analytics()))], &s);
        let t = text(&r);
        let why = format!("{granularity:?}, max_series {max_series}");
        assert_eq!((r.series, r.dropped), (series, dropped), "{why}");
        assert_eq!(kafka_samples(t).len(), series, "{why}");
        for name in present {
            assert!(has_family(t, name), "{why}: {name} missing");
        }
        for name in absent {
            assert!(!has_family(t, name), "{why}: {name} present");
        }
    }
}

#[test]
fn stage_labels_are_the_documented_ones() {
    let labels: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        labels,
        [
            "metadata",
            "list_offsets",
            "list_groups",
            "describe_groups",
            "offset_fetch",
            "describe_configs",
            "read_timestamps"
        ]
    );
}
