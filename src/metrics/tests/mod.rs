//! Render tests: a small fixed input, asserted line by line on real values, one file per topic;
//! this file holds the fixtures.

mod analytics;
mod compat;
mod format;
mod levels;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::model::analytics::{AnalyticsSettings, ClusterAnalytics, Status};
use crate::model::{
    CommittedOffset, Figures, GroupPartitionReport, GroupReport, GroupSnapshot, GroupState,
    GroupTopicReport, GroupType, Report, Snapshot,
};

fn commit(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
    CommittedOffset {
        topic: Arc::from(topic),
        partition,
        offset,
        broker_lag: None,
    }
}

/// Topics `orders` (3 partitions, 1h retention) and `payments` (2 partitions, retention
/// unknown); groups `billing` (lag 26 on orders, 4 on payments, one partition uncommitted) and
/// `shipping` (caught up on orders/0, two partitions uncommitted). The figures are the model's
/// after one poll whose timestamp reads went unanswered: billing is `evicting` (4 messages
/// evicted on payments/0), time lag is known only on the caught-up partitions.
///
/// Series per level: always 31 (topic 7; group 18: state, members, uncommitted, lag, status,
/// time lag, usage, evicted, stall, 2 each; rewind counters 6), topic 15 (lag 3, time lag 2,
/// usage 2, evicted 3, stall 3, skew 2), partition 27 (offsets 10, committed 5, lag 5, time lag
/// 2, evicted 5): 73.
fn report_with_groups(groups: Vec<GroupSnapshot>) -> Arc<Report> {
    let snapshot = Snapshot {
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        topics: crate::model::fixtures::orders_and_payments(),
        groups,
    };
    // One poll of the real model, every timestamp read unanswered: time lag is known only where
    // the group is caught up.
    let mut analytics = ClusterAnalytics::new(AnalyticsSettings::default());
    let plan = analytics.plan_reads(&snapshot);
    let unanswered: Vec<_> = plan.reads.into_iter().map(|r| (r, None)).collect();
    Arc::new(
        analytics
            .finish(&snapshot, &unanswered, snapshot.taken_at)
            .report,
    )
}

fn report() -> Arc<Report> {
    report_with_groups(vec![
        GroupSnapshot {
            id: "billing".into(),
            group_type: GroupType::Classic,
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
            group_type: GroupType::Classic,
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
        config_reload: None,
        server: crate::metrics::ServerMetrics::default(),
    }
}

fn text(r: &Rendered) -> String {
    String::from_utf8(r.text.decompress()).expect("text is UTF-8")
}

fn om(r: &Rendered) -> String {
    String::from_utf8(r.openmetrics.decompress()).expect("openmetrics is UTF-8")
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

/// `report()` with chosen analytics figures per partition, aggregated as the model does: billing is `evicting` (4 messages evicted on payments/0),
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
    let mut figures = partitions.into_iter();
    for g in &mut report.groups {
        let topics = std::mem::take(&mut g.topics).into_iter().map(|t| {
            let values = figures.next().unwrap_or_default();
            let partitions = t.partitions.iter().zip(values).map(
                |(p, &(lag, eviction, usage, evicted, stall))| GroupPartitionReport {
                    figures: Figures {
                        lag_seconds: lag,
                        eviction_seconds: eviction,
                        retention_usage_ratio: usage,
                        evicted_messages: evicted,
                        commit_stall_seconds: Some(stall),
                        ..p.figures
                    },
                    ..*p
                },
            );
            GroupTopicReport::from_partitions(t.topic, (0, 0), partitions.collect())
        });
        let topics: Vec<GroupTopicReport> = topics.collect();
        let evicting = topics.iter().any(|t| t.figures.evicted_messages > 0);
        let status = if evicting {
            Status::Evicting
        } else {
            Status::Ok
        };
        *g = GroupReport::from_topics(
            g.id.clone(),
            g.state,
            g.members,
            g.uncommitted_partitions,
            status,
            topics,
        );
    }
    report.groups[0].topics[0].rewinds_total = 1;
    report.groups[0].topics[0].rewound_messages_total = 7;
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
