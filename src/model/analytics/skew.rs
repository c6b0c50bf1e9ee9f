//! Commit skew, PRODUCT.md §4: commit stall, partition skew and rewinds.

/// `stall_for` in seconds: `now − max(time C last increased, time the partition became behind)`
/// (`stall_since_ms`, kept by the window); 0 while not behind, never negative.
pub fn commit_stall_seconds(behind: bool, stall_since_ms: i64, now_ms: i64) -> f64 {
    if !behind {
        return 0.0;
    }
    (now_ms.saturating_sub(stall_since_ms) as f64 / 1000.0).max(0.0)
}

/// Max − min time lag over the partitions of one topic in one group whose time lag is known;
/// `None` when none is.
pub fn lag_skew_seconds(lags: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (min, max) =
        lags.into_iter()
            .flatten()
            .fold(None, |acc: Option<(f64, f64)>, lag| match acc {
                None => Some((lag, lag)),
                Some((min, max)) => Some((min.min(lag), max.max(lag))),
            })?;
    Some(max - min)
}

/// Messages rewound when the commit moved from `previous` back to `current`; `None` unless it
/// moved backwards.
pub fn rewound_messages(previous: i64, current: i64) -> Option<u64> {
    (current < previous).then(|| previous.abs_diff(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_stall_table() {
        // (behind, stall since ms, now ms, expected s, why)
        #[rustfmt::skip]
        let cases = [
            (true, 1_000, 61_000, 60.0, "1: behind since 1 s, now 61 s"),
            (false, 1_000, 61_000, 0.0, "2: caught up and idle is not stalled"),
            (true, 61_000, 61_000, 0.0, "3: just advanced"),
            (true, 62_000, 61_000, 0.0, "4: observed after `now` (clock skew): never negative"),
        ];
        for (behind, since, now, want, why) in cases {
            assert_eq!(commit_stall_seconds(behind, since, now), want, "{why}");
        }
    }

    #[test]
    fn lag_skew_table() {
        // (time lags, expected, why)
        type Case<'a> = (&'a [Option<f64>], Option<f64>, &'a str);
        #[rustfmt::skip]
        let cases: [Case; 5] = [
            (&[Some(10.0), Some(70.0), Some(30.0)], Some(60.0), "1: 70 − 10"),
            (&[Some(10.0)], Some(0.0), "2: one partition has no skew"),
            (&[Some(10.0), None, Some(40.0)], Some(30.0), "3: unknown partitions are left out"),
            (&[None, None], None, "4: nothing known"),
            (&[], None, "5: no partitions"),
        ];
        for (lags, want, why) in cases {
            assert_eq!(lag_skew_seconds(lags.iter().copied()), want, "{why}");
        }
    }

    #[test]
    fn rewound_messages_table() {
        // (previous C, current C, expected, why)
        #[rustfmt::skip]
        let cases = [
            (100, 40, Some(60), "1: reset back by 60"),
            (100, 100, None, "2: unchanged"),
            (100, 140, None, "3: advanced"),
            (100, 0, Some(100), "4: reset to the beginning"),
        ];
        for (previous, current, want, why) in cases {
            assert_eq!(rewound_messages(previous, current), want, "{why}");
        }
    }
}
