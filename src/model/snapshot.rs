//! What one poll of one cluster saw, in domain terms. Filled by `kafka/`, read by the model.
//! Offsets are Kafka offsets (`i64`); a missing value is `None`, never a sentinel.

use std::sync::Arc;
use std::time::SystemTime;

/// One poll of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When the poll's offsets were read.
    pub taken_at: SystemTime,
    /// Selected topics, sorted by name. Topics whose offsets could not be read are absent.
    pub topics: Vec<TopicSnapshot>,
    /// Selected groups, sorted by id, one entry per group id.
    pub groups: Vec<GroupSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicSnapshot {
    pub name: Arc<str>,
    /// Sorted by partition id; a partition whose offsets failed is absent.
    pub partitions: Vec<PartitionOffsets>,
    pub config: TopicConfig,
}

/// Watermarks of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    /// Low watermark: the oldest offset still stored.
    pub earliest: i64,
    /// High watermark (last stable offset under `read_committed`): the next offset to be written.
    pub latest: i64,
}

/// Retention settings of a topic, as the broker reported them. `None` means the broker did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    /// `retention.ms`; a negative value means infinite.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`; a negative value means infinite.
    pub retention_bytes: Option<i64>,
    /// `cleanup.policy`, e.g. `delete`, `compact`, `compact,delete`.
    pub cleanup_policy: Option<String>,
}

/// A group's coordinator-side state, as label values of `kafka_consumergroup_state`. Which
/// states a group can be in depends on its type (`docs/metrics.md`): `not_ready` is a streams
/// group's whose source topics are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum GroupState {
    Stable,
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Assigning,
    Reconciling,
    NotReady,
    Dead,
    #[default]
    Unknown,
}

impl GroupState {
    pub const ALL: [GroupState; 9] = [
        GroupState::Stable,
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Assigning,
        GroupState::Reconciling,
        GroupState::NotReady,
        GroupState::Dead,
        GroupState::Unknown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Stable => "stable",
            GroupState::Empty => "empty",
            GroupState::PreparingRebalance => "preparing_rebalance",
            GroupState::CompletingRebalance => "completing_rebalance",
            GroupState::Assigning => "assigning",
            GroupState::Reconciling => "reconciling",
            GroupState::NotReady => "not_ready",
            GroupState::Dead => "dead",
            GroupState::Unknown => "unknown",
        }
    }

    /// Parses a broker's state name in any of its spellings (`Stable`, `PreparingRebalance`,
    /// `preparing_rebalance`, `AwaitingSync`, `NotReady`); anything else is `Unknown`.
    pub fn from_broker(name: &str) -> GroupState {
        let folded: String = name
            .chars()
            .filter(|c| *c != '_' && *c != '-' && *c != ' ')
            .flat_map(char::to_lowercase)
            .collect();
        match folded.as_str() {
            "stable" => GroupState::Stable,
            "empty" => GroupState::Empty,
            "preparingrebalance" => GroupState::PreparingRebalance,
            "completingrebalance" | "awaitingsync" => GroupState::CompletingRebalance,
            "assigning" => GroupState::Assigning,
            "reconciling" => GroupState::Reconciling,
            "notready" => GroupState::NotReady,
            "dead" => GroupState::Dead,
            _ => GroupState::Unknown,
        }
    }
}

/// The kind of group (Kafka's group type), the `group_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum GroupType {
    /// JoinGroup/SyncGroup, and every group of a broker that does not say.
    #[default]
    Classic,
    /// KIP-848 consumer groups.
    Consumer,
    /// KIP-932 share groups.
    Share,
    /// KIP-1071 streams groups.
    Streams,
}

impl GroupType {
    pub const ALL: [GroupType; 4] = [
        GroupType::Classic,
        GroupType::Consumer,
        GroupType::Share,
        GroupType::Streams,
    ];

    /// The label value, which is also Kafka's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
            GroupType::Share => "share",
            GroupType::Streams => "streams",
        }
    }

    /// Parses Kafka's name of a group type (any case); `None` for a type this version does not know.
    pub fn from_broker(name: &str) -> Option<GroupType> {
        GroupType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    pub id: String,
    pub group_type: GroupType,
    pub state: GroupState,
    /// Member count; `None` when the group could not be described.
    pub members: Option<u32>,
    /// Committed offsets of the selected topics, sorted by (topic, partition).
    pub offsets: Vec<CommittedOffset>,
}

/// C of one group-partition. For a share group (which commits nothing) it is the
/// share-partition start offset: every record before it is delivered for good (acknowledged,
/// rejected or out of delivery attempts), so it is the next record the group has not finished
/// with, and every figure of C reads it in that position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: Arc<str>,
    pub partition: i32,
    /// The next offset the group will read (a share group: the share-partition start offset).
    pub offset: i64,
    /// A share group's lag on the partition as its coordinator counts it (records not yet
    /// delivered for good, DescribeShareGroupOffsets v1); `None` when the broker does not
    /// report it, and for every other group type.
    pub broker_lag: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_state_names_map_to_label_values() {
        // (broker spelling, expected state): Kafka's Java names, librdkafka's enum names and KIP-848 names.
        let cases = [
            ("Stable", GroupState::Stable),
            ("STABLE", GroupState::Stable),
            ("Empty", GroupState::Empty),
            ("PreparingRebalance", GroupState::PreparingRebalance),
            ("CompletingRebalance", GroupState::CompletingRebalance),
            ("AwaitingSync", GroupState::CompletingRebalance),
            ("Assigning", GroupState::Assigning),
            ("Reconciling", GroupState::Reconciling),
            ("NotReady", GroupState::NotReady),
            ("not_ready", GroupState::NotReady),
            ("Dead", GroupState::Dead),
            ("Unknown", GroupState::Unknown),
            ("", GroupState::Unknown),
            ("something-new", GroupState::Unknown),
        ];
        for (name, want) in cases {
            assert_eq!(GroupState::from_broker(name), want, "{name:?}");
        }
        for state in GroupState::ALL {
            assert_eq!(GroupState::from_broker(state.as_str()), state);
        }
    }

    #[test]
    fn group_types_read_kafkas_names() {
        // (Kafka's spelling, expected): ListGroups v5 answers lower case; any case is accepted.
        let cases = [
            ("classic", Some(GroupType::Classic)),
            ("Consumer", Some(GroupType::Consumer)),
            ("share", Some(GroupType::Share)),
            ("streams", Some(GroupType::Streams)),
            // A type added by a later Kafka is not guessed.
            ("", None),
            ("future", None),
        ];
        for (name, want) in cases {
            assert_eq!(GroupType::from_broker(name), want, "{name:?}");
        }
    }
}
