//! The `max_series` guard (PRODUCT.md §5): given the series each level of detail would add, per
//! cluster, pick the finest level that fits. Whole levels go, finest first, for every group of
//! every cluster at once, so a dashboard never shows some groups at one level and some at another.
//! `Always` is never dropped, even when it alone exceeds the limit. Pure: the caller logs.

use super::families::Level;

/// Kafka series one cluster would emit at each level, indexed by [`Level::index`]. Levels finer
/// than `granularity` are 0: they are not configured, so not "dropped".
pub(crate) type LevelCounts = [usize; Level::ALL.len()];

/// Series at `finest` and every coarser level.
pub(crate) fn up_to(counts: &LevelCounts, finest: Level) -> usize {
    counts[..=finest.index()].iter().sum()
}

/// The finest level, at most `requested`, whose series over all clusters fit in `max_series`;
/// `Always` when nothing fits.
pub(crate) fn finest_level(counts: &[LevelCounts], requested: Level, max_series: usize) -> Level {
    let total = |finest: Level| counts.iter().map(|c| up_to(c, finest)).sum::<usize>();
    let mut finest = requested;
    while total(finest) > max_series {
        finest = match finest {
            Level::Partition => Level::Topic,
            Level::Topic => Level::Always,
            Level::Always => break,
        };
    }
    finest
}

/// (emitted, dropped) series of one cluster when `finest` is the finest level kept.
pub(crate) fn split(counts: &LevelCounts, finest: Level) -> (usize, usize) {
    let emitted = up_to(counts, finest);
    (emitted, counts.iter().sum::<usize>() - emitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_partition_level_then_the_topic_level() {
        // Two clusters, counts [always, topic, partition].
        let a = [10, 20, 100];
        let b = [5, 10, 50];
        // (requested, max_series, expected finest, why)
        let cases = [
            (Level::Partition, 1000, Level::Partition, "195 fit"),
            (
                Level::Partition,
                195,
                Level::Partition,
                "exactly at the limit is not over",
            ),
            (
                Level::Partition,
                194,
                Level::Topic,
                "one over: partition level goes (45 left)",
            ),
            (
                Level::Partition,
                45,
                Level::Topic,
                "topic level fits exactly",
            ),
            (
                Level::Partition,
                44,
                Level::Always,
                "then the topic level goes too",
            ),
            (
                Level::Partition,
                15,
                Level::Always,
                "group level fits exactly",
            ),
            (
                Level::Partition,
                3,
                Level::Always,
                "group level alone is over: kept anyway",
            ),
            (
                Level::Topic,
                44,
                Level::Always,
                "granularity topic: only the topic level can go",
            ),
            (
                Level::Always,
                0,
                Level::Always,
                "granularity group: nothing to drop",
            ),
        ];
        for (i, (requested, max, want, why)) in cases.into_iter().enumerate() {
            // Levels finer than the granularity are not counted by the caller.
            let zero_finer = |c: [usize; 3]| {
                let mut c = c;
                c[requested.index() + 1..].fill(0);
                c
            };
            let counts = [zero_finer(a), zero_finer(b)];
            assert_eq!(
                finest_level(&counts, requested, max),
                want,
                "case {i}: {why}"
            );
        }
    }

    #[test]
    fn split_counts_what_was_left_out() {
        let c = [10, 20, 100];
        assert_eq!(split(&c, Level::Partition), (130, 0));
        assert_eq!(split(&c, Level::Topic), (30, 100));
        assert_eq!(split(&c, Level::Always), (10, 120));
        assert_eq!(split(&[0, 0, 0], Level::Always), (0, 0));
    }
}
