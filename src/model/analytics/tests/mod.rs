//! Multi-poll scenarios through [`ClusterAnalytics`]: the two phases, state across polls, and
//! every status rule driven by its window, one file per topic; this file holds their fixtures.
//! Times are seconds after a fixed base instant; the snapshot is taken at `now` unless a case
//! says otherwise.

mod eviction;
mod shape;
mod skew;
mod status;
mod time_lag;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::model::snapshot::{
    CommittedOffset, GroupSnapshot, GroupState, GroupType, PartitionOffsets, Snapshot, TopicConfig,
    TopicSnapshot,
};

const BASE_SECS: u64 = 1_700_000_000;
const HOUR: i64 = 3600;

fn at(secs: i64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(BASE_SECS);
    if secs >= 0 {
        base + Duration::from_secs(secs.unsigned_abs())
    } else {
        base - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Epoch milliseconds of scenario second `secs`: what a record read returns.
fn ms(secs: i64) -> i64 {
    (BASE_SECS as i64 + secs) * 1000
}

fn deleting(retention_secs: i64) -> TopicConfig {
    TopicConfig {
        retention_ms: Some(retention_secs * 1000),
        retention_bytes: None,
        cleanup_policy: Some("delete".into()),
    }
}

fn compacted() -> TopicConfig {
    TopicConfig {
        retention_ms: Some(HOUR * 1000),
        retention_bytes: None,
        cleanup_policy: Some("compact".into()),
    }
}

/// `partitions`: (partition, L, H).
fn topic(name: &str, config: TopicConfig, partitions: &[(i32, i64, i64)]) -> TopicSnapshot {
    TopicSnapshot {
        name: Arc::from(name),
        partitions: partitions
            .iter()
            .map(|&(partition, earliest, latest)| PartitionOffsets {
                partition,
                earliest,
                latest,
            })
            .collect(),
        config,
    }
}

/// `commits`: (topic, partition, C), sorted.
fn group(id: &str, members: Option<u32>, commits: &[(&str, i32, i64)]) -> GroupSnapshot {
    GroupSnapshot {
        id: id.into(),
        group_type: GroupType::Classic,
        state: GroupState::Stable,
        members,
        offsets: commits
            .iter()
            .map(|&(topic, partition, offset)| CommittedOffset {
                topic: Arc::from(topic),
                partition,
                offset,
                broker_lag: None,
            })
            .collect(),
    }
}

fn snapshot(taken_secs: i64, topics: Vec<TopicSnapshot>, groups: Vec<GroupSnapshot>) -> Snapshot {
    Snapshot {
        taken_at: at(taken_secs),
        topics,
        groups,
    }
}

/// Both phases of one poll at `now_secs`; `record_ms` answers the reads.
fn poll(
    analytics: &mut ClusterAnalytics,
    snapshot: &Snapshot,
    now_secs: i64,
    record_ms: impl Fn(&TimestampRead) -> Option<i64>,
) -> (ReadPlan, Analytics) {
    let plan = analytics.plan_reads(snapshot);
    let reads: Vec<(TimestampRead, Option<i64>)> = plan
        .reads
        .iter()
        .map(|r| (r.clone(), record_ms(r)))
        .collect();
    let out = analytics.finish(snapshot, &reads, at(now_secs));
    (plan, out)
}

fn no_reads(_: &TimestampRead) -> Option<i64> {
    panic!("no read expected")
}

fn read(topic: &str, partition: i32, offset: i64) -> TimestampRead {
    TimestampRead {
        topic: Arc::from(topic),
        partition,
        offset,
    }
}

fn settings() -> AnalyticsSettings {
    AnalyticsSettings::default()
}

fn close(got: Option<f64>, want: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() < 1e-6)
}
