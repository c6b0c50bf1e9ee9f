//! What the model concludes about one cluster from one poll: the [`Report`] that metrics, the
//! `/` page and `lagwatch lag` read. Topic figures come from the snapshot alone
//! ([`topic_reports`]); group figures come from the analytics' one walk over the committed
//! offsets (`analytics::ClusterAnalytics::finish`), which builds each partition's figures and
//! aggregates them here ([`GroupTopicReport::from_partitions`], [`GroupReport::from_topics`]).
//!
//! A value is `None` only when it is genuinely unknown this poll (time lag while the record
//! timestamp is not read yet) or undefined (eviction figures on topics that do not delete by
//! time, the countdown of a partition that is not behind).

use std::sync::Arc;

use super::analytics::skew::lag_skew_seconds;
use super::analytics::Status;
use super::snapshot::{GroupState, GroupType, PartitionOffsets, Snapshot, TopicSnapshot};

/// One cluster after one poll: topics sorted by name, groups by id.
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

/// A group's figures. Aggregates cover the partitions whose value is known; `None` when none is.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReport {
    pub id: String,
    pub group_type: GroupType,
    pub state: GroupState,
    /// `None` when the group could not be described.
    pub members: Option<u32>,
    /// Partitions of the group's topics that have no committed offset.
    pub uncommitted_partitions: u32,
    pub status: Status,
    /// Aggregated over the group's topics.
    pub figures: Figures,
    /// Topics with at least one committed partition, sorted by name.
    pub topics: Vec<GroupTopicReport>,
}

/// One group on one topic; aggregates as in [`GroupReport`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupTopicReport {
    pub topic: Arc<str>,
    /// Aggregated over the topic's partitions.
    pub figures: Figures,
    /// Max − min time lag over the partitions whose time lag is known, seconds.
    pub lag_skew_seconds: Option<f64>,
    /// Rewinds seen since lagwatch started (or since this group-topic reappeared).
    pub rewinds_total: u64,
    pub rewound_messages_total: u64,
    /// Sorted by partition id.
    pub partitions: Vec<GroupPartitionReport>,
}

/// One group-partition with a commit (PRODUCT.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GroupPartitionReport {
    pub partition: i32,
    /// C: the next offset the group will read.
    pub committed_offset: i64,
    pub figures: Figures,
}

/// The figures of a group-partition (PRODUCT.md §4), and of a group-topic and a group, which
/// aggregate them from the level below all in the same way ([`Figures::combine`]): messages summed,
/// time lag, usage and stall maxed, time to eviction minimized, unknown values left out.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Partition: `max(0, H − max(C, L))`.
    pub lag_messages: i64,
    /// Partition: `now − T(max(C, L))`, 0 when caught up; `None` while T is unknown (read
    /// budget spent).
    pub lag_seconds: Option<f64>,
    /// Partition: `T(C) + R − now`, ≥ 0; `None` when not behind, T(C) unknown or the topic keeps
    /// records forever.
    pub eviction_seconds: Option<f64>,
    /// Partition: `time lag / R`; `None` when T(C) is unknown or the topic keeps records forever.
    pub retention_usage_ratio: Option<f64>,
    /// Partition: `max(0, L − C)`.
    pub evicted_messages: i64,
    /// Partition: `stall_for`, seconds; 0 while not behind. `None` for a share group, which
    /// commits nothing (its start offset moves as records are acknowledged, and `stall` reads
    /// the window instead: `docs/status.md`).
    pub commit_stall_seconds: Option<f64>,
}

impl Figures {
    /// The aggregate of two sets of figures.
    pub fn combine(self, other: Figures) -> Figures {
        let known = |a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(pick(a, b)),
            (a, b) => a.or(b),
        };
        Figures {
            lag_messages: self.lag_messages + other.lag_messages,
            lag_seconds: known(self.lag_seconds, other.lag_seconds, f64::max),
            eviction_seconds: known(self.eviction_seconds, other.eviction_seconds, f64::min),
            retention_usage_ratio: known(
                self.retention_usage_ratio,
                other.retention_usage_ratio,
                f64::max,
            ),
            evicted_messages: self.evicted_messages + other.evicted_messages,
            commit_stall_seconds: known(
                self.commit_stall_seconds,
                other.commit_stall_seconds,
                f64::max,
            ),
        }
    }

    /// The aggregate of every set of figures in `parts`.
    pub fn of(parts: impl Iterator<Item = Figures>) -> Figures {
        parts.fold(Figures::default(), Figures::combine)
    }
}

impl GroupTopicReport {
    /// A group-topic's figures from its partitions', skew over the known time lags;
    /// `rewinds` are the (events, messages) counters.
    pub fn from_partitions(
        topic: Arc<str>,
        rewinds: (u64, u64),
        partitions: Vec<GroupPartitionReport>,
    ) -> Self {
        GroupTopicReport {
            topic,
            figures: Figures::of(partitions.iter().map(|p| p.figures)),
            lag_skew_seconds: lag_skew_seconds(partitions.iter().map(|p| p.figures.lag_seconds)),
            rewinds_total: rewinds.0,
            rewound_messages_total: rewinds.1,
            partitions,
        }
    }
}

impl GroupReport {
    /// A group's figures from its topics'. The other arguments are the snapshot's
    /// word on the group.
    pub fn from_topics(
        id: String,
        state: GroupState,
        members: Option<u32>,
        uncommitted_partitions: u32,
        status: Status,
        topics: Vec<GroupTopicReport>,
    ) -> Self {
        GroupReport {
            id,
            group_type: GroupType::default(),
            state,
            members,
            uncommitted_partitions,
            status,
            figures: Figures::of(topics.iter().map(|t| t.figures)),
            topics,
        }
    }
}

/// The topic figures of a snapshot, in its order (by name).
pub fn topic_reports(snapshot: &Snapshot) -> Vec<TopicReport> {
    snapshot.topics.iter().map(topic_report).collect()
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
