//! One cluster's analytics across polls: the head histories, the exact-read cache and the status
//! windows, and the two phases of a poll ([`ClusterAnalytics::plan_reads`], then
//! [`ClusterAnalytics::finish`]) that turn a snapshot into [`Analytics`]: the poll's whole
//! [`Report`], built by the walk of `groups.rs`.
//!
//! State is kept in vectors sorted like the snapshot (topics by name, groups by id, partitions by
//! id) and rebuilt from each snapshot, so whatever left the snapshot leaves the state.

use std::mem;
use std::sync::Arc;
use std::time::SystemTime;

use super::groups::{find_history, find_partition, find_topic_heads, topic_runs, GroupWalk};
use super::history::{epoch_ms, HeadHistory, HeadSample, Recorded};
use super::risk::deleting_retention;
use super::settings::{history_len, AnalyticsSettings};
use super::status::StatusRules;
use super::timestamps::{
    first_readable, oldest_unread, plan, OldestUnread, ReadPlan, TimestampCache, TimestampRead,
};
use super::window::PartitionWindow;
use crate::model::report::{topic_reports, Report};
use crate::model::snapshot::Snapshot;

/// What the analytics concluded from one poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Analytics {
    /// Every figure of the poll: topics and groups in snapshot order.
    pub report: Report,
    /// For the caller to log.
    pub events: Vec<Event>,
    /// Distinct timestamp reads still needed (`lagwatch_timestamp_reads_pending`).
    pub timestamp_reads_pending: usize,
}

/// Something that happened, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Evicted messages became > 0 for a group-partition (once per episode).
    MessagesEvicted {
        group: String,
        topic: Arc<str>,
        partition: i32,
        committed: i64,
        low_watermark: i64,
        evicted: i64,
    },
    /// The committed offset moved backwards from `from` to `to`.
    Rewind {
        group: String,
        topic: Arc<str>,
        partition: i32,
        from: i64,
        to: i64,
    },
}

#[derive(Debug)]
pub(super) struct TopicHeads {
    pub(super) name: Arc<str>,
    /// Sorted by partition id.
    pub(super) partitions: Vec<(i32, HeadHistory)>,
}

#[derive(Debug)]
struct GroupWindows {
    id: String,
    /// Sorted by topic name.
    topics: Vec<TopicWindows>,
}

/// 56 bytes, plus 48 per partition in `partitions`.
#[derive(Debug)]
pub(super) struct TopicWindows {
    pub(super) topic: Arc<str>,
    pub(super) rewinds_total: u64,
    pub(super) rewound_messages_total: u64,
    /// Sorted by partition id.
    pub(super) partitions: Vec<PartitionWindow>,
}

/// All analytics state of one cluster, kept by its poll loop.
#[derive(Debug)]
pub struct ClusterAnalytics {
    settings: AnalyticsSettings,
    rules: StatusRules,
    /// Mirrors the topics of the last planned snapshot.
    heads: Vec<TopicHeads>,
    timestamps: TimestampCache,
    /// Sorted by group id.
    groups: Vec<GroupWindows>,
    /// Round-robin position of the read budget.
    resume_reads_after: Option<TimestampRead>,
    pending_reads: usize,
    /// Polls finished; marks which cache entries a poll used.
    polls: u64,
    /// Scratch space of `finish`, kept so that polls do not allocate it again.
    windows_scratch: Vec<PartitionWindow>,
}

impl ClusterAnalytics {
    pub fn new(settings: AnalyticsSettings) -> Self {
        ClusterAnalytics {
            rules: StatusRules::from_settings(&settings),
            settings,
            heads: Vec::new(),
            timestamps: TimestampCache::default(),
            groups: Vec::new(),
            resume_reads_after: None,
            pending_reads: 0,
            polls: 0,
            windows_scratch: Vec::new(),
        }
    }

    /// Phase 1 of a poll: records every partition's head (H at `snapshot.taken_at`) and returns
    /// the record timestamps to read: for each group-partition with `max(C, L) < H` whose
    /// T(max(C, L)) lies before the kept history, or within a few offsets of a head that
    /// stopped moving (transaction markers, see `timestamps::NEAR_IDLE_HEAD`), and is not cached. Distinct, at most
    /// `max_reads_per_poll`; the rest is `pending`, and the next plan resumes after the last
    /// read of this one (round-robin), so a backlog larger than the budget is worked through.
    pub fn plan_reads(&mut self, snapshot: &Snapshot) -> ReadPlan {
        self.record_heads(snapshot);
        let mut needed = Vec::new();
        for group in &snapshot.groups {
            for (ti, topic, commits) in topic_runs(group, &snapshot.topics) {
                let heads = find_topic_heads(&self.heads, ti, &topic.name);
                for commit in commits {
                    let Some((pi, offsets)) = find_partition(topic, commit.partition) else {
                        continue;
                    };
                    let history = heads.and_then(|h| find_history(h, pi, commit.partition));
                    let cache = &self.timestamps;
                    let from = first_readable(
                        &topic.name,
                        commit.partition,
                        commit.offset.max(offsets.earliest),
                        |r| cache.peek_skip(r),
                    );
                    match oldest_unread(&topic.name, offsets, from, history, |r| cache.peek(r)) {
                        OldestUnread::Unknown(read) | OldestUnread::Provisional { read, .. } => {
                            needed.push(read)
                        }
                        OldestUnread::CaughtUp | OldestUnread::AppendedMs(_) => {}
                    }
                }
            }
        }
        let planned = plan(
            needed,
            self.settings.max_reads_per_poll,
            &mut self.resume_reads_after,
        );
        self.pending_reads = planned.pending;
        planned
    }

    /// Between the phases: `reads` (of this poll's plan) found no record before the head of
    /// `snapshot` — only transaction markers, or aborted records under `read_committed`. Until
    /// the head moves their partitions count as caught up (time lag 0, PRODUCT.md §4); after,
    /// the oldest readable record is at or after that head.
    pub fn no_record_before_head(&mut self, snapshot: &Snapshot, reads: &[TimestampRead]) {
        for read in reads {
            let head = snapshot
                .topics
                .binary_search_by(|t| t.name.as_ref().cmp(read.topic.as_ref()))
                .ok()
                .and_then(|i| snapshot.topics.get(i))
                .and_then(|t| find_partition(t, read.partition))
                .map(|(_, offsets)| offsets.latest);
            if let Some(head) = head.filter(|h| *h > read.offset) {
                self.timestamps.insert_skip(read.clone(), head);
            }
        }
    }

    /// Phase 2: caches the timestamps read (ms since the epoch; `None` = could not be read, so
    /// that partition's time lag is unknown this poll), computes this poll's analytics at `now`
    /// and advances the status windows. `snapshot` is the one given to `plan_reads`.
    pub fn finish(
        &mut self,
        snapshot: &Snapshot,
        reads: &[(TimestampRead, Option<i64>)],
        now: SystemTime,
    ) -> Analytics {
        self.polls += 1;
        for (read, timestamp_ms) in reads {
            if let Some(ms) = timestamp_ms {
                self.timestamps.insert(read.clone(), *ms);
            }
        }
        let mut walk = GroupWalk {
            settings: &self.settings,
            rules: &self.rules,
            heads: &self.heads,
            timestamps: &mut self.timestamps,
            poll: self.polls,
            now_ms: epoch_ms(now),
            observed_ms: epoch_ms(snapshot.taken_at),
            // Parsed once per topic, not once per group-topic.
            retentions: snapshot
                .topics
                .iter()
                .map(|t| deleting_retention(&t.config))
                .collect(),
            windows: mem::take(&mut self.windows_scratch),
            events: Vec::new(),
        };
        let mut previous = mem::take(&mut self.groups);
        let mut windows = Vec::with_capacity(snapshot.groups.len());
        let mut groups = Vec::with_capacity(snapshot.groups.len());
        for group in &snapshot.groups {
            let old = previous
                .binary_search_by(|g| g.id.as_str().cmp(&group.id))
                .map(|i| mem::take(&mut previous[i].topics))
                .unwrap_or_default();
            let (report, topics) = walk.group(group, &snapshot.topics, old);
            groups.push(report);
            windows.push(GroupWindows {
                id: group.id.clone(),
                topics,
            });
        }
        let events = walk.events;
        self.windows_scratch = walk.windows;
        if !windows.is_sorted_by(|a, b| a.id <= b.id) {
            windows.sort_by(|a, b| a.id.cmp(&b.id));
        }
        self.groups = windows;
        self.timestamps
            .sweep(self.polls, self.settings.timestamp_cache);
        Analytics {
            report: Report {
                topics: topic_reports(snapshot),
                groups,
            },
            events,
            timestamp_reads_pending: self.pending_reads,
        }
    }

    /// Rebuilds the head histories in the snapshot's shape, adding this poll's sample.
    fn record_heads(&mut self, snapshot: &Snapshot) {
        let capacity = history_len(&self.settings);
        let observed_ms = epoch_ms(snapshot.taken_at);
        let mut previous = mem::take(&mut self.heads);
        let mut heads = Vec::with_capacity(snapshot.topics.len());
        for topic in &snapshot.topics {
            let mut old = previous
                .binary_search_by(|t| t.name.as_ref().cmp(topic.name.as_ref()))
                .map(|i| mem::take(&mut previous[i].partitions))
                .unwrap_or_default();
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for offsets in &topic.partitions {
                let mut history = old
                    .binary_search_by_key(&offsets.partition, |(p, _)| *p)
                    .map(|i| mem::take(&mut old[i].1))
                    .unwrap_or_default();
                let sample = HeadSample {
                    head: offsets.latest,
                    observed_ms,
                };
                if history.record(sample, capacity) == Recorded::Reset {
                    self.timestamps
                        .forget_partition(&topic.name, offsets.partition);
                }
                partitions.push((offsets.partition, history));
            }
            heads.push(TopicHeads {
                name: topic.name.clone(),
                partitions,
            });
        }
        self.heads = heads;
    }
}

#[cfg(test)]
impl ClusterAnalytics {
    /// (partitions with a head history, group-partition windows, cache entries).
    pub(super) fn state_counts(&self) -> (usize, usize, usize) {
        let histories = self.heads.iter().map(|t| t.partitions.len()).sum();
        let windows = self
            .groups
            .iter()
            .flat_map(|g| &g.topics)
            .map(|t| t.partitions.len())
            .sum();
        (histories, windows, self.timestamps.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::GroupPartitionReport;
    use std::mem::size_of;

    /// PRODUCT.md §11: 20,000 partitions read by 2,000 groups × 500 partitions (1,000,000
    /// group-partitions), history 64, must fit in 256 MiB with everything else. The analytics
    /// state is held to half of that; the per-poll output is counted separately.
    #[test]
    fn memory_budget() {
        let window = size_of::<PartitionWindow>();
        assert!(window <= 200, "per-window bytes: {window}");
        assert_eq!(window, 48);
        assert_eq!(size_of::<HeadSample>(), 16);
        assert_eq!(size_of::<TopicWindows>(), 56);

        let group_partitions = 1_000_000usize;
        let partitions = 20_000usize;
        // 2,000 groups over 20,000 partitions: assume 10-partition topics, 50 topics a group.
        let group_topics = 2_000 * 50;
        let history = AnalyticsSettings::default().history;
        let per_history =
            history.next_power_of_two() * size_of::<HeadSample>() + size_of::<(i32, HeadHistory)>();
        assert!(per_history <= 1_100, "{per_history}");
        // HashMap: key + value + 1 control byte, at a 7/8 load factor.
        let per_cache_entry = (size_of::<TimestampRead>() + 16 + 1) * 8 / 7;
        let state = group_partitions * window
            + group_topics * size_of::<TopicWindows>()
            + 2_000 * size_of::<GroupWindows>()
            + partitions * per_history
            + AnalyticsSettings::default().timestamp_cache * per_cache_entry;
        assert!(state <= 128 << 20, "analytics state: {} MiB", state >> 20);
        // The output of one poll (kept until the next): 96 bytes per group-partition (the
        // commit stall is optional: share groups have none).
        assert_eq!(size_of::<GroupPartitionReport>(), 96);
    }
}
