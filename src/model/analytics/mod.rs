//! Analytics beyond offset lag (PRODUCT.md §4): time lag, retention (eviction) risk, commit skew
//! (stall, partition skew, rewinds) and group status, for one cluster across polls.
//!
//! Pure like the rest of `model`: no I/O, no clock (time is a parameter), no logging (events are
//! returned for the caller to log). A poll runs in two phases because time lag needs record
//! timestamps only Kafka has:
//!
//! 1. [`ClusterAnalytics::plan_reads`] records the partition heads and returns the offsets whose
//!    record timestamps must be read (bounded per poll);
//! 2. `kafka/` reads them; [`ClusterAnalytics::finish`] caches them and returns [`Analytics`],
//!    whose [`Report`](crate::model::Report) holds every figure of the poll.
//!
//! | file | owns |
//! |---|---|
//! | `settings.rs` | [`AnalyticsSettings`] and their defaults |
//! | `history.rs` | per-partition ring of head samples; interpolation of T(offset) |
//! | `timestamps.rs` | which reads to make (budget, round-robin), the exact-read cache |
//! | `risk.rs` | time to eviction, retention usage, evicted messages |
//! | `skew.rs` | commit stall, partition skew, rewinds |
//! | `window.rs` | per group-partition window state (O(1) in `status.window`) |
//! | `status.rs` | the six status rules (`docs/status.md`) |
//! | `groups.rs` | the one walk over the committed offsets that builds the group reports |
//! | `cluster.rs` | [`ClusterAnalytics`]: state across polls, the two phases, [`Analytics`] |
//!
//! Memory for the 1,000,000 group-partition target (20,000 partitions, history 64, cache
//! 100,000): windows 48 MB (48 B each), head histories about 22 MB (≤ 1,096 B per partition),
//! cache about 5.6 MB, plus 56 B per group-topic; see the `memory_budget` test.

pub mod cluster;
mod groups;
pub mod history;
pub mod risk;
pub mod settings;
pub mod skew;
pub mod status;
pub mod timestamps;
pub mod window;

#[cfg(test)]
mod tests;

pub use cluster::{Analytics, ClusterAnalytics, Event};
pub use settings::AnalyticsSettings;
pub use status::Status;
pub use timestamps::{ReadPlan, TimestampRead};
