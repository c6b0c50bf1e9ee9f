//! Golden-file test of the whole `/metrics` exposition: a fixed input (two clusters, one of them
//! down, fixed timestamps) is rendered and diffed against `tests/golden/exposition.txt` (Prometheus
//! text 0.0.4) and `tests/golden/exposition.om.txt` (OpenMetrics). The text output must also pass
//! `promtool check metrics` without a word.
//!
//! After an intended change: `LAGWATCH_UPDATE_GOLDEN=1 cargo test --test golden`, then review the
//! diff of the golden files like code.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use lagwatch::cluster_state::ClusterState;
use lagwatch::config::Granularity;
use lagwatch::kafka::Stage;
use lagwatch::metrics::{self, ConfigReload, RenderSettings};
use lagwatch::model::analytics::{AnalyticsSettings, ClusterAnalytics, Event, Status};
use lagwatch::model::{
    self, CommittedOffset, Figures, GroupPartitionReport, GroupReport, GroupSnapshot, GroupState,
    GroupTopicReport, GroupType, PartitionOffsets, Report, Snapshot, TopicConfig, TopicSnapshot,
};

fn partitions(offsets: &[(i64, i64)]) -> Vec<PartitionOffsets> {
    offsets
        .iter()
        .enumerate()
        .map(|(i, &(earliest, latest))| PartitionOffsets {
            partition: i as i32,
            earliest,
            latest,
        })
        .collect()
}

fn commits(topic: &str, offsets: &[(i32, i64)]) -> Vec<CommittedOffset> {
    offsets
        .iter()
        .map(|&(partition, offset)| CommittedOffset {
            topic: Arc::from(topic),
            partition,
            offset,
            broker_lag: None,
        })
        .collect()
}

/// One group-partition's figures: (partition, C, lag messages, time lag s, eviction s, retention
/// usage, evicted messages, commit stall s).
type PartitionRow = (
    i32,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    i64,
    f64,
);

fn partition(
    (
        partition,
        committed_offset,
        lag_messages,
        lag_seconds,
        eviction_seconds,
        usage,
        evicted,
        stall,
    ): PartitionRow,
) -> GroupPartitionReport {
    GroupPartitionReport {
        partition,
        committed_offset,
        figures: Figures {
            lag_messages,
            lag_seconds,
            eviction_seconds,
            retention_usage_ratio: usage,
            evicted_messages: evicted,
            commit_stall_seconds: Some(stall),
        },
    }
}

/// A group-topic's figures, aggregated over its partitions as the model does.
fn topic(
    name: &str,
    rewinds: (u64, u64),
    partitions: Vec<GroupPartitionReport>,
) -> GroupTopicReport {
    GroupTopicReport::from_partitions(Arc::from(name), rewinds, partitions)
}

/// The groups of the `prod` snapshot, one status per group:
/// - `billing` is `evicting`: payments/0 committed 10 below the low watermark 40 (30 messages
///   evicted, countdown 0, 81 s of a 90 s retention used); it rewound twice on orders;
/// - `legacy…` is `stop`: behind for 20 min without a commit, and its time lag is not known yet
///   (timestamp read pending), so it has no time-lag, eviction or usage series;
/// - `reporting` is `rewind`: caught up after rewinding 1,400 messages (its commit on the
///   vanished topic `gone` is skipped);
/// - `search` is `ok`, caught up on the compacted `audit`: no eviction or usage series; it is a
///   KIP-848 `consumer` group, the others `classic`.
///
/// Offset lags are `max(0, H − max(C, L))` of the snapshot; uncommitted partitions count the
/// group's topics' partitions without a commit.
fn groups() -> Vec<GroupReport> {
    let (none, zero) = (None, Some(0.0));
    vec![
        GroupReport::from_topics(
            "billing".into(),
            GroupState::Stable,
            Some(3),
            0,
            Status::Evicting,
            vec![
                topic(
                    "orders",
                    (2, 350),
                    vec![
                        partition((
                            0,
                            1_400,
                            100,
                            Some(604.8),
                            Some(604_195.2),
                            Some(0.001),
                            0,
                            45.0,
                        )),
                        partition((
                            1,
                            1_990,
                            10,
                            Some(60.48),
                            Some(604_739.52),
                            Some(0.0001),
                            0,
                            0.0,
                        )),
                        partition((2, 250, 0, zero, none, zero, 0, 0.0)),
                    ],
                ),
                topic(
                    "payments",
                    (0, 0),
                    vec![
                        partition((0, 10, 50, Some(81.0), zero, Some(0.9), 30, 120.0)),
                        partition((1, 12, 0, zero, none, zero, 0, 0.0)),
                    ],
                ),
            ],
        ),
        GroupReport::from_topics(
            "legacy \"nightly\" C:\\jobs".into(),
            GroupState::Unknown,
            None,
            2,
            Status::Stop,
            vec![topic(
                "orders",
                (0, 0),
                vec![partition((1, 0, 2_000, none, none, none, 0, 1200.0))],
            )],
        ),
        GroupReport::from_topics(
            "reporting".into(),
            GroupState::Empty,
            Some(0),
            2,
            Status::Rewind,
            vec![topic(
                "orders",
                (1, 1_400),
                vec![partition((0, 1_500, 0, zero, none, zero, 0, 0.0))],
            )],
        ),
        GroupReport {
            group_type: GroupType::Consumer,
            ..GroupReport::from_topics(
                "search".into(),
                GroupState::Stable,
                Some(1),
                0,
                Status::Ok,
                vec![topic(
                    "audit",
                    (0, 0),
                    vec![partition((0, 0, 0, zero, none, none, 0, 0.0))],
                )],
            )
        },
    ]
}

/// Cluster `prod`: three topics, four groups (one whose id needs escaping, one that could not
/// be described), polled successfully, with hand-chosen analytics figures. Cluster `staging`: never polled
/// successfully.
fn input() -> Vec<ClusterState> {
    let snapshot = Snapshot {
        taken_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        topics: vec![
            TopicSnapshot {
                name: Arc::from("audit"),
                partitions: partitions(&[(0, 0)]),
                config: TopicConfig {
                    retention_ms: Some(-1),
                    retention_bytes: Some(-1),
                    cleanup_policy: Some("compact".into()),
                },
            },
            TopicSnapshot {
                name: Arc::from("orders"),
                partitions: partitions(&[(100, 1_500), (0, 2_000), (250, 250)]),
                config: TopicConfig {
                    retention_ms: Some(604_800_000),
                    retention_bytes: Some(1_073_741_824),
                    cleanup_policy: Some("delete".into()),
                },
            },
            TopicSnapshot {
                name: Arc::from("payments"),
                partitions: partitions(&[(40, 90), (0, 12)]),
                config: TopicConfig {
                    retention_ms: Some(90_000),
                    retention_bytes: None,
                    cleanup_policy: Some("delete".into()),
                },
            },
        ],
        groups: vec![
            GroupSnapshot {
                id: "billing".into(),
                group_type: GroupType::Classic,
                state: GroupState::Stable,
                members: Some(3),
                offsets: [
                    commits("orders", &[(0, 1_400), (1, 1_990), (2, 250)]),
                    commits("payments", &[(0, 10), (1, 12)]),
                ]
                .concat(),
            },
            GroupSnapshot {
                id: "legacy \"nightly\" C:\\jobs".into(),
                group_type: GroupType::Classic,
                state: GroupState::Unknown,
                members: None,
                offsets: commits("orders", &[(1, 0)]),
            },
            GroupSnapshot {
                id: "reporting".into(),
                group_type: GroupType::Classic,
                state: GroupState::Empty,
                members: Some(0),
                offsets: [commits("gone", &[(0, 7)]), commits("orders", &[(0, 1_500)])].concat(),
            },
            GroupSnapshot {
                id: "search".into(),
                group_type: GroupType::Consumer,
                state: GroupState::Stable,
                members: Some(1),
                offsets: commits("audit", &[(0, 0)]),
            },
        ],
    };

    let report = Report {
        topics: model::topic_reports(&snapshot),
        groups: groups(),
    };
    let mut prod = ClusterState::new("prod");
    prod.report = Some(Arc::new(report));
    prod.up = true;
    prod.last_success = Some(UNIX_EPOCH + Duration::from_millis(1_700_000_004_250));
    for seconds in [0.08, 0.3, 1.75] {
        prod.poll_duration.observe(seconds);
    }
    prod.errors = BTreeMap::from([(Stage::DescribeGroups, 2)]);
    prod.requests = BTreeMap::from([
        ("1".to_owned(), 120),
        ("2".to_owned(), 95),
        ("bootstrap".to_owned(), 3),
    ]);
    prod.timestamp_reads_pending = 5;

    let mut staging = ClusterState::new("staging");
    staging.poll_duration.observe(30.0);
    staging.errors = BTreeMap::from([(Stage::Metadata, 4)]);
    staging.requests = BTreeMap::from([("bootstrap".to_owned(), 4)]);

    vec![prod, staging]
}

fn settings(compat_kafka_lag_exporter: bool) -> RenderSettings {
    RenderSettings {
        granularity: Granularity::Partition,
        max_series: 100_000,
        version: "1.2.3",
        revision: "0123abcd".into(),
        compat_kafka_lag_exporter,
        shard_zero: true,
        config_reload: Some(ConfigReload {
            successful: true,
            last_success: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        }),
        server: lagwatch::metrics::ServerMetrics::default(),
    }
}

/// lagwatch's Kafka families: the input gives each at least one series.
const KAFKA_FAMILY_COUNT: usize = 31;
/// kafka-lag-exporter's families (`compat: [kafka_lag_exporter]`).
const COMPAT_FAMILY_COUNT: usize = 7;
/// prod's Kafka series (staging has no report). Always level 55: topic-wide 12, group 33
/// (status 4, time lag 3, eviction 1, usage 2, …), rewind counters 10. Topic level 28 (5
/// group-topics). Partition level 46: partition offsets 12, group-partitions 34 (8 with a
/// commit; time lag known on 7, eviction countdown on 3).
const SERIES: usize = 129;
/// kafka-lag-exporter's series: max_lag 4, max_lag_seconds 3, sum_lag 4, topic_sum_lag 5,
/// group_offset 8, group_lag 8, group_lag_seconds 7.
const COMPAT_SERIES: usize = 39;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file, or rewrites the file under `LAGWATCH_UPDATE_GOLDEN=1`.
fn check_golden(name: &str, actual: &[u8]) {
    let path = golden_path(name);
    let actual = std::str::from_utf8(actual).expect("exposition is UTF-8");
    if std::env::var_os("LAGWATCH_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with LAGWATCH_UPDATE_GOLDEN=1 cargo test --test golden",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = exp
        .iter()
        .zip(&act)
        .position(|(e, a)| e != a)
        .unwrap_or(exp.len().min(act.len()));
    let show = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(first.saturating_sub(2))
            .take(6)
            .map(|(i, l)| format!("{:>5} {l}\n", i + 1))
            .collect::<String>()
    };
    panic!(
        "{} differs from the render ({} vs {} lines), first at line {}:\n--- expected\n{}+++ actual\n{}\
         If the change is intended: LAGWATCH_UPDATE_GOLDEN=1 cargo test --test golden",
        path.display(),
        exp.len(),
        act.len(),
        first + 1,
        show(&exp),
        show(&act),
    );
}

/// `promtool check metrics` on the text format must print nothing and succeed.
fn promtool_check(text: &[u8]) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("promtool is not on PATH: run .ci/setup (CI installs it)")
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(text).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.is_empty(),
        "promtool check metrics ({}):\n{said}",
        out.status
    );
}

#[test]
fn exposition_matches_golden_files_and_passes_promtool() {
    let rendered = metrics::render(&input(), &settings(false));
    let text = rendered.text.decompress();
    check_golden("exposition.txt", &text);
    check_golden("exposition.om.txt", &rendered.openmetrics.decompress());
    promtool_check(&text);
    // Every Kafka family of lagwatch has at least one series.
    let text = std::str::from_utf8(&text).expect("UTF-8");
    assert_eq!(text.matches("# TYPE kafka_").count(), KAFKA_FAMILY_COUNT);
    assert_eq!((rendered.series, rendered.dropped), (SERIES, 0));
}

/// `compat: [kafka_lag_exporter]`: the same input with kafka-lag-exporter's families, and
/// `cluster_name` on `kafka_partition_*`.
#[test]
fn compat_exposition_matches_golden_files_and_passes_promtool() {
    let rendered = metrics::render(&input(), &settings(true));
    let text = rendered.text.decompress();
    check_golden("exposition.compat.txt", &text);
    check_golden(
        "exposition.compat.om.txt",
        &rendered.openmetrics.decompress(),
    );
    promtool_check(&text);
    let text = std::str::from_utf8(&text).expect("UTF-8");
    assert_eq!(
        text.matches("# TYPE kafka_").count(),
        KAFKA_FAMILY_COUNT + COMPAT_FAMILY_COUNT
    );
    assert_eq!(
        (rendered.series, rendered.dropped),
        (SERIES + COMPAT_SERIES, 0)
    );
}

/// Scenario time: seconds after a fixed instant.
const SCENARIO_BASE_SECS: u64 = 1_700_000_000;

fn scenario_at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(SCENARIO_BASE_SECS + secs)
}

/// The scripted snapshot of cluster `lab` at scenario second `t` (polls every 30 s). Producers
/// write 10 records/s to every partition, and record `o` was written at second `o / 10 − 600`
/// (what [`scenario_record_ms`] answers), so `H = 6,000 + 10 t`.
/// - `events` (2 partitions, 1 h retention): `lagging` commits at half the production rate on
///   both partitions (lag rising: `warn`); `stalled` has a member but its commit on events/0
///   never moves (`stall`; events/1 uncommitted); `rewinder` is caught up on events/1 until it
///   is reset 1,300 records back at 60 s (`rewind`).
/// - `short` (1 partition, 10 min retention): `evicting` sits at offset 200; at 60 s retention
///   deletes everything below 1,000, so 800 records are lost unread (`evicting`).
fn scenario_snapshot(t: u64) -> Snapshot {
    let t = t as i64;
    let head = 6_000 + 10 * t;
    let low = if t >= 60 { 1_000 } else { 0 };
    let deleting = |retention_ms| TopicConfig {
        retention_ms: Some(retention_ms),
        retention_bytes: None,
        cleanup_policy: Some("delete".into()),
    };
    let group = |id: &str, members, offsets| GroupSnapshot {
        id: id.into(),
        group_type: GroupType::Classic,
        state: GroupState::Stable,
        members: Some(members),
        offsets,
    };
    let lagging = 5_900 + 5 * t;
    let rewinder = if t < 60 { head } else { head - 1_300 - 300 };
    Snapshot {
        taken_at: scenario_at(t as u64),
        topics: vec![
            TopicSnapshot {
                name: Arc::from("events"),
                partitions: partitions(&[(0, head), (0, head)]),
                config: deleting(3_600_000),
            },
            TopicSnapshot {
                name: Arc::from("short"),
                partitions: partitions(&[(low, head)]),
                config: deleting(600_000),
            },
        ],
        groups: vec![
            group("evicting", 1, commits("short", &[(0, 200)])),
            group(
                "lagging",
                2,
                commits("events", &[(0, lagging), (1, lagging)]),
            ),
            group("rewinder", 1, commits("events", &[(1, rewinder)])),
            group("stalled", 1, commits("events", &[(0, 5_500)])),
        ],
    }
}

/// The timestamp of record `offset` (any partition), ms since the epoch: the reads `kafka/`
/// would make, answered from the scenario's production rate.
fn scenario_record_ms(offset: i64) -> i64 {
    (SCENARIO_BASE_SECS as i64 - 600) * 1000 + offset * 100
}

/// Four polls of the real model over the scripted snapshots, both phases, `now` 2 s after each
/// snapshot; returns cluster `lab` as the daemon serves it after the last poll, and the events
/// the polls logged.
fn scenario() -> (ClusterState, Vec<Event>) {
    // `lagging` is 57 s behind after the last poll: a 30 s time-lag gate keeps it `warn`.
    let mut analytics = ClusterAnalytics::new(AnalyticsSettings {
        window: 3,
        min_time_lag: Duration::from_secs(30),
        ..AnalyticsSettings::default()
    });
    let mut lab = ClusterState::new("lab");
    let mut events = Vec::new();
    for t in [0, 30, 60, 90] {
        let snapshot = scenario_snapshot(t);
        let plan = analytics.plan_reads(&snapshot);
        let reads: Vec<_> = plan
            .reads
            .iter()
            .map(|r| (r.clone(), Some(scenario_record_ms(r.offset))))
            .collect();
        let result = analytics.finish(&snapshot, &reads, scenario_at(t + 2));
        events.extend(result.events);
        lab.timestamp_reads_pending = result.timestamp_reads_pending as u64;
        lab.report = Some(Arc::new(result.report));
        lab.up = true;
        lab.last_success = Some(scenario_at(t + 2));
        lab.poll_duration.observe(0.25);
    }
    (lab, events)
}

/// The real analytics, not hand-built figures, end in a golden exposition: a model regression
/// shows up as a diff of `analytics-scenario.txt`.
#[test]
fn analytics_scenario_matches_golden_file_and_passes_promtool() {
    let (lab, events) = scenario();
    let report = lab.report.clone().expect("report");
    let statuses: Vec<(&str, Status)> = report
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("evicting", Status::Evicting),
            ("lagging", Status::Warn),
            ("rewinder", Status::Rewind),
            ("stalled", Status::Stall),
        ]
    );
    assert!(events.contains(&Event::Rewind {
        group: "rewinder".into(),
        topic: Arc::from("events"),
        partition: 1,
        from: 6_300,
        to: 5_000,
    }));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::MessagesEvicted { group, evicted: 800, .. } if group == "evicting"
    )));
    let rendered = metrics::render(&[lab], &settings(false));
    let text = rendered.text.decompress();
    check_golden("analytics-scenario.txt", &text);
    promtool_check(&text);
}
