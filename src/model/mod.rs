//! The pure model: a cluster snapshot in, lag figures out. No I/O, no clocks: time is a parameter.

pub mod analytics;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod lag;
pub mod report;
pub mod snapshot;

pub use report::{
    topic_reports, Figures, GroupPartitionReport, GroupReport, GroupTopicReport, Report,
    TopicReport,
};
pub use snapshot::{
    CommittedOffset, GroupSnapshot, GroupState, GroupType, PartitionOffsets, Snapshot, TopicConfig,
    TopicSnapshot,
};
