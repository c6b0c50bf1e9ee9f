//! Offset lag (PRODUCT.md §4, first bullet) of one group-partition. The analytics' walk over the
//! committed offsets applies it and sums it per topic and group (`model::report`).

use super::snapshot::PartitionOffsets;

/// Messages the group can still read: `max(0, H − max(C, L))`. Records already deleted below the
/// commit (C < L) are not lag.
pub fn partition_lag(committed: i64, offsets: PartitionOffsets) -> i64 {
    (offsets.latest - committed.max(offsets.earliest)).max(0)
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
}
