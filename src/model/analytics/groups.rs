//! The one walk over a snapshot's committed offsets, group by group, topic by topic, partition by
//! partition: each group-partition's figures (offset lag, time lag, eviction risk, stall), its
//! status window advanced, and the group's [`GroupReport`] aggregated from them. `plan_reads`
//! walks the same runs (`topic_runs`) to find the timestamps this walk will need.

use std::mem;
use std::sync::Arc;
use std::time::Duration;

use super::cluster::{Event, TopicHeads, TopicWindows};
use super::history::HeadHistory;
use super::risk::{evicted_messages, eviction_risk};
use super::settings::AnalyticsSettings;
use super::skew::commit_stall_seconds;
use super::status::{
    group_status, is_inactive, partition_status, PartitionFacts, Status, StatusRules,
};
use super::timestamps::{first_readable, oldest_unread, OldestUnread, TimestampCache};
use super::window::{Observation, PartitionWindow};
use crate::model::lag::group_partition_lag;
use crate::model::report::{Figures, GroupPartitionReport, GroupReport, GroupTopicReport};
use crate::model::snapshot::{
    CommittedOffset, GroupSnapshot, GroupType, PartitionOffsets, TopicSnapshot,
};

/// The borrowed state and constants of one `finish`.
pub(super) struct GroupWalk<'a> {
    pub(super) settings: &'a AnalyticsSettings,
    pub(super) rules: &'a StatusRules,
    pub(super) heads: &'a [TopicHeads],
    pub(super) timestamps: &'a mut TimestampCache,
    pub(super) poll: u64,
    pub(super) now_ms: i64,
    pub(super) observed_ms: i64,
    /// `deleting_retention` of each snapshot topic, by index.
    pub(super) retentions: Vec<Option<Duration>>,
    /// One group-topic's new windows while its old ones are still read; kept across group-topics
    /// (and polls) so that no group-topic allocates for it.
    pub(super) windows: Vec<PartitionWindow>,
    pub(super) events: Vec<Event>,
}

impl GroupWalk<'_> {
    pub(super) fn group(
        &mut self,
        group: &GroupSnapshot,
        topics: &[TopicSnapshot],
        mut previous: Vec<TopicWindows>,
    ) -> (GroupReport, Vec<TopicWindows>) {
        let mut out_topics = Vec::with_capacity(previous.len());
        let mut windows = Vec::with_capacity(previous.len());
        let mut status = Status::Ok;
        let mut uncommitted = 0u32;
        // The least time since any partition's C last changed, for rule 1 (`inactive`).
        let mut frozen_seconds: Option<f64> = None;
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
            let (report, state, topic_status, topic_frozen) =
                self.topic(group, ti, topic, commits, old);
            // Partitions whose offsets were not read this poll count as uncommitted too.
            let committed = report.partitions.len();
            uncommitted +=
                u32::try_from(topic.partitions.len().saturating_sub(committed)).unwrap_or(u32::MAX);
            if report.partitions.is_empty() {
                continue;
            }
            status = group_status([status, topic_status]);
            frozen_seconds = Some(frozen_seconds.map_or(topic_frozen, |f| f.min(topic_frozen)));
            out_topics.push(report);
            windows.push(state);
        }
        if is_inactive(group.members, frozen_seconds, self.rules) {
            status = Status::Inactive;
        }
        let report = GroupReport {
            group_type: group.group_type,
            ..GroupReport::from_topics(
                group.id.clone(),
                group.state,
                group.members,
                uncommitted,
                status,
                out_topics,
            )
        };
        (report, windows)
    }

    /// `ti` is the index of `topic` in the snapshot. Also returns the least time, in seconds,
    /// since the C of one of its partitions last changed (infinite without partitions).
    fn topic(
        &mut self,
        group: &GroupSnapshot,
        ti: usize,
        topic: &TopicSnapshot,
        commits: &[CommittedOffset],
        previous: Option<TopicWindows>,
    ) -> (GroupTopicReport, TopicWindows, Status, f64) {
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
        let mut frozen_seconds = f64::INFINITY;
        // A share group's C is its share-partition start offset: no commit, so no commit stall.
        let share = group.group_type == GroupType::Share;
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
            let from = first_readable(
                &topic.name,
                commit.partition,
                commit.offset.max(offsets.earliest),
                |r| timestamps.take_skip(r, poll),
            );
            let lag_seconds = match oldest_unread(&topic.name, offsets, from, history, |r| {
                timestamps.take(r, poll)
            }) {
                OldestUnread::CaughtUp => Some(0.0),
                OldestUnread::AppendedMs(ms) | OldestUnread::Provisional { ms, .. } => {
                    Some(((self.now_ms as f64 - ms) / 1000.0).max(0.0))
                }
                OldestUnread::Unknown(_) => None,
            };
            let lag_messages = group_partition_lag(commit, offsets);
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
                lag_seconds,
                share,
            };
            status = group_status([status, partition_status(&facts, self.rules)]);
            frozen_seconds = frozen_seconds.min(window.committed_frozen_seconds(self.now_ms));
            self.windows.push(window);
            partitions.push(GroupPartitionReport {
                partition: commit.partition,
                committed_offset: commit.offset,
                figures: Figures {
                    lag_messages,
                    lag_seconds,
                    eviction_seconds: risk.eviction_seconds,
                    retention_usage_ratio: risk.retention_usage_ratio,
                    evicted_messages: evicted,
                    commit_stall_seconds: (!share).then_some(stall),
                },
            });
        }
        // Into the old allocation: the same partitions poll after poll, so it fits.
        state.partitions.clear();
        state.partitions.extend_from_slice(&self.windows);
        let report = GroupTopicReport::from_partitions(
            topic.name.clone(),
            (state.rewinds_total, state.rewound_messages_total),
            partitions,
        );
        (report, state, status, frozen_seconds)
    }
}

/// Topic names are shared `Arc`s across one snapshot, so comparing pointers usually settles it
/// without reading the strings.
pub(super) fn same_name(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// The group's commits one topic at a time, with the topic's index in `topics`, for topics
/// present in the snapshot (commits on vanished or unselected topics are skipped). Commits are sorted by (topic, partition) and `topics` by name, so a run's topic is
/// usually the one after the previous run's.
pub(super) fn topic_runs<'a>(
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
pub(super) fn find_partition(
    topic: &TopicSnapshot,
    partition: i32,
) -> Option<(usize, PartitionOffsets)> {
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
pub(super) fn find_topic_heads<'a>(
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
pub(super) fn find_history(heads: &TopicHeads, pi: usize, partition: i32) -> Option<&HeadHistory> {
    if let Some((_, h)) = heads.partitions.get(pi).filter(|(p, _)| *p == partition) {
        return Some(h);
    }
    let i = heads
        .partitions
        .binary_search_by_key(&partition, |(p, _)| *p)
        .ok()?;
    heads.partitions.get(i).map(|(_, h)| h)
}
