//! Offset lag (PRODUCT.md §4, first bullet) of one group-partition. The analytics' walk over the
//! committed offsets applies it and sums it per topic and group (`model::report`).

use super::snapshot::{CommittedOffset, PartitionOffsets};

/// Messages the group can still read: `max(0, H − max(C, L))`. Records already deleted below the
/// commit (C < L) are not lag.
pub fn partition_lag(committed: i64, offsets: PartitionOffsets) -> i64 {
    (offsets.latest - committed.max(offsets.earliest)).max(0)
}

/// The lag of one group-partition: the broker's own count when it reported one (a share group
/// on Kafka 4.2+), else [`partition_lag`] of C. For a share group C is the share-partition
/// start offset, so without the broker's count the lag is an upper bound: records past the
/// start offset that were already acknowledged (share groups acknowledge out of order) count.
pub fn group_partition_lag(commit: &CommittedOffset, offsets: PartitionOffsets) -> i64 {
    match commit.broker_lag {
        Some(lag) => lag.max(0),
        None => partition_lag(commit.offset, offsets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn group_partition_lag_table() {
        // (C or share start offset, broker's lag, low L, high H, expected lag, why)
        #[rustfmt::skip]
        let cases = [
            (4, None, 0, 10, 6, "1: no broker count (any group type, or a share group before Kafka 4.2): H - max(C, L)"),
            (4, Some(2), 0, 10, 2, "2: share group, Kafka 4.2+: the broker's count (4 of 6 acknowledged past the start)"),
            (4, Some(6), 0, 10, 6, "3: nothing acknowledged past the start: the bound is exact"),
            (2, None, 5, 10, 5, "4: start below L: deleted records are not lag"),
            (10, Some(0), 0, 10, 0, "5: caught up"),
        ];
        for (c, broker_lag, l, h, want, why) in cases {
            let commit = CommittedOffset {
                topic: "t".into(),
                partition: 0,
                offset: c,
                broker_lag,
            };
            assert_eq!(group_partition_lag(&commit, po(0, l, h)), want, "{why}");
        }
    }
}
