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
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Metadata,
        Stage::ListOffsets,
        Stage::ListGroups,
        Stage::DescribeGroups,
        Stage::OffsetFetch,
        Stage::DescribeConfigs,
        Stage::ReadTimestamps,
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
        }
    }
}
