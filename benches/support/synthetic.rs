//! Synthetic cluster snapshots for the scale benchmark and the memory check (PRODUCT.md §11).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lagwatch::cluster_state::ClusterState;
use lagwatch::config::Granularity;
use lagwatch::metrics::RenderSettings;
use lagwatch::model::analytics::{AnalyticsSettings, ClusterAnalytics};
use lagwatch::model::{
    self, CommittedOffset, GroupSnapshot, GroupState, GroupType, PartitionOffsets, Snapshot,
    TopicConfig, TopicSnapshot,
};

/// `topics` topics of `partitions_per_topic` partitions; `groups` groups, each reading
/// `topics_per_group` consecutive topics.
pub fn snapshot(
    topics: usize,
    partitions_per_topic: i32,
    groups: usize,
    topics_per_group: usize,
) -> Snapshot {
    let names: Vec<Arc<str>> = (0..topics)
        .map(|t| Arc::from(format!("topic-{t:05}")))
        .collect();
    let topic_snapshots = names
        .iter()
        .map(|name| TopicSnapshot {
            name: name.clone(),
            partitions: (0..partitions_per_topic)
                .map(|p| PartitionOffsets {
                    partition: p,
                    earliest: 1_000,
                    latest: 1_000_000 + i64::from(p),
                })
                .collect(),
            config: TopicConfig {
                retention_ms: Some(604_800_000),
                retention_bytes: None,
                cleanup_policy: Some("delete".into()),
            },
        })
        .collect();
    let group_snapshots = (0..groups)
        .map(|g| {
            let first = (g * topics_per_group) % topics;
            let mut offsets = Vec::new();
            for t in 0..topics_per_group {
                let topic = &names[(first + t) % topics];
                for p in 0..partitions_per_topic {
                    offsets.push(CommittedOffset {
                        topic: topic.clone(),
                        partition: p,
                        // 0 to 49 messages behind: within one poll's worth of production.
                        offset: 1_000_000 + i64::from(p) - (g as i64 % 50),
                        broker_lag: None,
                    });
                }
            }
            offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            GroupSnapshot {
                id: format!("group-{g:05}"),
                group_type: GroupType::Classic,
                state: GroupState::Stable,
                members: Some(4),
                offsets,
            }
        })
        .collect();
    Snapshot {
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        topics: topic_snapshots,
        groups: group_snapshots,
    }
}

/// The report of one poll of `snapshot` by fresh analytics, no timestamp read answered.
pub fn report(snapshot: &Snapshot) -> model::Report {
    let mut analytics = ClusterAnalytics::new(AnalyticsSettings::default());
    analytics.plan_reads(snapshot);
    analytics.finish(snapshot, &[], snapshot.taken_at).report
}

pub fn cluster(report: model::Report) -> ClusterState {
    let mut c = ClusterState::new("bench".to_string());
    c.report = Some(Arc::new(report));
    c.up = true;
    c
}

pub fn settings(granularity: Granularity) -> RenderSettings {
    RenderSettings {
        granularity,
        max_series: usize::MAX,
        version: "bench",
        revision: "bench".into(),
        compat_kafka_lag_exporter: false,
        shard_zero: true,
        config_reload: None,
        server: lagwatch::metrics::ServerMetrics::default(),
    }
}

/// The next poll of a busy cluster: every head and every commit `by` offsets further, 30 s later.
pub fn advance(snapshot: &mut Snapshot, by: i64) {
    snapshot.taken_at += Duration::from_secs(30);
    for t in &mut snapshot.topics {
        for p in &mut t.partitions {
            p.latest += by;
        }
    }
    for g in &mut snapshot.groups {
        for c in &mut g.offsets {
            c.offset += by;
        }
    }
}
