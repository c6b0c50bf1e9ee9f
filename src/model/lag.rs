//! Offset lag (PRODUCT.md §4, first bullet): per partition, summed per topic and group.
//! Pure: a snapshot in, a report out.

use std::sync::Arc;

use super::analytics::{Analytics, GroupAnalytics, Status};
use super::snapshot::{GroupSnapshot, GroupState, PartitionOffsets, Snapshot, TopicSnapshot};

/// What the model concluded about one cluster from one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub topics: Vec<TopicReport>,
    pub groups: Vec<GroupReport>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicReport {
    pub name: Arc<str>,
    pub partitions: Vec<PartitionOffsets>,
    /// Sum of high watermarks over the partitions.
    pub latest_offsets: i64,
    /// Sum of low watermarks over the partitions.
    pub earliest_offsets: i64,
    /// `retention.ms` in seconds; `None` when infinite or unknown.
    pub retention_seconds: Option<f64>,
    /// `retention.bytes`; `None` when infinite or unknown.
    pub retention_bytes: Option<i64>,
}

/// A group's figures. The fields after `topics` come from the analytics
/// ([`Report::apply_analytics`]); `None` until applied, or when unknown this poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupReport {
    pub id: String,
    pub state: GroupState,
    pub members: Option<u32>,
    /// Partitions of the group's topics that have no committed offset.
    pub uncommitted_partitions: u32,
    /// Sum of partition lags.
    pub lag_messages: i64,
    /// Topics the group has committed offsets on, sorted by name.
    pub topics: Vec<GroupTopicReport>,
    pub status: Option<Status>,
    /// Max over the partitions whose time lag is known.
    pub lag_seconds: Option<f64>,
    /// Min over partitions.
    pub eviction_seconds: Option<f64>,
    /// Max over partitions.
    pub retention_usage_ratio: Option<f64>,
    /// Sum over partitions.
    pub evicted_messages: Option<i64>,
    /// Max over partitions.
    pub commit_stall_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupTopicReport {
    pub topic: Arc<str>,
    pub lag_messages: i64,
    pub partitions: Vec<GroupPartitionReport>,
    pub lag_seconds: Option<f64>,
    pub eviction_seconds: Option<f64>,
    pub retention_usage_ratio: Option<f64>,
    pub evicted_messages: Option<i64>,
    pub commit_stall_seconds: Option<f64>,
    /// Max − min time lag across the topic's partitions.
    pub lag_skew_seconds: Option<f64>,
    /// Counters since lagwatch started.
    pub rewinds_total: Option<u64>,
    pub rewound_messages_total: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GroupPartitionReport {
    pub partition: i32,
    pub committed_offset: i64,
    pub lag_messages: i64,
    pub lag_seconds: Option<f64>,
    pub eviction_seconds: Option<f64>,
    pub retention_usage_ratio: Option<f64>,
    pub evicted_messages: Option<i64>,
    pub commit_stall_seconds: Option<f64>,
}

impl Report {
    /// Adds the analytics of the same snapshot to the matching groups, topics and partitions.
    pub fn apply_analytics(&mut self, analytics: &Analytics) {
        for group in &mut self.groups {
            let Ok(i) = analytics
                .groups
                .binary_search_by(|a| a.id.as_str().cmp(group.id.as_str()))
            else {
                continue;
            };
            group.apply(&analytics.groups[i]);
        }
    }
}

impl GroupReport {
    fn apply(&mut self, a: &GroupAnalytics) {
        self.status = Some(a.status);
        self.lag_seconds = a.lag_seconds;
        self.eviction_seconds = a.eviction_seconds;
        self.retention_usage_ratio = a.retention_usage_ratio;
        self.evicted_messages = Some(a.evicted_messages);
        self.commit_stall_seconds = Some(a.commit_stall_seconds);
        for topic in &mut self.topics {
            let Ok(ti) = a
                .topics
                .binary_search_by(|t| t.topic.as_ref().cmp(topic.topic.as_ref()))
            else {
                continue;
            };
            let at = &a.topics[ti];
            topic.lag_seconds = at.lag_seconds;
            topic.eviction_seconds = at.eviction_seconds;
            topic.retention_usage_ratio = at.retention_usage_ratio;
            topic.evicted_messages = Some(at.evicted_messages);
            topic.commit_stall_seconds = Some(at.commit_stall_seconds);
            topic.lag_skew_seconds = at.lag_skew_seconds;
            topic.rewinds_total = Some(at.rewinds_total);
            topic.rewound_messages_total = Some(at.rewound_messages_total);
            for p in &mut topic.partitions {
                let Ok(pi) = at
                    .partitions
                    .binary_search_by_key(&p.partition, |ap| ap.partition)
                else {
                    continue;
                };
                let ap = &at.partitions[pi];
                p.lag_seconds = ap.lag_seconds;
                p.eviction_seconds = ap.eviction_seconds;
                p.retention_usage_ratio = ap.retention_usage_ratio;
                p.evicted_messages = Some(ap.evicted_messages);
                p.commit_stall_seconds = Some(ap.commit_stall_seconds);
            }
        }
    }
}

/// Messages the group can still read: `max(0, H − max(C, L))`. Records already deleted below the
/// commit (C < L) are not lag.
pub fn partition_lag(committed: i64, offsets: PartitionOffsets) -> i64 {
    (offsets.latest - committed.max(offsets.earliest)).max(0)
}

/// Computes offset lag for every group of the snapshot.
pub fn report(snapshot: &Snapshot) -> Report {
    Report {
        topics: snapshot.topics.iter().map(topic_report).collect(),
        groups: snapshot
            .groups
            .iter()
            .map(|g| group_report(g, &snapshot.topics))
            .collect(),
    }
}

fn topic_report(topic: &TopicSnapshot) -> TopicReport {
    let positive = |v: Option<i64>| v.filter(|v| *v >= 0);
    TopicReport {
        name: topic.name.clone(),
        partitions: topic.partitions.clone(),
        latest_offsets: topic.partitions.iter().map(|p| p.latest).sum(),
        earliest_offsets: topic.partitions.iter().map(|p| p.earliest).sum(),
        retention_seconds: positive(topic.config.retention_ms).map(|ms| ms as f64 / 1000.0),
        retention_bytes: positive(topic.config.retention_bytes),
    }
}

/// `topics` is sorted by name, so lookups are binary searches.
fn group_report(group: &GroupSnapshot, topics: &[TopicSnapshot]) -> GroupReport {
    let mut out_topics: Vec<GroupTopicReport> = Vec::new();
    let mut uncommitted = 0u32;
    // Commits are sorted by (topic, partition): walk them one topic run at a time.
    let mut rest = &group.offsets[..];
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|c| c.topic == first.topic).count();
        let (commits, tail) = rest.split_at(run);
        rest = tail;
        // Commits on topics that are gone (or not selected) are skipped.
        let Ok(ti) = topics.binary_search_by(|t| t.name.as_ref().cmp(first.topic.as_ref())) else {
            continue;
        };
        let topic = &topics[ti];
        let mut partitions = Vec::with_capacity(commits.len());
        for c in commits {
            let Ok(pi) = topic
                .partitions
                .binary_search_by_key(&c.partition, |p| p.partition)
            else {
                continue;
            };
            partitions.push(GroupPartitionReport {
                partition: c.partition,
                committed_offset: c.offset,
                lag_messages: partition_lag(c.offset, topic.partitions[pi]),
                ..Default::default()
            });
        }
        uncommitted += (topic.partitions.len() - partitions.len()) as u32;
        if partitions.is_empty() {
            continue;
        }
        out_topics.push(GroupTopicReport {
            topic: topic.name.clone(),
            lag_messages: partitions.iter().map(|p| p.lag_messages).sum(),
            partitions,
            ..Default::default()
        });
    }
    GroupReport {
        id: group.id.clone(),
        state: group.state,
        members: group.members,
        uncommitted_partitions: uncommitted,
        lag_messages: out_topics.iter().map(|t| t.lag_messages).sum(),
        topics: out_topics,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::{CommittedOffset, TopicConfig};
    use std::time::{Duration, SystemTime};

    fn po(partition: i32, earliest: i64, latest: i64) -> PartitionOffsets {
        PartitionOffsets {
            partition,
            earliest,
            latest,
        }
    }

    #[test]
    fn partition_lag_table() {
        // (committed C, low L, high H, expected lag, why)
        let cases = [
            (4, 0, 10, 6, "plain lag: H - C"),
            (10, 0, 10, 0, "caught up: C = H"),
            (
                12,
                0,
                10,
                0,
                "commit past the head (truncation): never negative",
            ),
            (0, 0, 0, 0, "empty partition"),
            (
                2,
                5,
                10,
                5,
                "C < L: deleted records are evicted, not lag: H - L",
            ),
            (5, 5, 10, 5, "C = L"),
            (0, 10, 10, 0, "everything deleted and nothing new: 0"),
        ];
        for (i, (c, l, h, want, why)) in cases.into_iter().enumerate() {
            assert_eq!(partition_lag(c, po(0, l, h)), want, "case {i}: {why}");
        }
    }

    fn commit(topic: &Arc<str>, partition: i32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.clone(),
            partition,
            offset,
        }
    }

    #[test]
    fn report_sums_per_topic_and_group_and_counts_uncommitted() {
        let orders: Arc<str> = Arc::from("orders");
        let payments: Arc<str> = Arc::from("payments");
        let gone: Arc<str> = Arc::from("gone");
        let snapshot = Snapshot {
            taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            topics: vec![
                TopicSnapshot {
                    name: orders.clone(),
                    partitions: vec![po(0, 0, 10), po(1, 0, 20), po(2, 0, 30)],
                    config: TopicConfig {
                        retention_ms: Some(3_600_000),
                        retention_bytes: Some(-1),
                        cleanup_policy: Some("delete".into()),
                    },
                },
                TopicSnapshot {
                    name: payments.clone(),
                    partitions: vec![po(0, 5, 9), po(1, 0, 3)],
                    config: TopicConfig::default(),
                },
            ],
            groups: vec![GroupSnapshot {
                id: "billing".into(),
                state: GroupState::Empty,
                members: Some(0),
                offsets: vec![
                    commit(&gone, 0, 100),
                    commit(&orders, 0, 4),
                    commit(&orders, 1, 20),
                    commit(&orders, 2, 10),
                    commit(&payments, 0, 1),
                ],
            }],
        };
        let r = report(&snapshot);
        assert_eq!(r.topics[0].latest_offsets, 60);
        assert_eq!(r.topics[0].earliest_offsets, 0);
        assert_eq!(r.topics[0].retention_seconds, Some(3600.0));
        assert_eq!(r.topics[0].retention_bytes, None, "negative means infinite");
        assert_eq!(r.topics[1].retention_seconds, None, "unknown stays unknown");
        assert_eq!(r.topics[1].earliest_offsets, 5);

        let g = &r.groups[0];
        assert_eq!(g.topics.len(), 2, "the vanished topic is skipped");
        assert_eq!(g.topics[0].topic.as_ref(), "orders");
        let lags: Vec<i64> = g.topics[0]
            .partitions
            .iter()
            .map(|p| p.lag_messages)
            .collect();
        assert_eq!(lags, vec![6, 0, 20]);
        assert_eq!(g.topics[0].lag_messages, 26);
        // payments/0: C=1 < L=5, so lag is H - L = 4; payments/1 has no commit.
        assert_eq!(g.topics[1].lag_messages, 4);
        assert_eq!(g.lag_messages, 30);
        assert_eq!(g.uncommitted_partitions, 1);
        assert_eq!(g.members, Some(0));
    }
}
