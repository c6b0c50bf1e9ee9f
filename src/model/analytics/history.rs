//! Head history of one partition: (head offset, time observed) samples kept across polls, and
//! the interpolated time at which the head passed an offset (PRODUCT.md §4, time lag).
//!
//! Memory: one [`HeadSample`] is 16 bytes (two `i64`); a partition keeps at most `history`
//! samples in a `VecDeque` that grows by doubling, so at most 16 × `history.next_power_of_two()`
//! bytes plus the 32-byte deque header and a 32-byte copy of the two newest samples: 1,088 bytes
//! per partition at the default 64. An idle partition keeps only the first and last sample of its
//! idle run, so it stays at a few samples.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// The head (high watermark) of a partition as one poll saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadSample {
    pub head: i64,
    /// When the head was read, in milliseconds since the Unix epoch.
    pub observed_ms: i64,
}

/// What [`HeadHistory::record`] did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Appended,
    /// The head did not move: the last sample of the idle run took the new time.
    ExtendedIdleRun,
    /// The head went backwards (topic re-created, unclean leader election) or the clock did: the
    /// old samples describe other records and were dropped.
    Reset,
    /// The same sample again.
    Ignored,
}

/// Samples of one partition, oldest first; heads and times never decrease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadHistory {
    samples: VecDeque<HeadSample>,
    /// The two newest samples (older first), copied out of `samples` after every change; only
    /// meaningful while `samples` holds at least two. A consumer that keeps up commits between
    /// them, so [`HeadHistory::head_passed_ms`] answers most lookups from here without following
    /// the deque's pointer: at a million group-partitions that pointer chase is a cache miss
    /// per lookup.
    newest: [HeadSample; 2],
}

impl HeadHistory {
    /// Adds a sample, keeping at most `capacity` (at least 2).
    pub fn record(&mut self, sample: HeadSample, capacity: usize) -> Recorded {
        let recorded = self.record_sample(sample, capacity);
        let prev = self
            .samples
            .len()
            .checked_sub(2)
            .and_then(|i| self.samples.get(i));
        // Cleared below two samples, so equal histories compare equal.
        self.newest = match (prev, self.samples.back()) {
            (Some(&prev), Some(&next)) => [prev, next],
            _ => <[HeadSample; 2]>::default(),
        };
        recorded
    }

    fn record_sample(&mut self, sample: HeadSample, capacity: usize) -> Recorded {
        let Some(&last) = self.samples.back() else {
            self.samples.push_back(sample);
            return Recorded::Appended;
        };
        if sample.head < last.head || sample.observed_ms < last.observed_ms {
            self.samples.clear();
            self.samples.push_back(sample);
            return Recorded::Reset;
        }
        if sample == last {
            return Recorded::Ignored;
        }
        // Keep the first sample of an idle run (upper bound for offsets below it) and the last
        // (lower bound for the next record); the ones between tell nothing.
        let idle_run_started_earlier = sample.head == last.head
            && self.samples.len() >= 2
            && self
                .samples
                .get(self.samples.len() - 2)
                .is_some_and(|s| s.head == sample.head);
        if let (true, Some(last)) = (idle_run_started_earlier, self.samples.back_mut()) {
            last.observed_ms = sample.observed_ms;
            return Recorded::ExtendedIdleRun;
        }
        // Make room first: pushing onto a full deque would double its allocation.
        while self.samples.len() >= capacity.max(2) {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        Recorded::Appended
    }

    /// When the head passed `offset`, i.e. when the record at `offset` was appended, in
    /// milliseconds since the epoch: linear between the last sample whose head is ≤ `offset` and
    /// the next one (whose head is > `offset`, so the divisor is ≥ 1 even for idle runs). `None`
    /// when `offset` lies before the oldest sample (read it exactly) or was not yet written.
    pub fn head_passed_ms(&self, offset: i64) -> Option<f64> {
        if self.samples.len() >= 2 {
            // Heads never decrease, so these two answer exactly as the search below would:
            // between them, `after` would be the last sample; at or past the newest head, the
            // offset is not written yet.
            let [prev, next] = &self.newest;
            if prev.head <= offset && offset < next.head {
                return Some(interpolate(prev, next, offset));
            }
            if offset >= next.head {
                return None;
            }
        }
        if offset < self.samples.front()?.head {
            return None;
        }
        let after = self.samples.partition_point(|s| s.head <= offset);
        let next = self.samples.get(after)?;
        let prev = self.samples.get(after.checked_sub(1)?)?;
        Some(interpolate(prev, next, offset))
    }

    /// Whether the last two polls saw the head at `head`: it stopped moving there.
    pub fn idle_at(&self, head: i64) -> bool {
        self.samples.len() >= 2 && self.newest.iter().all(|s| s.head == head)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// When the head passed `offset`, linear between two samples with `prev.head ≤ offset <
/// next.head`.
fn interpolate(prev: &HeadSample, next: &HeadSample, offset: i64) -> f64 {
    let fraction = (offset - prev.head) as f64 / (next.head - prev.head) as f64;
    prev.observed_ms as f64 + fraction * (next.observed_ms - prev.observed_ms) as f64
}

/// Milliseconds since the Unix epoch, negative before it; saturates instead of failing.
pub fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn history(samples: &[(i64, i64)], capacity: usize) -> HeadHistory {
        let mut h = HeadHistory::default();
        for &(head, observed_ms) in samples {
            h.record(HeadSample { head, observed_ms }, capacity);
        }
        h
    }

    #[test]
    fn head_passed_table() {
        // (samples (head, ms), offset, expected ms, why)
        let steady = [(0, 0), (100, 10_000), (200, 20_000)];
        let burst = [(100, 0), (100, 10_000), (1_100, 20_000), (1_101, 30_000)];
        let idle = [(50, 0), (50, 10_000), (50, 20_000), (51, 30_000)];
        type Case<'a> = (&'a [(i64, i64)], i64, Option<f64>, &'a str);
        #[rustfmt::skip]
        let cases: [Case; 12] = [
            (&steady, 150, Some(15_000.0), "1: steady 10 msg/s: offset 150 is the exact middle"),
            (&steady, 100, Some(10_000.0), "2: the head stood at 100 at 10 s"),
            (&steady, 0, Some(0.0), "3: the oldest sample's head is inside the history"),
            (&steady, 199, Some(19_900.0), "4: one before the head: 99/100 of the last gap"),
            (&steady, 200, None, "5: offset 200 is not written yet (C ≥ H is caught up)"),
            (&steady, -1, None, "6: before the oldest sample: must be read exactly"),
            (&burst, 600, Some(15_000.0), "7: burst of 1000 between 10 s and 20 s, not 0 s"),
            (&burst, 100, Some(10_000.0), "8: idle until 10 s, so record 100 came after"),
            (&burst, 1_100, Some(20_000.0), "9: after the burst, the next record"),
            (&idle, 50, Some(20_000.0), "10: idle run kept its last time: no divide by zero"),
            (&idle, 49, None, "11: before the history"),
            (&idle, 51, None, "12: the head is 51: nothing written at 51 yet"),
        ];
        for (samples, offset, want, why) in cases {
            assert_eq!(history(samples, 64).head_passed_ms(offset), want, "{why}");
        }
    }

    #[test]
    fn record_table() {
        // (samples before, new sample, expected outcome, expected length, why)
        type Case<'a> = (&'a [(i64, i64)], (i64, i64), Recorded, usize, &'a str);
        #[rustfmt::skip]
        let cases: [Case; 7] = [
            (&[], (5, 0), Recorded::Appended, 1, "1: first sample"),
            (&[(5, 0)], (6, 1_000), Recorded::Appended, 2, "2: head moved"),
            (&[(5, 0)], (5, 1_000), Recorded::Appended, 2, "3: an idle run starts: keep its start"),
            (&[(5, 0), (5, 1_000)], (5, 2_000), Recorded::ExtendedIdleRun, 2, "4: idle run grows in place"),
            (&[(5, 0), (6, 1_000)], (4, 2_000), Recorded::Reset, 1, "5: head went back: re-created topic"),
            (&[(5, 1_000)], (6, 500), Recorded::Reset, 1, "6: clock went back: times unusable"),
            (&[(5, 1_000)], (5, 1_000), Recorded::Ignored, 1, "7: the same poll twice"),
        ];
        for (before, (head, observed_ms), want, len, why) in cases {
            let mut h = history(before, 64);
            assert_eq!(
                h.record(HeadSample { head, observed_ms }, 64),
                want,
                "{why}"
            );
            assert_eq!(h.len(), len, "{why}");
        }
    }

    #[test]
    fn ring_drops_the_oldest_samples() {
        // Capacity 3: after 5 samples only heads 20, 30, 40 remain, so 15 is before the history.
        let h = history(
            &[(0, 0), (10, 1_000), (20, 2_000), (30, 3_000), (40, 4_000)],
            3,
        );
        assert_eq!(h.len(), 3);
        assert_eq!(h.head_passed_ms(15), None);
        assert_eq!(h.head_passed_ms(25), Some(2_500.0));
        // A capacity below 2 would make interpolation impossible: 2 are kept.
        let h = history(&[(0, 0), (10, 1_000), (20, 2_000)], 0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn epoch_ms_table() {
        // (time, expected ms, why)
        #[rustfmt::skip]
        let cases = [
            (UNIX_EPOCH, 0, "1: the epoch"),
            (UNIX_EPOCH + Duration::from_millis(1_700_000_000_123), 1_700_000_000_123, "2: ms kept"),
            (UNIX_EPOCH - Duration::from_millis(5), -5, "3: before the epoch is negative"),
        ];
        for (t, want, why) in cases {
            assert_eq!(epoch_ms(t), want, "{why}");
        }
    }
}
