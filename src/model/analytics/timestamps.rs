//! Record timestamps the model cannot interpolate: what to read (bounded per poll, round-robin so
//! no partition starves), and the cache of exact reads (PRODUCT.md §3, record timestamps).
//!
//! Memory: a cache entry is a [`TimestampRead`] key (32 bytes) and a 16-byte value in a
//! `HashMap` (one control byte, load factor ≤ 7/8): about 56 bytes, so 5.6 MB at 100,000
//! entries. After each poll only the entries that poll used are kept, up to the bound.

use std::collections::HashMap;
use std::sync::Arc;

use super::history::HeadHistory;
use crate::model::snapshot::PartitionOffsets;

/// A record whose timestamp the model needs. `kafka/` reads the first record at or after
/// `offset` (transaction markers and compaction gaps are skipped, as a consumer would) and
/// hands back its timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimestampRead {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// The reads of one poll's second phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// Distinct reads, at most `max_reads_per_poll`.
    pub reads: Vec<TimestampRead>,
    /// Distinct reads needed but left for later polls (`lagwatch_timestamp_reads_pending`).
    pub pending: usize,
}

/// When the oldest record a group can still read was appended.
#[derive(Debug, Clone, PartialEq)]
pub enum OldestUnread {
    /// Nothing to read (`max(C, L) ≥ H`): time lag 0.
    CaughtUp,
    /// Milliseconds since the epoch, interpolated or read exactly.
    AppendedMs(f64),
    /// Interpolated, but only an exact read can tell: the offset sits within
    /// [`NEAR_IDLE_HEAD`] of a head that stopped moving, where the records left may be only
    /// transaction markers (time lag 0). Until the read answers, the interpolation stands.
    Provisional { ms: f64, read: TimestampRead },
    /// Before the kept history and not cached: this read would tell.
    Unknown(TimestampRead),
}

/// How close to a head that stopped moving an offset is read rather than interpolated. A
/// transaction leaves one marker per partition it wrote to, so a consumer that commits the
/// record after its last one sits on a marker with the head one past it; a few aborted or empty
/// transactions leave a few more. Interpolation cannot tell markers from records; a read can,
/// and its answer is cached while the commit and the head stay.
pub const NEAR_IDLE_HEAD: i64 = 8;

/// Finds T(max(C, L)): `C < L` means the oldest readable record is at L (PRODUCT.md §4).
/// Interpolation first; the exact-read cache (looked up by `cached`) before the history, and
/// within [`NEAR_IDLE_HEAD`] of an idle head, where a read decides.
pub fn oldest_unread(
    topic: &Arc<str>,
    offsets: PartitionOffsets,
    committed: i64,
    history: Option<&HeadHistory>,
    cached: impl FnOnce(&TimestampRead) -> Option<i64>,
) -> OldestUnread {
    let offset = committed.max(offsets.earliest);
    if offset >= offsets.latest {
        return OldestUnread::CaughtUp;
    }
    let interpolated = history.and_then(|h| h.head_passed_ms(offset));
    let near_idle_head = offsets.latest - offset <= NEAR_IDLE_HEAD
        && history.is_some_and(|h| h.idle_at(offsets.latest));
    if let (Some(ms), false) = (interpolated, near_idle_head) {
        return OldestUnread::AppendedMs(ms);
    }
    let read = TimestampRead {
        topic: topic.clone(),
        partition: offsets.partition,
        offset,
    };
    match (cached(&read), interpolated) {
        (Some(ms), _) => OldestUnread::AppendedMs(ms as f64),
        (None, Some(ms)) => OldestUnread::Provisional { ms, read },
        (None, None) => OldestUnread::Unknown(read),
    }
}

/// The offset to look at instead of `from` = max(C, L): a read at `from` that found no record
/// before the head of its poll (only transaction markers or aborted records under
/// `read_committed`) says the oldest readable record is at or after that head, so the search
/// goes on there. `skip` looks up those reads (their head); each step moves forward, so this
/// ends.
pub fn first_readable(
    topic: &Arc<str>,
    partition: i32,
    from: i64,
    mut skip: impl FnMut(&TimestampRead) -> Option<i64>,
) -> i64 {
    let mut offset = from;
    loop {
        let read = TimestampRead {
            topic: topic.clone(),
            partition,
            offset,
        };
        match skip(&read) {
            Some(head) if head > offset => offset = head,
            _ => return offset,
        }
    }
}

/// Picks at most `max` distinct reads out of `needed`, starting after the last read of the
/// previous plan (`resume_after`, updated) and wrapping, so a backlog larger than the budget is
/// worked through instead of the same first `max` being read every poll.
pub fn plan(
    mut needed: Vec<TimestampRead>,
    max: usize,
    resume_after: &mut Option<TimestampRead>,
) -> ReadPlan {
    needed.sort_unstable();
    needed.dedup();
    let total = needed.len();
    if total <= max {
        return ReadPlan {
            reads: needed,
            pending: 0,
        };
    }
    let start = resume_after
        .as_ref()
        .map_or(0, |last| needed.partition_point(|r| r <= last));
    needed.rotate_left(start);
    needed.truncate(max);
    *resume_after = needed.last().cloned();
    ReadPlan {
        pending: total - needed.len(),
        reads: needed,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cached {
    timestamp_ms: i64,
    /// The poll that last looked this entry up (0 = not yet).
    used_in_poll: u64,
}

/// A read that found no record before `head`, the head of the poll that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Skip {
    head: i64,
    /// The poll that last looked this entry up (0 = not yet).
    used_in_poll: u64,
}

/// Exact record timestamps by (topic, partition, offset), and the reads that found no record
/// before the head (so they are not made again while the head stays).
#[derive(Debug, Clone, Default)]
pub struct TimestampCache {
    entries: HashMap<TimestampRead, Cached>,
    skips: HashMap<TimestampRead, Skip>,
}

impl TimestampCache {
    pub fn insert(&mut self, read: TimestampRead, timestamp_ms: i64) {
        self.entries.insert(
            read,
            Cached {
                timestamp_ms,
                used_in_poll: 0,
            },
        );
    }

    /// Notes that `read` found no record before `head`.
    pub fn insert_skip(&mut self, read: TimestampRead, head: i64) {
        self.skips.insert(
            read,
            Skip {
                head,
                used_in_poll: 0,
            },
        );
    }

    /// The head before which `read` found no record, without marking it as used (planning).
    pub fn peek_skip(&self, read: &TimestampRead) -> Option<i64> {
        self.skips.get(read).map(|s| s.head)
    }

    /// `peek_skip`, marking the entry as used by `poll`.
    pub fn take_skip(&mut self, read: &TimestampRead, poll: u64) -> Option<i64> {
        let entry = self.skips.get_mut(read)?;
        entry.used_in_poll = poll;
        Some(entry.head)
    }

    /// Looks up without marking the entry as used (planning).
    pub fn peek(&self, read: &TimestampRead) -> Option<i64> {
        self.entries.get(read).map(|c| c.timestamp_ms)
    }

    /// Looks up and marks the entry as used by `poll`.
    pub fn take(&mut self, read: &TimestampRead, poll: u64) -> Option<i64> {
        let entry = self.entries.get_mut(read)?;
        entry.used_in_poll = poll;
        Some(entry.timestamp_ms)
    }

    /// Keeps the entries `poll` used, at most `bound` of them. An entry no group sat on this poll
    /// is useless: a commit that moves lands either inside the history or on another offset.
    pub fn sweep(&mut self, poll: u64, bound: usize) {
        let mut kept = 0usize;
        self.entries.retain(|_, c| {
            let keep = c.used_in_poll == poll && kept < bound;
            kept += usize::from(keep);
            keep
        });
        self.skips.retain(|_, s| {
            let keep = s.used_in_poll == poll && kept < bound;
            kept += usize::from(keep);
            keep
        });
    }

    /// Drops a partition's entries: its offsets now name other records.
    pub fn forget_partition(&mut self, topic: &str, partition: i32) {
        self.entries
            .retain(|k, _| !(k.partition == partition && k.topic.as_ref() == topic));
        self.skips
            .retain(|k, _| !(k.partition == partition && k.topic.as_ref() == topic));
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.skips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.skips.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::analytics::history::HeadSample;

    fn read(topic: &str, partition: i32, offset: i64) -> TimestampRead {
        TimestampRead {
            topic: Arc::from(topic),
            partition,
            offset,
        }
    }

    #[test]
    fn oldest_unread_table() {
        let topic: Arc<str> = Arc::from("orders");
        let mut h = HeadHistory::default();
        h.record(
            HeadSample {
                head: 100,
                observed_ms: 10_000,
            },
            64,
        );
        h.record(
            HeadSample {
                head: 200,
                observed_ms: 20_000,
            },
            64,
        );
        let po = |earliest, latest| PartitionOffsets {
            partition: 0,
            earliest,
            latest,
        };
        let cached_at_50 = |r: &TimestampRead| (r.offset == 50).then_some(5_000);
        // (L, H, C, history?, expected, why)
        #[rustfmt::skip]
        let cases = [
            (0, 200, 200, true, OldestUnread::CaughtUp, "1: C = H: nothing unread"),
            (0, 200, 250, true, OldestUnread::CaughtUp, "2: C > H (truncated log): nothing unread"),
            (0, 200, 150, true, OldestUnread::AppendedMs(15_000.0), "3: inside history: interpolated"),
            (0, 200, 50, true, OldestUnread::AppendedMs(5_000.0), "4: before history, cached"),
            (0, 200, 60, true, OldestUnread::Unknown(read("orders", 0, 60)), "5: before history, not cached: read C"),
            (70, 200, 60, true, OldestUnread::Unknown(read("orders", 0, 70)), "6: C < L: read L, the oldest readable"),
            (120, 200, 60, true, OldestUnread::AppendedMs(12_000.0), "7: C < L and L inside history"),
            (200, 200, 60, true, OldestUnread::CaughtUp, "8: all deleted, none new: caught up"),
            (0, 200, 150, false, OldestUnread::Unknown(read("orders", 0, 150)), "9: no history at all: read"),
        ];
        for (l, hw, c, with_history, want, why) in cases {
            let got = oldest_unread(
                &topic,
                po(l, hw),
                c,
                with_history.then_some(&h),
                cached_at_50,
            );
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn near_a_head_that_stopped_the_record_is_read() {
        let topic: Arc<str> = Arc::from("payments");
        let sample = |head, observed_ms| HeadSample { head, observed_ms };
        let mut moving = HeadHistory::default();
        moving.record(sample(100, 10_000), 64);
        moving.record(sample(200, 20_000), 64);
        let mut idle = moving.clone();
        idle.record(sample(200, 30_000), 64);
        assert!(idle.idle_at(200) && !moving.idle_at(200) && !idle.idle_at(201));
        let po = PartitionOffsets {
            partition: 0,
            earliest: 0,
            latest: 200,
        };
        let cached_at_199 = |r: &TimestampRead| (r.offset == 199).then_some(25_000);
        // (C, history, expected, why)
        #[rustfmt::skip]
        let cases = [
            (195, &moving, OldestUnread::AppendedMs(19_500.0), "1: head still moving: interpolated"),
            (195, &idle, OldestUnread::Provisional { ms: 19_500.0, read: read("payments", 0, 195) }, "2: 5 from an idle head: read, interpolation meanwhile"),
            (192, &idle, OldestUnread::Provisional { ms: 19_200.0, read: read("payments", 0, 192) }, "3: exactly NEAR_IDLE_HEAD away: read"),
            (191, &idle, OldestUnread::AppendedMs(19_100.0), "4: farther: interpolated"),
            (199, &idle, OldestUnread::AppendedMs(25_000.0), "5: read before: the record's own time"),
        ];
        for (c, history, want, why) in cases {
            assert_eq!(
                oldest_unread(&topic, po, c, Some(history), cached_at_199),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn plan_table() {
        let needed = || {
            vec![
                read("b", 0, 5),
                read("a", 1, 7),
                read("a", 0, 3),
                read("a", 1, 7),
                read("a", 0, 9),
            ]
        };
        // (budget, resume after, expected reads (topic, partition, offset), pending, why)
        type Case<'a> = (
            usize,
            Option<TimestampRead>,
            Vec<(&'a str, i32, i64)>,
            usize,
            &'a str,
        );
        #[rustfmt::skip]
        let cases: [Case; 5] = [
            (10, None, vec![("a", 0, 3), ("a", 0, 9), ("a", 1, 7), ("b", 0, 5)], 0, "1: all fit; the duplicate is read once"),
            (2, None, vec![("a", 0, 3), ("a", 0, 9)], 2, "2: budget 2 of 4 distinct: 2 pending"),
            (2, Some(read("a", 0, 9)), vec![("a", 1, 7), ("b", 0, 5)], 2, "3: next poll resumes after the last read"),
            (3, Some(read("a", 1, 7)), vec![("b", 0, 5), ("a", 0, 3), ("a", 0, 9)], 1, "4: wraps around"),
            (0, None, vec![], 4, "5: no budget: everything pending"),
        ];
        for (budget, resume, want, pending, why) in cases {
            let mut resume = resume;
            let got = plan(needed(), budget, &mut resume);
            let want: Vec<TimestampRead> =
                want.into_iter().map(|(t, p, o)| read(t, p, o)).collect();
            assert_eq!(got.reads, want, "{why}");
            assert_eq!(got.pending, pending, "{why}");
        }
    }

    #[test]
    fn reads_that_found_no_record_move_the_search_to_their_head() {
        let topic: Arc<str> = Arc::from("payments");
        let mut cache = TimestampCache::default();
        // Offset 14 is a commit marker and the head was 15; from 15 on, markers up to 18.
        cache.insert_skip(read("payments", 0, 14), 15);
        cache.insert_skip(read("payments", 0, 15), 18);
        let from = |offset| first_readable(&topic, 0, offset, |r| cache.peek_skip(r));
        assert_eq!(from(14), 18, "chained: 14 → 15 → 18");
        assert_eq!(from(15), 18);
        assert_eq!(from(13), 13, "nothing known at 13: read there");
        assert_eq!(
            first_readable(&topic, 1, 14, |r| cache.peek_skip(r)),
            14,
            "another partition"
        );
        let po = |latest| PartitionOffsets {
            partition: 0,
            earliest: 0,
            latest,
        };
        // The head still at 18: caught up; past it, the record at 18 is the oldest unread.
        assert_eq!(
            oldest_unread(&topic, po(18), from(14), None, |_| None),
            OldestUnread::CaughtUp
        );
        assert_eq!(
            oldest_unread(&topic, po(20), from(14), None, |_| None),
            OldestUnread::Unknown(read("payments", 0, 18))
        );
        // Kept like timestamps: while a poll uses them, within the bound.
        assert_eq!(cache.take_skip(&read("payments", 0, 14), 1), Some(15));
        cache.sweep(1, 10);
        assert_eq!(cache.len(), 1);
        cache.forget_partition("payments", 0);
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_keeps_what_the_poll_used_up_to_the_bound() {
        let mut cache = TimestampCache::default();
        cache.insert(read("a", 0, 1), 100);
        cache.insert(read("a", 0, 2), 200);
        cache.insert(read("b", 0, 1), 300);
        // Planning looks without marking.
        assert_eq!(cache.peek(&read("a", 0, 1)), Some(100));
        assert_eq!(cache.take(&read("a", 0, 1), 1), Some(100));
        assert_eq!(cache.take(&read("b", 0, 1), 1), Some(300));
        cache.sweep(1, 10);
        // a/0@2 was not used by poll 1: dropped.
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.peek(&read("a", 0, 2)), None);
        // Used by poll 2 but the bound is 1: one of the two stays.
        cache.take(&read("a", 0, 1), 2);
        cache.take(&read("b", 0, 1), 2);
        cache.sweep(2, 1);
        assert_eq!(cache.len(), 1);
        cache.forget_partition("a", 0);
        cache.forget_partition("b", 0);
        assert!(cache.is_empty());
    }
}
