//! Retention (eviction) risk, PRODUCT.md §4: how long until retention may delete the oldest
//! record a group has not read, how much of the retention its lag uses, and what it already lost.

use std::time::Duration;

use crate::model::snapshot::{PartitionOffsets, TopicConfig};

/// The time-based retention of a topic that deletes: `Some(R)` when `cleanup.policy` lists
/// `delete` and `retention.ms` is positive. An absent policy or `retention.ms` is unknown, not a
/// default: no eviction figures for that topic.
pub fn deleting_retention(config: &TopicConfig) -> Option<Duration> {
    let deletes = config
        .cleanup_policy
        .as_deref()
        .is_some_and(|p| p.split(',').any(|part| part.trim() == "delete"));
    let ms = config.retention_ms.filter(|ms| *ms > 0)?;
    deletes.then(|| Duration::from_millis(ms.unsigned_abs()))
}

/// Records deleted before the group read them: `max(0, L − C)`, on every topic.
pub fn evicted_messages(committed: i64, offsets: PartitionOffsets) -> i64 {
    (offsets.earliest - committed).max(0)
}

/// Eviction figures of one group-partition; both `None` on topics without time retention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvictionRisk {
    /// `T(C) + R − now`, ≥ 0; 0 once `C < L`; `None` when not behind or T(C) is unknown.
    pub eviction_seconds: Option<f64>,
    /// `time lag / R`; 0 when not behind; `None` when T(C) is unknown.
    pub retention_usage_ratio: Option<f64>,
}

impl EvictionRisk {
    const NONE: EvictionRisk = EvictionRisk {
        eviction_seconds: None,
        retention_usage_ratio: None,
    };
}

/// `lag_seconds` is `now − T(max(C, L))`, so `T(C) + R − now = R − lag_seconds`.
pub fn eviction_risk(
    retention: Option<Duration>,
    behind: bool,
    committed_below_low: bool,
    lag_seconds: Option<f64>,
) -> EvictionRisk {
    let Some(retention) = retention else {
        return EvictionRisk::NONE;
    };
    if !behind {
        return EvictionRisk {
            eviction_seconds: None,
            retention_usage_ratio: Some(0.0),
        };
    }
    let r = retention.as_secs_f64();
    EvictionRisk {
        eviction_seconds: if committed_below_low {
            Some(0.0)
        } else {
            lag_seconds.map(|lag| (r - lag).max(0.0))
        },
        retention_usage_ratio: lag_seconds.map(|lag| lag / r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_retention_table() {
        let config = |ms: Option<i64>, policy: Option<&str>| TopicConfig {
            retention_ms: ms,
            retention_bytes: None,
            cleanup_policy: policy.map(str::to_string),
        };
        let hour = Some(Duration::from_secs(3600));
        // (retention.ms, cleanup.policy, expected, why)
        #[rustfmt::skip]
        let cases = [
            (Some(3_600_000), Some("delete"), hour, "1: plain delete topic"),
            (Some(3_600_000), Some("compact,delete"), hour, "2: compacted and deleted"),
            (Some(3_600_000), Some("compact, delete"), hour, "3: spaces around the list"),
            (Some(3_600_000), Some("compact"), None, "4: compact only: nothing expires by time"),
            (Some(-1), Some("delete"), None, "5: -1 is infinite retention"),
            (Some(0), Some("delete"), None, "6: 0 is not a usable retention"),
            (None, Some("delete"), None, "7: retention unknown (not returned by DescribeConfigs)"),
            (Some(3_600_000), None, None, "8: policy unknown: no guess"),
            (Some(3_600_000), Some("deleted"), None, "9: only the exact word counts"),
        ];
        for (ms, policy, want, why) in cases {
            assert_eq!(deleting_retention(&config(ms, policy)), want, "{why}");
        }
    }

    #[test]
    fn evicted_messages_table() {
        let po = |earliest, latest| PartitionOffsets {
            partition: 0,
            earliest,
            latest,
        };
        // (C, L, H, expected, why)
        #[rustfmt::skip]
        let cases = [
            (10, 5, 20, 0, "1: C ≥ L: nothing lost"),
            (5, 5, 20, 0, "2: C = L: the next record is the oldest stored"),
            (2, 5, 20, 3, "3: records 2, 3, 4 were deleted unread"),
            (0, 20, 20, 20, "4: everything deleted, also when nothing is left to read"),
        ];
        for (c, l, h, want, why) in cases {
            assert_eq!(evicted_messages(c, po(l, h)), want, "{why}");
        }
    }

    #[test]
    fn eviction_risk_table() {
        let hour = Some(Duration::from_secs(3600));
        let risk = |e: Option<f64>, u: Option<f64>| EvictionRisk {
            eviction_seconds: e,
            retention_usage_ratio: u,
        };
        // (retention, behind, C < L, time lag s, expected, why)
        #[rustfmt::skip]
        let cases = [
            (hour, true, false, Some(3000.0), risk(Some(600.0), Some(3000.0 / 3600.0)), "1: R = 1h, record 50 min old: 10 min left, 83% used"),
            (hour, true, false, Some(4000.0), risk(Some(0.0), Some(4000.0 / 3600.0)), "2: older than R: may be deleted now, clamped at 0"),
            (hour, false, false, Some(0.0), risk(None, Some(0.0)), "3: not behind: usage 0, no countdown"),
            (hour, false, false, Some(30.0), risk(None, Some(0.0)), "4: lag within allowed_lag is not behind"),
            (hour, true, true, Some(10.0), risk(Some(0.0), Some(10.0 / 3600.0)), "5: C < L: already evicting, usage from T(L)"),
            (hour, true, false, None, risk(None, None), "6: T(C) unknown this poll"),
            (hour, true, true, None, risk(Some(0.0), None), "7: C < L needs no timestamp for the countdown"),
            (None, true, false, Some(3000.0), risk(None, None), "8: compact or infinite topic: none"),
        ];
        for (retention, behind, below, lag, want, why) in cases {
            assert_eq!(eviction_risk(retention, behind, below, lag), want, "{why}");
        }
    }
}
