//! The stages of a poll, each counted in `lagwatch_poll_errors_total{stage}` when it fails.

/// A poll stage, as the `stage` label of `lagwatch_poll_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Metadata,
    ListOffsets,
    ListGroups,
    DescribeGroups,
    OffsetFetch,
    DescribeConfigs,
    ReadTimestamps,
    /// The cluster's Kafka client could not be created; the poll loop retries with backoff.
    Client,
    /// A poll panicked; the poll loop creates the client afresh and goes on.
    Panic,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Metadata,
        Stage::ListOffsets,
        Stage::ListGroups,
        Stage::DescribeGroups,
        Stage::OffsetFetch,
        Stage::DescribeConfigs,
        Stage::ReadTimestamps,
        Stage::Client,
        Stage::Panic,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Metadata => "metadata",
            Stage::ListOffsets => "list_offsets",
            Stage::ListGroups => "list_groups",
            Stage::DescribeGroups => "describe_groups",
            Stage::OffsetFetch => "offset_fetch",
            Stage::DescribeConfigs => "describe_configs",
            Stage::ReadTimestamps => "read_timestamps",
            Stage::Client => "client",
            Stage::Panic => "panic",
        }
    }
}
