//! One deadline per poll, shared out among the poll's stages, so a poll ends within its
//! `poll_timeout` whatever a dead or slow broker does, and a stage waiting on one cannot starve
//! the stages after it (a leader that died leaves its partitions without fresh offsets, not the
//! groups without committed ones).

use std::time::{Duration, Instant};

use super::Stage;

/// The stages in the order a poll runs them, each with its weight in the share-out: a stage may
/// wait its weight over the weights of it and every stage after it of the time left. Time a
/// stage does not use passes to the next.
const SHARES: [(Stage, u32); 7] = [
    (Stage::Metadata, 2),
    (Stage::ListOffsets, 2),
    (Stage::DescribeConfigs, 1),
    (Stage::ListGroups, 1),
    (Stage::DescribeGroups, 1),
    (Stage::OffsetFetch, 2),
    (Stage::ReadTimestamps, 2),
];

/// A stage's calls may always wait this long while the poll has that much left: a short
/// `poll_timeout` still gives a broker time to answer.
const MIN_CALL: Duration = Duration::from_secs(1);

/// When the poll must end, and the longest any one Kafka call may wait.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
    budget: Duration,
    max_call: Duration,
}

impl Deadline {
    /// A poll started now that may take `budget`; no call waits longer than `max_call`.
    pub fn after(budget: Duration, max_call: Duration) -> Deadline {
        Deadline::at(Instant::now() + budget, budget, max_call)
    }

    fn at(end: Instant, budget: Duration, max_call: Duration) -> Deadline {
        Deadline {
            end,
            budget,
            max_call,
        }
    }

    /// The whole time the poll was given.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// How long the calls of `stage`, started now, may wait; `None` once the poll's time is up.
    pub fn timeout(&self, stage: Stage) -> Option<Duration> {
        self.timeout_at(stage, Instant::now())
    }

    fn timeout_at(&self, stage: Stage, now: Instant) -> Option<Duration> {
        let left = self
            .end
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())?;
        let position = SHARES.iter().position(|(s, _)| *s == stage).unwrap_or(0);
        let weights = &SHARES[position..];
        let rest: u32 = weights.iter().map(|(_, w)| w).sum();
        let share = left * weights[0].1 / rest.max(1);
        Some(share.max(MIN_CALL).min(self.max_call).min(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_share_the_time_left_by_weight() {
        let start = Instant::now();
        let d = Deadline::at(
            start + Duration::from_secs(11),
            Duration::from_secs(11),
            Duration::from_secs(15),
        );
        let ms = |stage, elapsed_ms| {
            d.timeout_at(stage, start + Duration::from_millis(elapsed_ms))
                .map(|t| t.as_millis())
        };
        // (stage, ms elapsed, expected timeout ms, why)
        #[rustfmt::skip]
        let cases = [
            (Stage::Metadata, 0, Some(2_000), "1: 2 of 11 weights, 11 s left"),
            (Stage::ListOffsets, 0, Some(2_444), "2: 2 of 9: what metadata left unused passes on"),
            (Stage::ListOffsets, 2_000, Some(2_000), "3: metadata used its whole share: 2 of 9 of 9 s"),
            (Stage::ReadTimestamps, 0, Some(11_000), "4: the last stage may use all that is left"),
            (Stage::OffsetFetch, 10_000, Some(1_000), "5: 1 s left, share 0.5 s: the 1 s floor"),
            (Stage::OffsetFetch, 10_600, Some(400), "6: never past the deadline"),
            (Stage::Metadata, 11_000, None, "7: the time is up"),
            (Stage::DescribeConfigs, 20_000, None, "8: long past"),
        ];
        for (stage, elapsed, want, why) in cases {
            assert_eq!(ms(stage, elapsed), want, "{why}");
        }
    }

    #[test]
    fn no_call_waits_longer_than_the_cap() {
        let start = Instant::now();
        let d = Deadline::at(
            start + Duration::from_secs(300),
            Duration::from_secs(300),
            Duration::from_secs(15),
        );
        assert_eq!(
            d.timeout_at(Stage::ReadTimestamps, start),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn every_kafka_stage_has_a_share() {
        let kafka_stages = Stage::ALL
            .into_iter()
            .filter(|s| !matches!(s, Stage::Client | Stage::Panic));
        for stage in kafka_stages {
            assert!(SHARES.iter().any(|(s, _)| *s == stage), "{stage:?}");
        }
    }
}
