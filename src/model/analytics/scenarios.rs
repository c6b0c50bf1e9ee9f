//! Multi-poll scenarios through [`ClusterAnalytics`]: the two phases, state across polls, and
//! every status rule driven by its window. Times are seconds after a fixed base instant; the
//! snapshot is taken at `now` unless a case says otherwise.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::model::snapshot::{
    CommittedOffset, GroupSnapshot, GroupState, PartitionOffsets, Snapshot, TopicConfig,
    TopicSnapshot,
};

const BASE_SECS: u64 = 1_700_000_000;
const HOUR: i64 = 3600;

fn at(secs: i64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(BASE_SECS);
    if secs >= 0 {
        base + Duration::from_secs(secs.unsigned_abs())
    } else {
        base - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Epoch milliseconds of scenario second `secs`: what a record read returns.
fn ms(secs: i64) -> i64 {
    (BASE_SECS as i64 + secs) * 1000
}

fn deleting(retention_secs: i64) -> TopicConfig {
    TopicConfig {
        retention_ms: Some(retention_secs * 1000),
        retention_bytes: None,
        cleanup_policy: Some("delete".into()),
    }
}

fn compacted() -> TopicConfig {
    TopicConfig {
        retention_ms: Some(HOUR * 1000),
        retention_bytes: None,
        cleanup_policy: Some("compact".into()),
    }
}

/// `partitions`: (partition, L, H).
fn topic(name: &str, config: TopicConfig, partitions: &[(i32, i64, i64)]) -> TopicSnapshot {
    TopicSnapshot {
        name: Arc::from(name),
        partitions: partitions
            .iter()
            .map(|&(partition, earliest, latest)| PartitionOffsets {
                partition,
                earliest,
                latest,
            })
            .collect(),
        config,
    }
}

/// `commits`: (topic, partition, C), sorted.
fn group(id: &str, members: Option<u32>, commits: &[(&str, i32, i64)]) -> GroupSnapshot {
    GroupSnapshot {
        id: id.into(),
        state: GroupState::Stable,
        members,
        offsets: commits
            .iter()
            .map(|&(topic, partition, offset)| CommittedOffset {
                topic: Arc::from(topic),
                partition,
                offset,
            })
            .collect(),
    }
}

fn snapshot(taken_secs: i64, topics: Vec<TopicSnapshot>, groups: Vec<GroupSnapshot>) -> Snapshot {
    Snapshot {
        taken_at: at(taken_secs),
        topics,
        groups,
    }
}

/// Both phases of one poll at `now_secs`; `record_ms` answers the reads.
fn poll(
    analytics: &mut ClusterAnalytics,
    snapshot: &Snapshot,
    now_secs: i64,
    record_ms: impl Fn(&TimestampRead) -> Option<i64>,
) -> (ReadPlan, Analytics) {
    let plan = analytics.plan_reads(snapshot);
    let reads: Vec<(TimestampRead, Option<i64>)> = plan
        .reads
        .iter()
        .map(|r| (r.clone(), record_ms(r)))
        .collect();
    let out = analytics.finish(snapshot, &reads, at(now_secs));
    (plan, out)
}

fn no_reads(_: &TimestampRead) -> Option<i64> {
    panic!("no read expected")
}

fn read(topic: &str, partition: i32, offset: i64) -> TimestampRead {
    TimestampRead {
        topic: Arc::from(topic),
        partition,
        offset,
    }
}

fn settings() -> AnalyticsSettings {
    AnalyticsSettings::default()
}

fn close(got: Option<f64>, want: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() < 1e-6)
}

// ---- time lag -------------------------------------------------------------------------------

#[test]
fn steady_rate_interpolates_the_exact_middle() {
    // 10 msg/s: H = 0 at 0 s, 300 at 30 s, 600 at 60 s.
    let mut a = ClusterAnalytics::new(settings());
    let orders = |h| vec![topic("orders", TopicConfig::default(), &[(0, 0, h)])];
    // (t, H, C, expected time lag s, why)
    #[rustfmt::skip]
    let cases = [
        (0, 0, 0, 0.0, "1: empty partition, C = H: caught up, nothing to read"),
        (30, 300, 0, 30.0, "2: record 0 was appended when the head passed 0, at 0 s"),
        (60, 600, 150, 45.0, "3: record 150 appended at 15 s (middle of 0..300 over 0..30 s)"),
        (90, 900, 900, 0.0, "4: C = H"),
    ];
    for (t, h, c, want, why) in cases {
        let s = snapshot(t, orders(h), vec![group("g", Some(1), &[("orders", 0, c)])]);
        let (plan, out) = poll(&mut a, &s, t, no_reads);
        assert!(plan.reads.is_empty(), "{why}");
        assert_eq!(
            out.groups[0].topics[0].partitions[0].lag_seconds,
            Some(want),
            "{why}"
        );
    }
}

#[test]
fn bursts_and_idle_partitions_interpolate_inside_their_gaps() {
    // H: 100 idle until 30 s, a burst of 1000 between 30 s and 60 s, idle again.
    let mut a = ClusterAnalytics::new(settings());
    let heads = [(0, 100), (30, 100), (60, 1_100), (90, 1_100), (120, 1_100)];
    for (t, h) in heads {
        let s = snapshot(
            t,
            vec![topic("t", TopicConfig::default(), &[(0, 0, h)])],
            vec![],
        );
        poll(&mut a, &s, t, no_reads);
    }
    // Idle runs keep their first and last samples only: (100, 0) (100, 30) (1100, 60) (1100, 120).
    assert_eq!(a.state_counts().0, 1);
    // (C, expected time lag at 150 s, why)
    #[rustfmt::skip]
    let cases = [
        (600, Some(150.0 - 45.0), "1: middle of the burst: 30 s + 500/1000 × 30 s"),
        (100, Some(150.0 - 30.0), "2: idle until 30 s, so record 100 came after 30 s"),
        (1_100, Some(0.0), "3: C = H on an idle partition: caught up, no division by zero"),
    ];
    for (c, want, why) in cases {
        let s = snapshot(
            150,
            vec![topic("t", TopicConfig::default(), &[(0, 0, 1_100)])],
            vec![group("g", Some(1), &[("t", 0, c)])],
        );
        let (plan, out) = poll(&mut a, &s, 150, no_reads);
        assert!(plan.reads.is_empty(), "{why}");
        assert_eq!(out.groups[0].lag_seconds, want, "{why}");
    }
    // The head finally moves at 180 s: record 1100 was appended between the last idle sample
    // (150 s) and 180 s; interpolation puts it at 150 s.
    let s = snapshot(
        180,
        vec![topic("t", TopicConfig::default(), &[(0, 0, 1_101)])],
        vec![group("g", Some(1), &[("t", 0, 1_100)])],
    );
    let (_, out) = poll(&mut a, &s, 180, no_reads);
    assert_eq!(out.groups[0].lag_seconds, Some(30.0));
}

#[test]
fn offsets_before_the_history_are_read_once_then_cached() {
    let mut a = ClusterAnalytics::new(settings());
    let s0 = snapshot(
        0,
        vec![topic("t", TopicConfig::default(), &[(0, 0, 1_000)])],
        vec![group("g", Some(1), &[("t", 0, 400)])],
    );
    // Start-up: one sample (H = 1000), C = 400 lies before it. The record was written 100 s ago.
    let (plan, out) = poll(&mut a, &s0, 0, |_| Some(ms(-100)));
    assert_eq!(plan.reads, vec![read("t", 0, 400)]);
    assert_eq!(plan.pending, 0);
    assert_eq!(out.groups[0].lag_seconds, Some(100.0));
    assert_eq!(a.state_counts().2, 1, "the read is cached");
    // Next poll, same C: served from the cache, no read; lag grew by the 30 s that passed.
    let s1 = snapshot(
        30,
        vec![topic("t", TopicConfig::default(), &[(0, 0, 1_300)])],
        vec![group("g", Some(1), &[("t", 0, 400)])],
    );
    let (plan, out) = poll(&mut a, &s1, 30, no_reads);
    assert!(plan.reads.is_empty());
    assert_eq!(out.groups[0].lag_seconds, Some(130.0));
    // C moves inside the history (≥ 1000): interpolation; the unused cache entry is dropped.
    let s2 = snapshot(
        60,
        vec![topic("t", TopicConfig::default(), &[(0, 0, 1_600)])],
        vec![group("g", Some(1), &[("t", 0, 1_150)])],
    );
    let (plan, out) = poll(&mut a, &s2, 60, no_reads);
    assert!(plan.reads.is_empty());
    // 1150 is the middle of 1000..1300 over 0..30 s: appended at 15 s.
    assert_eq!(out.groups[0].lag_seconds, Some(45.0));
    assert_eq!(a.state_counts().2, 0);
}

#[test]
fn read_budget_leaves_partitions_unknown_and_counts_pending() {
    let mut a = ClusterAnalytics::new(AnalyticsSettings {
        max_reads_per_poll: 2,
        ..settings()
    });
    let topics = |t: i64| {
        vec![topic(
            "t",
            TopicConfig::default(),
            &[(0, 0, 1_000 + t), (1, 0, 1_000 + t), (2, 0, 1_000 + t)],
        )]
    };
    let groups = || {
        vec![group(
            "g",
            Some(1),
            &[("t", 0, 10), ("t", 1, 20), ("t", 2, 30)],
        )]
    };
    // Record at offset o was written o seconds before the base instant minus 100.
    let record = |r: &TimestampRead| Some(ms(-100 - r.offset));
    let (plan, out) = poll(&mut a, &snapshot(0, topics(0), groups()), 0, record);
    assert_eq!(plan.reads, vec![read("t", 0, 10), read("t", 1, 20)]);
    assert_eq!(plan.pending, 1);
    assert_eq!(out.timestamp_reads_pending, 1);
    let lags: Vec<Option<f64>> = out.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.lag_seconds)
        .collect();
    assert_eq!(
        lags,
        vec![Some(110.0), Some(120.0), None],
        "partition 2 is absent this poll"
    );
    // Aggregates cover the known partitions only.
    assert_eq!(out.groups[0].lag_seconds, Some(120.0));
    assert_eq!(out.groups[0].topics[0].lag_skew_seconds, Some(10.0));
    // Next poll: the first two are cached, the third is read; nothing pending.
    let (plan, out) = poll(&mut a, &snapshot(30, topics(10), groups()), 30, record);
    assert_eq!(plan.reads, vec![read("t", 2, 30)]);
    assert_eq!(out.timestamp_reads_pending, 0);
    assert_eq!(out.groups[0].lag_seconds, Some(160.0));
}

#[test]
fn committed_below_the_low_watermark_reads_at_the_low_watermark() {
    let mut a = ClusterAnalytics::new(settings());
    let s = snapshot(
        0,
        vec![topic("t", deleting(HOUR), &[(0, 80, 100)])],
        vec![group("g", Some(1), &[("t", 0, 50)])],
    );
    // The oldest record the group can still read is at L = 80, written 20 min ago.
    let (plan, out) = poll(&mut a, &s, 0, |_| Some(ms(-1_200)));
    assert_eq!(plan.reads, vec![read("t", 0, 80)]);
    let p = out.groups[0].topics[0].partitions[0];
    assert_eq!(p.lag_seconds, Some(1_200.0));
    assert_eq!(p.evicted_messages, 30);
    assert_eq!(
        p.eviction_seconds,
        Some(0.0),
        "already evicting: clamped at 0"
    );
    assert!(close(p.retention_usage_ratio, 1_200.0 / 3_600.0));
}

// ---- eviction -------------------------------------------------------------------------------

#[test]
fn eviction_countdown_and_retention_usage() {
    let mut a = ClusterAnalytics::new(settings());
    let s = snapshot(
        0,
        vec![
            topic("compact", compacted(), &[(0, 0, 100)]),
            topic("hourly", deleting(HOUR), &[(0, 0, 100)]),
        ],
        vec![group(
            "g",
            Some(1),
            &[("compact", 0, 10), ("hourly", 0, 10)],
        )],
    );
    // Both records at offset 10 are 50 min old.
    let (_, out) = poll(&mut a, &s, 0, |_| Some(ms(-3_000)));
    let g = &out.groups[0];
    let (compact, hourly) = (&g.topics[0], &g.topics[1]);
    // R = 1h, record 50 min old: 10 min to eviction, 83% of the retention used.
    assert_eq!(hourly.partitions[0].eviction_seconds, Some(600.0));
    assert!(close(
        hourly.partitions[0].retention_usage_ratio,
        3_000.0 / 3_600.0
    ));
    // A compacted topic deletes nothing by time: no countdown, no usage; time lag still known.
    assert_eq!(compact.partitions[0].eviction_seconds, None);
    assert_eq!(compact.partitions[0].retention_usage_ratio, None);
    assert_eq!(compact.partitions[0].lag_seconds, Some(3_000.0));
    assert_eq!(g.eviction_seconds, Some(600.0));
    // 600 s < min(1h, R/4 = 15 min): evicting.
    assert_eq!(g.status, Status::Evicting);
}

#[test]
fn evicted_messages_log_one_event_per_episode() {
    let mut a = ClusterAnalytics::new(settings());
    let record = |_: &TimestampRead| Some(ms(-60));
    // (t, L, C, evicted, event expected, status, why)
    #[rustfmt::skip]
    let cases = [
        (0, 0, 50, 0, false, Status::Ok, "1: C ≥ L"),
        (30, 80, 50, 30, true, Status::Evicting, "2: retention deleted 50..80 unread: event"),
        (60, 90, 50, 40, false, Status::Evicting, "3: more lost, same episode: no second event"),
        (90, 90, 95, 0, false, Status::Ok, "4: group reset past L: episode over"),
        (120, 120, 95, 25, true, Status::Evicting, "5: losing records again: new event"),
    ];
    for (t, l, c, evicted, event, status, why) in cases {
        let s = snapshot(
            t,
            vec![topic("t", deleting(HOUR), &[(0, l, 200)])],
            vec![group("g", Some(1), &[("t", 0, c)])],
        );
        let (_, out) = poll(&mut a, &s, t, record);
        assert_eq!(out.groups[0].evicted_messages, evicted, "{why}");
        assert_eq!(out.groups[0].status, status, "{why}");
        let want: Vec<Event> = event
            .then(|| Event::MessagesEvicted {
                group: "g".into(),
                topic: Arc::from("t"),
                partition: 0,
                committed: c,
                low_watermark: l,
                evicted,
            })
            .into_iter()
            .collect();
        assert_eq!(out.events, want, "{why}");
    }
}

#[test]
fn evicting_uses_min_of_eviction_warning_and_a_quarter_of_retention() {
    let mut a = ClusterAnalytics::new(settings());
    let week = 7 * 24 * HOUR;
    let s = snapshot(
        0,
        vec![
            topic("hourly", deleting(HOUR), &[(0, 0, 100), (1, 0, 100)]),
            topic("weekly", deleting(week), &[(0, 0, 100), (1, 0, 100)]),
        ],
        vec![
            group("a", Some(1), &[("hourly", 0, 10)]),
            group("b", Some(1), &[("hourly", 1, 10)]),
            group("c", Some(1), &[("weekly", 0, 10)]),
            group("d", Some(1), &[("weekly", 1, 10)]),
        ],
    );
    // Seconds left to eviction per (topic, partition): the record is R − left seconds old.
    let left = |r: &TimestampRead| match (r.topic.as_ref(), r.partition) {
        ("hourly", 0) => (HOUR, 1_000),
        ("hourly", 1) => (HOUR, 800),
        ("weekly", 0) => (week, 4_000),
        _ => (week, 3_000),
    };
    let (_, out) = poll(&mut a, &s, 0, |r| {
        let (retention, left) = left(r);
        Some(ms(left - retention))
    });
    let got: Vec<(Option<f64>, Status)> = out
        .groups
        .iter()
        .map(|g| (g.eviction_seconds, g.status))
        .collect();
    let want = vec![
        // a: R = 1h, 1000 s left: under eviction_warning (1h) but over R/4 (900 s): normal lag.
        (Some(1_000.0), Status::Ok),
        // b: R = 1h, 800 s left < 900 s.
        (Some(800.0), Status::Evicting),
        // c: R = 7d, 4000 s left > min(1h, 42h).
        (Some(4_000.0), Status::Ok),
        // d: R = 7d, 3000 s left < 1h.
        (Some(3_000.0), Status::Evicting),
    ];
    assert_eq!(got, want);
}

// ---- commit skew ----------------------------------------------------------------------------

#[test]
fn partition_skew_is_max_minus_min_time_lag() {
    let mut a = ClusterAnalytics::new(settings());
    let parts = |h| [(0, 0, h), (1, 0, h), (2, 0, h)];
    let s0 = snapshot(
        0,
        vec![topic("t", TopicConfig::default(), &parts(0))],
        vec![],
    );
    poll(&mut a, &s0, 0, no_reads);
    // 10 msg/s on every partition; at 100 s: p0 at 900 (appended 90 s → lag 10), p1 at 500
    // (50 s → lag 50), p2 caught up (lag 0).
    let s1 = snapshot(
        100,
        vec![topic("t", TopicConfig::default(), &parts(1_000))],
        vec![group(
            "g",
            Some(1),
            &[("t", 0, 900), ("t", 1, 500), ("t", 2, 1_000)],
        )],
    );
    let (_, out) = poll(&mut a, &s1, 100, no_reads);
    let t = &out.groups[0].topics[0];
    let lags: Vec<Option<f64>> = t.partitions.iter().map(|p| p.lag_seconds).collect();
    assert_eq!(lags, vec![Some(10.0), Some(50.0), Some(0.0)]);
    assert_eq!(t.lag_skew_seconds, Some(50.0));
    assert_eq!(t.lag_seconds, Some(50.0));
}

#[test]
fn rewinds_are_counted_and_logged() {
    let mut a = ClusterAnalytics::new(settings());
    // (t, C, expected rewinds, rewound messages, event (from, to), why)
    #[rustfmt::skip]
    let cases = [
        (0, 100, 0, 0, None, "1: first observation"),
        (30, 40, 1, 60, Some((100, 40)), "2: reset back 60"),
        (60, 50, 1, 60, None, "3: advancing again"),
        (90, 10, 2, 100, Some((50, 10)), "4: back 40 more"),
        (120, 10, 2, 100, None, "5: unchanged"),
    ];
    for (t, c, rewinds, rewound, event, why) in cases {
        let s = snapshot(
            t,
            vec![topic("t", TopicConfig::default(), &[(0, 0, 100)])],
            vec![group("g", Some(1), &[("t", 0, c)])],
        );
        let (_, out) = poll(&mut a, &s, t, |_| Some(ms(-1)));
        let topic = &out.groups[0].topics[0];
        assert_eq!(
            (topic.rewinds_total, topic.rewound_messages_total),
            (rewinds, rewound),
            "{why}"
        );
        let want: Vec<Event> = event
            .map(|(from, to)| Event::Rewind {
                group: "g".into(),
                topic: Arc::from("t"),
                partition: 0,
                from,
                to,
            })
            .into_iter()
            .collect();
        assert_eq!(out.events, want, "{why}");
    }
}

#[test]
fn commit_stall_counts_only_while_behind() {
    let mut a = ClusterAnalytics::new(settings());
    // (t, H, C, expected stall s, why)
    #[rustfmt::skip]
    let cases = [
        (0, 100, 100, 0.0, "1: caught up"),
        (30, 100, 100, 0.0, "2: caught up and idle is not stalled"),
        (60, 150, 100, 0.0, "3: behind since 60 s"),
        (90, 200, 100, 30.0, "4: C has not moved since it fell behind"),
        (120, 250, 120, 0.0, "5: C advanced"),
        (180, 300, 120, 60.0, "6: a minute without progress"),
    ];
    for (t, h, c, want, why) in cases {
        let s = snapshot(
            t,
            vec![topic("t", TopicConfig::default(), &[(0, 0, h)])],
            vec![group("g", Some(1), &[("t", 0, c)])],
        );
        let (_, out) = poll(&mut a, &s, t, |_| Some(ms(0)));
        assert_eq!(out.groups[0].commit_stall_seconds, want, "{why}");
    }
}

// ---- status, window-driven ------------------------------------------------------------------

/// Runs `polls` polls 30 s apart of one group on one partition (no retention); `at_poll(k)`
/// gives (H, C, members) of poll k. Returns the statuses.
fn statuses(polls: i64, at_poll: impl Fn(i64) -> (i64, i64, Option<u32>)) -> Vec<Status> {
    let mut a = ClusterAnalytics::new(settings());
    (0..polls)
        .map(|k| {
            let (h, c, members) = at_poll(k);
            let t = 30 * k;
            let s = snapshot(
                t,
                vec![topic("t", TopicConfig::default(), &[(0, 0, h)])],
                vec![group("g", members, &[("t", 0, c)])],
            );
            let (_, out) = poll(&mut a, &s, t, |_| Some(ms(-600)));
            out.groups[0].status
        })
        .collect()
}

/// `runs` of (status, count) flattened.
fn expect(runs: &[(Status, usize)]) -> Vec<Status> {
    runs.iter()
        .flat_map(|&(s, n)| std::iter::repeat_n(s, n))
        .collect()
}

#[test]
fn status_stall_then_stop_after_stop_after() {
    // Members present, behind, C frozen. W = 10 is full at poll 9: stall. stall_for reaches
    // 15 min (900 s) at poll 30 (30 × 30 s): stop.
    let got = statuses(32, |_| (1_000, 500, Some(2)));
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 9), (Stall, 21), (Stop, 2)]));
}

#[test]
fn status_memberless_group_with_frozen_commits_stops_after_a_full_window() {
    // No members at any poll, C frozen: stop once W is full (poll 9), long before stop_after.
    // Before that: not stall (no members now), nothing else matches: ok.
    let got = statuses(11, |_| (1_000, 500, Some(0)));
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 9), (Stop, 2)]));
}

#[test]
fn status_memberless_group_whose_commits_advance_is_not_stopped() {
    // assign() consumers: no members, C advances 10 a poll, lag steady at 100 — for longer than
    // stop_after (40 polls = 20 min): ok throughout.
    let got = statuses(40, |k| (1_000 + 10 * k, 900 + 10 * k, Some(0)));
    assert_eq!(got, expect(&[(Status::Ok, 40)]));
}

#[test]
fn status_warn_when_consuming_but_falling_behind() {
    // H +10 a poll, C +5 a poll: lag 500, 505, ... rises across W while C advances: warn from
    // poll 9, when W is full.
    let got = statuses(12, |k| (1_000 + 10 * k, 500 + 5 * k, Some(1)));
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 9), (Warn, 3)]));
}

#[test]
fn status_rewind_lasts_while_the_decrease_is_inside_the_window() {
    // C advances with H (lag 100) but goes back 100 at poll 3, then keeps pace again. The
    // decrease (polls 2 → 3) is inside W for polls 3..=11; at poll 12 poll 2 has left W.
    let got = statuses(14, |k| {
        let c = if k < 3 { 900 + 10 * k } else { 800 + 10 * k };
        (1_000 + 10 * k, c, Some(1))
    });
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 3), (Rewind, 9), (Ok, 2)]));
}

// ---- shape and state lifetime ---------------------------------------------------------------

#[test]
fn output_follows_the_snapshot_and_skips_unknown_topics_and_partitions() {
    let mut a = ClusterAnalytics::new(settings());
    let s = snapshot(
        0,
        vec![
            topic("a", TopicConfig::default(), &[(0, 0, 10), (1, 0, 10)]),
            topic("b", TopicConfig::default(), &[(0, 0, 10)]),
        ],
        vec![
            group("g1", Some(1), &[("a", 0, 10), ("a", 9, 3), ("gone", 0, 1)]),
            group("g2", None, &[("a", 1, 10), ("b", 0, 10)]),
            group("g3", Some(1), &[("gone", 0, 1)]),
        ],
    );
    let (_, out) = poll(&mut a, &s, 0, no_reads);
    type Shape<'a> = Vec<(&'a str, Vec<(&'a str, Vec<i32>)>)>;
    let shape: Shape = out
        .groups
        .iter()
        .map(|g| {
            let topics = g
                .topics
                .iter()
                .map(|t| {
                    (
                        t.topic.as_ref(),
                        t.partitions.iter().map(|p| p.partition).collect(),
                    )
                })
                .collect();
            (g.id.as_str(), topics)
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("g1", vec![("a", vec![0])]),
            ("g2", vec![("a", vec![1]), ("b", vec![0])]),
            ("g3", vec![]),
        ]
    );
    // A group without any known partition: ok, nothing known.
    assert_eq!(out.groups[2].status, Status::Ok);
    assert_eq!(out.groups[2].lag_seconds, None);
    assert_eq!(a.state_counts(), (3, 3, 0));
}

#[test]
fn vanished_groups_and_partitions_leave_the_state() {
    let mut a = ClusterAnalytics::new(settings());
    let topics = |n: i32| {
        let parts: Vec<(i32, i64, i64)> = (0..n).map(|p| (p, 0, 100)).collect();
        vec![topic("t", TopicConfig::default(), &parts)]
    };
    let g = |c| group("g", Some(1), &[("t", 0, c)]);
    let record = |_: &TimestampRead| Some(ms(-10));
    poll(&mut a, &snapshot(0, topics(2), vec![g(90)]), 0, record);
    assert_eq!(a.state_counts(), (2, 1, 1));
    // Partition 1 and the group are gone: their history and window are dropped.
    poll(&mut a, &snapshot(30, topics(1), vec![]), 30, record);
    assert_eq!(a.state_counts(), (1, 0, 0));
    // The group is back with a lower C: its window starts over, so that is no rewind.
    let (_, out) = poll(&mut a, &snapshot(60, topics(1), vec![g(50)]), 60, record);
    assert!(out.events.is_empty());
    assert_eq!(out.groups[0].topics[0].rewinds_total, 0);
}

#[test]
fn a_re_created_topic_starts_a_new_history() {
    let mut a = ClusterAnalytics::new(settings());
    let s = |t, h, c| {
        snapshot(
            t,
            vec![topic("t", TopicConfig::default(), &[(0, 0, h)])],
            vec![group("g", Some(1), &[("t", 0, c)])],
        )
    };
    poll(&mut a, &s(0, 1_000, 1_000), 0, no_reads);
    poll(&mut a, &s(30, 2_000, 2_000), 30, no_reads);
    // The head went back to 10: old samples describe other records. C = 5 must be read.
    let (plan, out) = poll(&mut a, &s(60, 10, 5), 60, |_| Some(ms(50)));
    assert_eq!(plan.reads, vec![read("t", 0, 5)]);
    assert_eq!(out.groups[0].lag_seconds, Some(10.0));
}
