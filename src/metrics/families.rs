//! The metric families, one table entry each: name, help, type, unit, level of detail and how to
//! read its series off a report. Adding a family is adding one entry; counting (for the series
//! guard) and encoding both walk the same entry, so they cannot disagree.
//!
//! Order of the tables is the order of the exposition. `docs/metrics.md` documents every entry.
//!
//! Over 600 lines on purpose: it is one declarative table (about ten lines per family, 47
//! families) whose order is the exposition's, so splitting it would scatter that order; the
//! code around it is short.

use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;

use crate::kafka::Stage;
use crate::model::{
    GroupPartitionReport, GroupReport, GroupTopicReport, PartitionOffsets, Report, TopicReport,
};

/// What the collector needs of one cluster, owned: a prometheus-client collector is `'static`.
/// Cloning is cheap: the report is shared, the histogram clone shares its buckets.
#[derive(Debug)]
pub(crate) struct ClusterView {
    pub name: String,
    pub report: Option<Arc<Report>>,
    pub up: bool,
    /// Unix time, seconds.
    pub last_success: Option<f64>,
    pub poll_duration: Histogram,
    /// Cumulative errors, indexed like [`Stage::ALL`].
    pub errors: [u64; Stage::ALL.len()],
    pub requests: Vec<(String, u64)>,
    pub timestamp_reads_pending: u64,
    pub unauthorized_topics: u64,
    pub unauthorized_groups: u64,
    /// Kafka series emitted / dropped by the guard in this render.
    pub series: usize,
    pub dropped: usize,
}

/// A sample value. Offsets and counts are integers; times and ratios are floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
}

impl Value {
    pub(crate) fn count(n: usize) -> Value {
        Value::Uint(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

/// Metric type of a family. Counters are named without `_total`: the encoder appends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
    Histogram,
}

/// Level of detail of a Kafka family. `granularity` sets the finest level emitted, and the series
/// guard drops whole levels, finest first; `Always` is never dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Level {
    /// Group-level `kafka_consumergroup_*` and `kafka_topic_*`.
    Always,
    /// One series per (group, topic).
    Topic,
    /// One series per (group, topic, partition), and `kafka_partition_*`.
    Partition,
}

impl Level {
    pub(crate) const ALL: [Level; 3] = [Level::Always, Level::Topic, Level::Partition];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Always => "group",
            Level::Topic => "topic",
            Level::Partition => "partition",
        }
    }
}

/// Which rows of a report a Kafka family has a series for, the labels after `cluster`, and the
/// value of each row (`None`: no series for that row).
pub(crate) enum Rows {
    /// Labels `topic`. Topic-wide facts: only shard 0 emits them, so sums over shards hold.
    Topic(fn(&TopicReport) -> Option<Value>),
    /// Labels `topic`, `partition`. Only shard 0 emits them.
    TopicPartition(fn(&PartitionOffsets) -> Option<Value>),
    /// Labels `group`.
    Group(fn(&GroupReport) -> Option<Value>),
    /// Labels `group` and the given label, whose value is the group's current one; value 1.
    GroupLabel(&'static str, fn(&GroupReport) -> Option<&'static str>),
    /// Labels `group`, `topic`.
    GroupTopic(fn(&GroupTopicReport) -> Option<Value>),
    /// Labels `group`, `topic`, `partition`.
    GroupPartition(fn(&GroupPartitionReport) -> Option<Value>),
}

impl Rows {
    /// Whether the family repeats across shards (topic facts, not group facts).
    pub(crate) fn topic_wide(&self) -> bool {
        matches!(self, Rows::Topic(_) | Rows::TopicPartition(_))
    }

    /// Series the family has for `report`: the rows whose value is present. Walks the same rows
    /// in the same way as `encode::encode_rows`.
    pub(crate) fn count(&self, report: &Report) -> usize {
        let topics = || report.topics.iter();
        let groups = || report.groups.iter();
        match self {
            Rows::Topic(value) => topics().filter(|t| value(t).is_some()).count(),
            Rows::TopicPartition(value) => topics()
                .flat_map(|t| &t.partitions)
                .filter(|p| value(p).is_some())
                .count(),
            Rows::Group(value) => groups().filter(|g| value(g).is_some()).count(),
            Rows::GroupLabel(_, value) => groups().filter(|g| value(g).is_some()).count(),
            Rows::GroupTopic(value) => groups()
                .flat_map(|g| &g.topics)
                .filter(|t| value(t).is_some())
                .count(),
            Rows::GroupPartition(value) => groups()
                .flat_map(|g| &g.topics)
                .flat_map(|t| &t.partitions)
                .filter(|p| value(p).is_some())
                .count(),
        }
    }
}

/// Whose name a Kafka family carries, which decides when it is emitted and whether its series
/// carry `cluster_name` beside `cluster` (PRODUCT.md §8, `docs/migration.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// lagwatch's own family: always emitted, labelled `cluster` only.
    Lagwatch,
    /// A lagwatch family whose name kafka-lag-exporter also uses (`kafka_partition_*`): always
    /// emitted once; with `compat: [kafka_lag_exporter]` it also carries `cluster_name`, so
    /// kafka-lag-exporter's queries find it without a second family of the same name.
    Shared,
    /// A kafka-lag-exporter family: only with `compat: [kafka_lag_exporter]`, labelled `cluster`
    /// and `cluster_name`. Its values come from the same report fields as lagwatch's families.
    KafkaLagExporter,
}

impl Origin {
    /// Whether the family is rendered at all.
    pub(crate) fn emitted(self, compat_kafka_lag_exporter: bool) -> bool {
        self != Origin::KafkaLagExporter || compat_kafka_lag_exporter
    }

    /// Whether its series carry `cluster_name` (same value as `cluster`).
    pub(crate) fn cluster_name(self, compat_kafka_lag_exporter: bool) -> bool {
        self != Origin::Lagwatch && compat_kafka_lag_exporter
    }
}

pub(crate) struct KafkaFamily {
    /// Full exposition name; counters without `_total`.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// OpenMetrics unit; the name ends with `_<unit>`.
    pub unit: Option<&'static str>,
    pub level: Level,
    pub origin: Origin,
    pub rows: Rows,
}

/// Every Kafka family, in exposition order (PRODUCT.md §5).
pub(crate) static KAFKA_FAMILIES: &[KafkaFamily] = &[
    KafkaFamily {
        name: "kafka_partition_latest_offset",
        help: "High watermark of the partition: the offset the next record will get (last stable offset under read_committed).",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Partition,
        origin: Origin::Shared,
        rows: Rows::TopicPartition(|p| Some(Value::Int(p.latest))),
    },
    KafkaFamily {
        name: "kafka_partition_earliest_offset",
        help: "Low watermark of the partition: the oldest offset still stored.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Partition,
        origin: Origin::Shared,
        rows: Rows::TopicPartition(|p| Some(Value::Int(p.earliest))),
    },
    KafkaFamily {
        name: "kafka_topic_partitions",
        help: "Partitions of the topic whose offsets were read in the last poll.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Topic(|t| Some(Value::count(t.partitions.len()))),
    },
    KafkaFamily {
        name: "kafka_topic_latest_offsets",
        help: "Sum of the high watermarks of the topic's partitions.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Topic(|t| Some(Value::Int(t.latest_offsets))),
    },
    KafkaFamily {
        name: "kafka_topic_earliest_offsets",
        help: "Sum of the low watermarks of the topic's partitions.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Topic(|t| Some(Value::Int(t.earliest_offsets))),
    },
    KafkaFamily {
        name: "kafka_topic_retention_bytes",
        help: "retention.bytes of the topic, per partition; absent when infinite or unknown.",
        kind: Kind::Gauge,
        unit: Some("bytes"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Topic(|t| t.retention_bytes.map(Value::Int)),
    },
    KafkaFamily {
        name: "kafka_topic_retention_seconds",
        help: "retention.ms of the topic, in seconds; absent when infinite or unknown.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Topic(|t| t.retention_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_state",
        help: "Coordinator state of the group: one series, for the current state, with value 1.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::GroupLabel("state", |g| Some(g.state.as_str())),
    },
    KafkaFamily {
        name: "kafka_consumergroup_members",
        help: "Members of the group; absent when the group could not be described.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| g.members.map(|m| Value::Int(i64::from(m)))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_uncommitted_partitions",
        help: "Partitions of the topics the group committed on that have no committed offset (no lag series).",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| Some(Value::Int(i64::from(g.uncommitted_partitions)))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_lag_messages",
        help: "Messages the group can still read, summed over its partitions: max(0, high watermark - max(committed, low watermark)).",
        kind: Kind::Gauge,
        unit: Some("messages"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| Some(Value::Int(g.figures.lag_messages))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_status",
        help: "Status of the group (docs/status.md): one series, for the current status, with value 1.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::GroupLabel("status", |g| Some(g.status.as_str())),
    },
    KafkaFamily {
        name: "kafka_consumergroup_lag_seconds",
        help: "Age of the oldest record the group has not consumed, max over its partitions whose time lag is known; 0 when caught up.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| g.figures.lag_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_eviction_seconds",
        help: "Seconds until retention may delete a record the group has not read (earliest case), min over its behind partitions on topics with cleanup.policy delete and finite retention.ms; 0 once records were evicted.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| g.figures.eviction_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_retention_usage_ratio",
        help: "Time lag divided by retention.ms, max over the group's partitions on topics with cleanup.policy delete and finite retention.ms: 0 fresh or caught up, 1 the next record may be deleted now.",
        kind: Kind::Gauge,
        unit: Some("ratio"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| g.figures.retention_usage_ratio.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_evicted_messages",
        help: "Records deleted (by retention or DeleteRecords) before the group read them, max(0, low watermark - committed), summed over its partitions.",
        kind: Kind::Gauge,
        unit: Some("messages"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| Some(Value::Int(g.figures.evicted_messages))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_commit_stall_seconds",
        help: "Seconds since the committed offset last advanced (or, if later, since the partition fell behind), max over the group's partitions; 0 when none is behind.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::Group(|g| g.figures.commit_stall_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_topic_lag_messages",
        help: "Messages the group can still read on the topic, summed over its partitions.",
        kind: Kind::Gauge,
        unit: Some("messages"),
        level: Level::Topic,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| Some(Value::Int(t.figures.lag_messages))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_topic_lag_seconds",
        help: "Age of the oldest record the group has not consumed on the topic, max over its partitions whose time lag is known.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Topic,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| t.figures.lag_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_topic_eviction_seconds",
        help: "Seconds until retention may delete a record the group has not read on the topic (earliest case), min over its behind partitions; 0 once records were evicted.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Topic,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| t.figures.eviction_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_topic_retention_usage_ratio",
        help: "Time lag of the group on the topic divided by its retention.ms, max over partitions: 0 fresh or caught up, 1 the next record may be deleted now.",
        kind: Kind::Gauge,
        unit: Some("ratio"),
        level: Level::Topic,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| t.figures.retention_usage_ratio.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_topic_evicted_messages",
        help: "Records deleted (by retention or DeleteRecords) before the group read them, summed over the topic's partitions.",
        kind: Kind::Gauge,
        unit: Some("messages"),
        level: Level::Topic,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| Some(Value::Int(t.figures.evicted_messages))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_topic_commit_stall_seconds",
        help: "Seconds since the committed offset last advanced (or, if later, since the partition fell behind), max over the topic's partitions; 0 when none is behind.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Topic,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| t.figures.commit_stall_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_topic_lag_skew_seconds",
        help: "Max minus min time lag across the group's partitions of the topic whose time lag is known: uneven consumption.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Topic,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| t.lag_skew_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_rewinds",
        help: "Times the group's committed offset moved backwards between polls on the topic, since lagwatch started.",
        kind: Kind::Counter,
        unit: None,
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| Some(Value::Uint(t.rewinds_total))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_rewound_messages",
        help: "Messages by which the group's committed offset moved backwards on the topic, summed since lagwatch started.",
        kind: Kind::Counter,
        unit: Some("messages"),
        level: Level::Always,
        origin: Origin::Lagwatch,
        rows: Rows::GroupTopic(|t| Some(Value::Uint(t.rewound_messages_total))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_partition_committed_offset",
        help: "Committed offset of the group on the partition: the next offset it will read.",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Partition,
        origin: Origin::Lagwatch,
        rows: Rows::GroupPartition(|p| Some(Value::Int(p.committed_offset))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_partition_lag_messages",
        help: "Messages the group can still read on the partition: max(0, high watermark - max(committed, low watermark)).",
        kind: Kind::Gauge,
        unit: Some("messages"),
        level: Level::Partition,
        origin: Origin::Lagwatch,
        rows: Rows::GroupPartition(|p| Some(Value::Int(p.figures.lag_messages))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_partition_lag_seconds",
        help: "Age of the oldest record the group has not consumed on the partition; absent while its timestamp is not yet read.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Partition,
        origin: Origin::Lagwatch,
        rows: Rows::GroupPartition(|p| p.figures.lag_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_partition_eviction_seconds",
        help: "Seconds until retention may delete the next record the group will read on the partition (earliest case); 0 once records were evicted; absent when not behind.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Partition,
        origin: Origin::Lagwatch,
        rows: Rows::GroupPartition(|p| p.figures.eviction_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_partition_evicted_messages",
        help: "Records deleted by retention before the group read them on the partition: max(0, low watermark - committed).",
        kind: Kind::Gauge,
        unit: Some("messages"),
        level: Level::Partition,
        origin: Origin::Lagwatch,
        rows: Rows::GroupPartition(|p| Some(Value::Int(p.figures.evicted_messages))),
    },
    // kafka-lag-exporter's families (`compat: [kafka_lag_exporter]`), without its member labels
    // (member_host, consumer_id, client_id): they would start new series on every rebalance.
    // Lag is lagwatch's `max(0, H - max(C, L))`; time lag is lagwatch's, absent where unknown.
    KafkaFamily {
        name: "kafka_consumergroup_group_offset",
        help: "kafka-lag-exporter compatibility: committed offset of the group on the partition (= kafka_consumergroup_partition_committed_offset).",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Partition,
        origin: Origin::KafkaLagExporter,
        rows: Rows::GroupPartition(|p| Some(Value::Int(p.committed_offset))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_group_lag",
        help: "kafka-lag-exporter compatibility: messages the group can still read on the partition (= kafka_consumergroup_partition_lag_messages).",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Partition,
        origin: Origin::KafkaLagExporter,
        rows: Rows::GroupPartition(|p| Some(Value::Int(p.figures.lag_messages))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_group_lag_seconds",
        help: "kafka-lag-exporter compatibility: time lag of the group on the partition (= kafka_consumergroup_partition_lag_seconds); absent while unknown.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Partition,
        origin: Origin::KafkaLagExporter,
        rows: Rows::GroupPartition(|p| p.figures.lag_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_group_max_lag",
        help: "kafka-lag-exporter compatibility: highest partition lag of the group, in messages (max of kafka_consumergroup_partition_lag_messages).",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::KafkaLagExporter,
        rows: Rows::Group(|g| {
            g.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.figures.lag_messages)
                .max()
                .map(Value::Int)
        }),
    },
    KafkaFamily {
        name: "kafka_consumergroup_group_max_lag_seconds",
        help: "kafka-lag-exporter compatibility: highest time lag of the group's partitions (= kafka_consumergroup_lag_seconds).",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        level: Level::Always,
        origin: Origin::KafkaLagExporter,
        rows: Rows::Group(|g| g.figures.lag_seconds.map(Value::Float)),
    },
    KafkaFamily {
        name: "kafka_consumergroup_group_sum_lag",
        help: "kafka-lag-exporter compatibility: messages the group can still read, summed over its partitions (= kafka_consumergroup_lag_messages).",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Always,
        origin: Origin::KafkaLagExporter,
        rows: Rows::Group(|g| Some(Value::Int(g.figures.lag_messages))),
    },
    KafkaFamily {
        name: "kafka_consumergroup_group_topic_sum_lag",
        help: "kafka-lag-exporter compatibility: messages the group can still read on the topic (= kafka_consumergroup_topic_lag_messages).",
        kind: Kind::Gauge,
        unit: None,
        level: Level::Topic,
        origin: Origin::KafkaLagExporter,
        rows: Rows::GroupTopic(|t| Some(Value::Int(t.figures.lag_messages))),
    },
];

/// Rows of an exporter family. Every exporter series but `lagwatch_build_info` carries `cluster`.
pub(crate) enum ExporterRows {
    /// One series per cluster (`None`: none for that cluster).
    Cluster(fn(&ClusterView) -> Option<Value>),
    /// One series per cluster and poll stage, label `stage`, every stage even at 0.
    Stages,
    /// One series per cluster and broker, label `broker`.
    Brokers,
    /// The poll-duration histogram of each cluster.
    PollDuration,
    /// A single series without `cluster`, labels `version`, `revision`, value 1.
    BuildInfo,
    /// The histogram of `/metrics` server times, without labels.
    ScrapeDuration,
    /// Connections the HTTP server closed itself, label `reason`.
    ConnectionsClosed,
    /// A single series without labels, about the last load of the configuration file.
    ConfigReload(fn(&super::ConfigReload) -> Value),
}

pub(crate) struct ExporterFamily {
    /// Full exposition name; counters without `_total`.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub unit: Option<&'static str>,
    pub rows: ExporterRows,
}

/// Every exporter family, in exposition order.
pub(crate) static EXPORTER_FAMILIES: &[ExporterFamily] = &[
    ExporterFamily {
        name: "lagwatch_kafka_up",
        help: "1 if the last poll of the cluster read metadata and offsets, else 0.",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::Cluster(|c| Some(Value::Int(i64::from(c.up)))),
    },
    ExporterFamily {
        name: "lagwatch_last_poll_success_timestamp_seconds",
        help: "Unix time of the end of the last poll with lagwatch_kafka_up 1; absent before the first.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        rows: ExporterRows::Cluster(|c| c.last_success.map(Value::Float)),
    },
    ExporterFamily {
        name: "lagwatch_poll_duration_seconds",
        help: "Wall time of a poll of the cluster, successful or not.",
        kind: Kind::Histogram,
        unit: Some("seconds"),
        rows: ExporterRows::PollDuration,
    },
    ExporterFamily {
        name: "lagwatch_scrape_duration_seconds",
        help: "Server time of /metrics requests, from the request's headers read to its last byte written to the socket, as of the last render.",
        kind: Kind::Histogram,
        unit: Some("seconds"),
        rows: ExporterRows::ScrapeDuration,
    },
    ExporterFamily {
        name: "lagwatch_http_connections_closed",
        help: "HTTP connections lagwatch closed itself since start, by reason: request_timeout (a request's headers or its response not done within web.request_timeout) or connection_limit (an idle connection closed to make room at web.max_connections).",
        kind: Kind::Counter,
        unit: None,
        rows: ExporterRows::ConnectionsClosed,
    },
    ExporterFamily {
        name: "lagwatch_poll_errors",
        help: "Poll stages that failed, by stage, since start.",
        kind: Kind::Counter,
        unit: None,
        rows: ExporterRows::Stages,
    },
    ExporterFamily {
        name: "lagwatch_kafka_requests",
        help: "Requests sent to Kafka, by broker node id (bootstrap: bootstrap connections), from librdkafka statistics.",
        kind: Kind::Counter,
        unit: None,
        rows: ExporterRows::Brokers,
    },
    ExporterFamily {
        name: "lagwatch_series",
        help: "Kafka series of the cluster in the last render.",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::Cluster(|c| Some(Value::count(c.series))),
    },
    ExporterFamily {
        name: "lagwatch_series_dropped",
        help: "Kafka series of the cluster left out of the last render by the max_series guard.",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::Cluster(|c| Some(Value::count(c.dropped))),
    },
    ExporterFamily {
        name: "lagwatch_timestamp_reads_pending",
        help: "Record timestamps the time-lag model still needs to read (per-poll budget exhausted).",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::Cluster(|c| Some(Value::Uint(c.timestamp_reads_pending))),
    },
    ExporterFamily {
        name: "lagwatch_unauthorized_topics",
        help: "Selected topics Kafka refused to describe to lagwatch (no Describe ACL) in the last poll; only exactly named topics can be counted.",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::Cluster(|c| Some(Value::Uint(c.unauthorized_topics))),
    },
    ExporterFamily {
        name: "lagwatch_unauthorized_groups",
        help: "Selected groups Kafka refused to describe to lagwatch (no Describe ACL) in the last poll; groups it hides are counted only when exactly named.",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::Cluster(|c| Some(Value::Uint(c.unauthorized_groups))),
    },
    ExporterFamily {
        name: "lagwatch_config_last_reload_successful",
        help: "1 if the last load of the configuration file (start-up, SIGHUP or POST /-/reload) succeeded; 0: the configuration in force is an older one.",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::ConfigReload(|r| Value::Int(i64::from(r.successful))),
    },
    ExporterFamily {
        name: "lagwatch_config_last_reload_success_timestamp_seconds",
        help: "Unix time the configuration in force was loaded.",
        kind: Kind::Gauge,
        unit: Some("seconds"),
        rows: ExporterRows::ConfigReload(|r| {
            Value::Float(
                r.last_success
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            )
        }),
    },
    ExporterFamily {
        name: "lagwatch_build_info",
        help: "Version and revision of the running lagwatch; value 1.",
        kind: Kind::Gauge,
        unit: None,
        rows: ExporterRows::BuildInfo,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_well_formed() {
        let names: Vec<(&str, &str, Kind, Option<&str>)> = KAFKA_FAMILIES
            .iter()
            .map(|f| (f.name, f.help, f.kind, f.unit))
            .chain(
                EXPORTER_FAMILIES
                    .iter()
                    .map(|f| (f.name, f.help, f.kind, f.unit)),
            )
            .collect();
        let mut seen = HashSet::new();
        for (name, help, kind, unit) in names {
            // prometheus-client writes help texts unescaped in OpenMetrics, and the text format is
            // derived line by line: no newline, no backslash.
            assert!(
                !help.contains(['\n', '\\']) && !help.is_empty(),
                "{name}: {help:?}"
            );
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            // prometheus-client appends `_total` to counters (and panics on a name that has it).
            assert!(!name.ends_with("_total"), "{name}");
            if kind == Kind::Counter {
                assert!(
                    !name.ends_with("_sum") && !name.ends_with("_count"),
                    "{name}"
                );
            }
            if let Some(unit) = unit {
                assert!(
                    name.ends_with(&format!("_{unit}")),
                    "{name} lacks its unit {unit}"
                );
            }
        }
    }

    #[test]
    fn label_sets_follow_the_label_order() {
        // Topic-wide rows are exactly the kafka_topic_* and kafka_partition_* families.
        for f in KAFKA_FAMILIES {
            let topic_family =
                f.name.starts_with("kafka_topic_") || f.name.starts_with("kafka_partition_");
            assert_eq!(f.rows.topic_wide(), topic_family, "{}", f.name);
            let partition_rows =
                matches!(f.rows, Rows::TopicPartition(_) | Rows::GroupPartition(_));
            assert_eq!(partition_rows, f.level == Level::Partition, "{}", f.name);
        }
    }

    #[test]
    fn origins_follow_the_names() {
        // kafka-lag-exporter's families are its `kafka_consumergroup_group_*`; the names both
        // use are exactly `kafka_partition_*` (PRODUCT.md §8).
        let compat: Vec<&str> = KAFKA_FAMILIES
            .iter()
            .filter(|f| f.origin == Origin::KafkaLagExporter)
            .map(|f| f.name)
            .collect();
        assert_eq!(
            compat,
            [
                "kafka_consumergroup_group_offset",
                "kafka_consumergroup_group_lag",
                "kafka_consumergroup_group_lag_seconds",
                "kafka_consumergroup_group_max_lag",
                "kafka_consumergroup_group_max_lag_seconds",
                "kafka_consumergroup_group_sum_lag",
                "kafka_consumergroup_group_topic_sum_lag",
            ]
        );
        for f in KAFKA_FAMILIES {
            assert_eq!(
                f.origin == Origin::Shared,
                f.name.starts_with("kafka_partition_"),
                "{}",
                f.name
            );
        }
        // (origin, compat on, emitted, carries cluster_name)
        let cases = [
            (Origin::Lagwatch, false, true, false),
            (Origin::Lagwatch, true, true, false),
            (Origin::Shared, false, true, false),
            (Origin::Shared, true, true, true),
            (Origin::KafkaLagExporter, false, false, false),
            (Origin::KafkaLagExporter, true, true, true),
        ];
        for (origin, compat, emitted, cluster_name) in cases {
            assert_eq!(origin.emitted(compat), emitted, "{origin:?} {compat}");
            assert_eq!(
                origin.cluster_name(compat),
                cluster_name,
                "{origin:?} {compat}"
            );
        }
    }
}
