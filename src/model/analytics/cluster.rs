//! One cluster's analytics across polls: the head histories, the exact-read cache and the status
//! windows, and the two phases of a poll ([`ClusterAnalytics::plan_reads`], then
//! [`ClusterAnalytics::finish`]) that turn a snapshot into [`Analytics`].
//!
//! State is kept in vectors sorted like the snapshot (topics by name, groups by id, partitions by
//! id) and rebuilt from each snapshot, so whatever left the snapshot leaves the state.

use std::mem;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::history::{epoch_ms, HeadHistory, HeadSample, Recorded};
use super::risk::{deleting_retention, evicted_messages, eviction_risk};
use super::settings::{history_len, AnalyticsSettings};
use super::skew::{commit_stall_seconds, lag_skew_seconds};
use super::status::{group_status, partition_status, PartitionFacts, Status, StatusRules};
use super::timestamps::{
    oldest_unread, plan, OldestUnread, ReadPlan, TimestampCache, TimestampRead,
};
use super::window::{Observation, PartitionWindow};
use crate::model::lag::partition_lag;
use crate::model::snapshot::{
    CommittedOffset, GroupSnapshot, PartitionOffsets, Snapshot, TopicSnapshot,
};

/// What the analytics concluded from one poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Analytics {
    /// In snapshot order (by id).
    pub groups: Vec<GroupAnalytics>,
    /// For the caller to log.
    pub events: Vec<Event>,
    /// Distinct timestamp reads still needed (`lagwatch_timestamp_reads_pending`).
    pub timestamp_reads_pending: usize,
}

/// Aggregates cover the partitions whose value is known; `None` when none is.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAnalytics {
    pub id: String,
    pub status: Status,
    /// Max over partitions.
    pub lag_seconds: Option<f64>,
    /// Min over partitions.
    pub eviction_seconds: Option<f64>,
    /// Max over partitions.
    pub retention_usage_ratio: Option<f64>,
    /// Sum over partitions.
    pub evicted_messages: i64,
    /// Max over partitions.
    pub commit_stall_seconds: f64,
    /// Topics with at least one partition, sorted by name.
    pub topics: Vec<GroupTopicAnalytics>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupTopicAnalytics {
    pub topic: Arc<str>,
    pub lag_seconds: Option<f64>,
    pub eviction_seconds: Option<f64>,
    pub retention_usage_ratio: Option<f64>,
    pub evicted_messages: i64,
    pub commit_stall_seconds: f64,
    /// Max − min time lag over the known partitions.
    pub lag_skew_seconds: Option<f64>,
    /// Rewinds seen since lagwatch started (or since this group-topic reappeared).
    pub rewinds_total: u64,
    pub rewound_messages_total: u64,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionAnalytics>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionAnalytics {
    pub partition: i32,
    /// `now − T(max(C, L))`, 0 when caught up; `None` when T is unknown this poll.
    pub lag_seconds: Option<f64>,
    pub eviction_seconds: Option<f64>,
    pub retention_usage_ratio: Option<f64>,
    pub evicted_messages: i64,
    pub commit_stall_seconds: f64,
}

impl GroupTopicAnalytics {
    /// A group-topic's figures from its partitions': max time lag and usage, min time to
    /// eviction, summed evicted messages, max stall, skew over the known time lags; `rewinds` are
    /// the (events, messages) counters.
    pub fn from_partitions(
        topic: Arc<str>,
        rewinds: (u64, u64),
        partitions: Vec<PartitionAnalytics>,
    ) -> Self {
        GroupTopicAnalytics {
            topic,
            lag_seconds: max_known(partitions.iter().map(|p| p.lag_seconds)),
            eviction_seconds: min_known(partitions.iter().map(|p| p.eviction_seconds)),
            retention_usage_ratio: max_known(partitions.iter().map(|p| p.retention_usage_ratio)),
            evicted_messages: partitions.iter().map(|p| p.evicted_messages).sum(),
            commit_stall_seconds: partitions
                .iter()
                .map(|p| p.commit_stall_seconds)
                .fold(0.0, f64::max),
            lag_skew_seconds: lag_skew_seconds(partitions.iter().map(|p| p.lag_seconds)),
            rewinds_total: rewinds.0,
            rewound_messages_total: rewinds.1,
            partitions,
        }
    }
}

impl GroupAnalytics {
    /// A group's figures from its topics': max time lag and usage, min time to eviction, summed
    /// evicted messages, max stall.
    pub fn from_topics(id: String, status: Status, topics: Vec<GroupTopicAnalytics>) -> Self {
        GroupAnalytics {
            id,
            status,
            lag_seconds: max_known(topics.iter().map(|t| t.lag_seconds)),
            eviction_seconds: min_known(topics.iter().map(|t| t.eviction_seconds)),
            retention_usage_ratio: max_known(topics.iter().map(|t| t.retention_usage_ratio)),
            evicted_messages: topics.iter().map(|t| t.evicted_messages).sum(),
            commit_stall_seconds: topics
                .iter()
                .map(|t| t.commit_stall_seconds)
                .fold(0.0, f64::max),
            topics,
        }
    }
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
struct TopicHeads {
    name: Arc<str>,
    /// Sorted by partition id.
    partitions: Vec<(i32, HeadHistory)>,
}

#[derive(Debug)]
struct GroupWindows {
    id: String,
    /// Sorted by topic name.
    topics: Vec<TopicWindows>,
}

/// 56 bytes, plus 48 per partition in `partitions`.
#[derive(Debug)]
struct TopicWindows {
    topic: Arc<str>,
    rewinds_total: u64,
    rewound_messages_total: u64,
    /// Sorted by partition id.
    partitions: Vec<PartitionWindow>,
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
    /// T(max(C, L)) lies before the kept history and is not cached. Distinct, at most
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
                    if let OldestUnread::Unknown(read) =
                        oldest_unread(&topic.name, offsets, commit.offset, history, |r| {
                            cache.peek(r)
                        })
                    {
                        needed.push(read);
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
        let mut poll = Poll {
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
            let (analytics, topics) = poll.group(group, &snapshot.topics, old);
            groups.push(analytics);
            windows.push(GroupWindows {
                id: group.id.clone(),
                topics,
            });
        }
        let events = poll.events;
        self.windows_scratch = poll.windows;
        if !windows.is_sorted_by(|a, b| a.id <= b.id) {
            windows.sort_by(|a, b| a.id.cmp(&b.id));
        }
        self.groups = windows;
        self.timestamps
            .sweep(self.polls, self.settings.timestamp_cache);
        Analytics {
            groups,
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

/// The borrowed state and constants of one `finish`.
struct Poll<'a> {
    settings: &'a AnalyticsSettings,
    rules: &'a StatusRules,
    heads: &'a [TopicHeads],
    timestamps: &'a mut TimestampCache,
    poll: u64,
    now_ms: i64,
    observed_ms: i64,
    /// `deleting_retention` of each snapshot topic, by index.
    retentions: Vec<Option<Duration>>,
    /// One group-topic's new windows while its old ones are still read; kept across group-topics
    /// (and polls) so that no group-topic allocates for it.
    windows: Vec<PartitionWindow>,
    events: Vec<Event>,
}

impl Poll<'_> {
    fn group(
        &mut self,
        group: &GroupSnapshot,
        topics: &[TopicSnapshot],
        mut previous: Vec<TopicWindows>,
    ) -> (GroupAnalytics, Vec<TopicWindows>) {
        let mut out_topics = Vec::with_capacity(previous.len());
        let mut windows = Vec::with_capacity(previous.len());
        let mut status = Status::Ok;
        // Both `previous` and the runs are sorted by topic name, so the match of a run is usually
        // where the last one left off.
        let mut cursor = 0;
        for (ti, topic, commits) in topic_runs(group, topics) {
            let found = previous
                .get(cursor)
                .filter(|t| same_name(&t.topic, &topic.name))
                .map(|_| cursor)
                .or_else(|| {
                    previous
                        .binary_search_by(|t| t.topic.as_ref().cmp(topic.name.as_ref()))
                        .ok()
                });
            let old = found.and_then(|i| {
                cursor = i + 1;
                previous.get_mut(i).map(|t| TopicWindows {
                    topic: topic.name.clone(),
                    rewinds_total: t.rewinds_total,
                    rewound_messages_total: t.rewound_messages_total,
                    partitions: mem::take(&mut t.partitions),
                })
            });
            let (analytics, state, topic_status) = self.topic(group, ti, topic, commits, old);
            if analytics.partitions.is_empty() {
                continue;
            }
            status = group_status([status, topic_status]);
            out_topics.push(analytics);
            windows.push(state);
        }
        let analytics = GroupAnalytics::from_topics(group.id.clone(), status, out_topics);
        (analytics, windows)
    }

    /// `ti` is the index of `topic` in the snapshot.
    fn topic(
        &mut self,
        group: &GroupSnapshot,
        ti: usize,
        topic: &TopicSnapshot,
        commits: &[CommittedOffset],
        previous: Option<TopicWindows>,
    ) -> (GroupTopicAnalytics, TopicWindows, Status) {
        let mut state = previous.unwrap_or_else(|| TopicWindows {
            topic: topic.name.clone(),
            rewinds_total: 0,
            rewound_messages_total: 0,
            partitions: Vec::new(),
        });
        let heads = find_topic_heads(self.heads, ti, &topic.name);
        let retention = self.retentions.get(ti).copied().flatten();
        let mut partitions = Vec::with_capacity(commits.len());
        let mut status = Status::Ok;
        let old = &state.partitions;
        self.windows.clear();
        // Old windows are sorted by partition like the commits: usually the next one matches.
        let mut cursor = 0;
        for commit in commits {
            let Some((pi, offsets)) = find_partition(topic, commit.partition) else {
                continue;
            };
            let history = heads.and_then(|h| find_history(h, pi, commit.partition));
            let (timestamps, poll) = (&mut *self.timestamps, self.poll);
            let lag_seconds =
                match oldest_unread(&topic.name, offsets, commit.offset, history, |r| {
                    timestamps.take(r, poll)
                }) {
                    OldestUnread::CaughtUp => Some(0.0),
                    OldestUnread::AppendedMs(ms) => {
                        Some(((self.now_ms as f64 - ms) / 1000.0).max(0.0))
                    }
                    OldestUnread::Unknown(_) => None,
                };
            let lag_messages = partition_lag(commit.offset, offsets);
            let behind = lag_messages > self.settings.allowed_lag;
            let evicted = evicted_messages(commit.offset, offsets);
            let observation = Observation {
                committed: commit.offset,
                lag_messages,
                behind,
                members: group.members,
                observed_ms: self.observed_ms,
            };
            let found = old
                .get(cursor)
                .filter(|w| w.partition == commit.partition)
                .map(|_| cursor)
                .or_else(|| {
                    old.binary_search_by_key(&commit.partition, |w| w.partition)
                        .ok()
                });
            let found = found.and_then(|i| {
                cursor = i + 1;
                old.get(i).copied()
            });
            let mut window = match found {
                Some(mut window) => {
                    let from = window.committed;
                    if let Some(rewound) = window.observe(&observation) {
                        state.rewinds_total += 1;
                        state.rewound_messages_total += rewound;
                        self.events.push(Event::Rewind {
                            group: group.id.clone(),
                            topic: topic.name.clone(),
                            partition: commit.partition,
                            from,
                            to: commit.offset,
                        });
                    }
                    window
                }
                None => PartitionWindow::first(commit.partition, &observation),
            };
            if window.note_evicted(evicted) {
                self.events.push(Event::MessagesEvicted {
                    group: group.id.clone(),
                    topic: topic.name.clone(),
                    partition: commit.partition,
                    committed: commit.offset,
                    low_watermark: offsets.earliest,
                    evicted,
                });
            }
            let stall = commit_stall_seconds(behind, window.stall_since_ms, self.now_ms);
            let risk = eviction_risk(
                retention,
                behind,
                commit.offset < offsets.earliest,
                lag_seconds,
            );
            let facts = PartitionFacts {
                window: &window,
                behind,
                members: group.members,
                evicted_messages: evicted,
                eviction_seconds: risk.eviction_seconds,
                retention,
                commit_stall_seconds: stall,
            };
            status = group_status([status, partition_status(&facts, self.rules)]);
            self.windows.push(window);
            partitions.push(PartitionAnalytics {
                partition: commit.partition,
                lag_seconds,
                eviction_seconds: risk.eviction_seconds,
                retention_usage_ratio: risk.retention_usage_ratio,
                evicted_messages: evicted,
                commit_stall_seconds: stall,
            });
        }
        // Into the old allocation: the same partitions poll after poll, so it fits.
        state.partitions.clear();
        state.partitions.extend_from_slice(&self.windows);
        let analytics = GroupTopicAnalytics::from_partitions(
            topic.name.clone(),
            (state.rewinds_total, state.rewound_messages_total),
            partitions,
        );
        (analytics, state, status)
    }
}

/// Topic names are shared `Arc`s across one snapshot, so comparing pointers usually settles it
/// without reading the strings.
fn same_name(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// The group's commits one topic at a time, with the topic's index in `topics`, for topics
/// present in the snapshot (commits on vanished or unselected topics are skipped, as in
/// `lag.rs`). Commits are sorted by (topic, partition) and `topics` by name, so a run's topic is
/// usually the one after the previous run's.
fn topic_runs<'a>(
    group: &'a GroupSnapshot,
    topics: &'a [TopicSnapshot],
) -> impl Iterator<Item = (usize, &'a TopicSnapshot, &'a [CommittedOffset])> + 'a {
    let mut rest = &group.offsets[..];
    let mut next = 0;
    std::iter::from_fn(move || loop {
        let first = rest.first()?;
        let run = rest
            .iter()
            .take_while(|c| same_name(&c.topic, &first.topic))
            .count();
        let (commits, tail) = rest.split_at(run);
        rest = tail;
        let found = topics
            .get(next)
            .filter(|t| same_name(&t.name, &first.topic))
            .map(|_| next)
            .or_else(|| {
                topics
                    .binary_search_by(|t| t.name.as_ref().cmp(first.topic.as_ref()))
                    .ok()
            });
        if let Some((i, topic)) = found.and_then(|i| Some((i, topics.get(i)?))) {
            next = i + 1;
            return Some((i, topic, commits));
        }
    })
}

/// A partition's index in `topic` and its watermarks; `None` when its offsets were not read this
/// poll. Partition ids are usually 0..n, so the id is tried as the index first.
fn find_partition(topic: &TopicSnapshot, partition: i32) -> Option<(usize, PartitionOffsets)> {
    let by_id = usize::try_from(partition).ok().filter(|&i| {
        topic
            .partitions
            .get(i)
            .is_some_and(|p| p.partition == partition)
    });
    let i = by_id.or_else(|| {
        topic
            .partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
    })?;
    Some((i, *topic.partitions.get(i)?))
}

/// The heads of snapshot topic `ti` named `name`. `heads` mirrors the topics of the last planned
/// snapshot, so for that snapshot the index is the answer; by name otherwise.
fn find_topic_heads<'a>(
    heads: &'a [TopicHeads],
    ti: usize,
    name: &Arc<str>,
) -> Option<&'a TopicHeads> {
    if let Some(h) = heads.get(ti).filter(|h| same_name(&h.name, name)) {
        return Some(h);
    }
    let i = heads
        .binary_search_by(|t| t.name.as_ref().cmp(name.as_ref()))
        .ok()?;
    heads.get(i)
}

/// The history of `partition`, at index `pi` in its snapshot topic (and so, for the planned
/// snapshot, in `heads`).
fn find_history(heads: &TopicHeads, pi: usize, partition: i32) -> Option<&HeadHistory> {
    if let Some((_, h)) = heads.partitions.get(pi).filter(|(p, _)| *p == partition) {
        return Some(h);
    }
    let i = heads
        .partitions
        .binary_search_by_key(&partition, |(p, _)| *p)
        .ok()?;
    heads.partitions.get(i).map(|(_, h)| h)
}

fn max_known(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().reduce(f64::max)
}

fn min_known(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().reduce(f64::min)
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
        // The output of one poll (kept until the next): 72 bytes per group-partition.
        assert_eq!(size_of::<PartitionAnalytics>(), 72);
    }
}
