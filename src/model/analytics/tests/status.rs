//! The status rules driven poll by poll through their windows.

use super::*;

/// Runs `polls` polls 30 s apart of one group on one partition (no retention); `at_poll(k)`
/// gives (H, C, members) of poll k. Every record read is 10 minutes old, past
/// `status.min_time_lag`. Returns the statuses.
fn statuses(polls: i64, at_poll: impl Fn(i64) -> (i64, i64, Option<u32>)) -> Vec<Status> {
    driven(settings(), polls, 30, at_poll, |_| Some(ms(-600)))
}

/// `statuses` with its settings, poll spacing `every` (seconds) and record timestamps chosen.
fn driven(
    settings: AnalyticsSettings,
    polls: i64,
    every: i64,
    at_poll: impl Fn(i64) -> (i64, i64, Option<u32>),
    record_ms: impl Fn(&TimestampRead) -> Option<i64>,
) -> Vec<Status> {
    let mut a = ClusterAnalytics::new(settings);
    (0..polls)
        .map(|k| {
            let (h, c, members) = at_poll(k);
            let t = every * k;
            let s = snapshot(
                t,
                vec![topic("t", TopicConfig::default(), &[(0, 0, h)])],
                vec![group("g", members, &[("t", 0, c)])],
            );
            let (_, out) = poll(&mut a, &s, t, &record_ms);
            out.report.groups[0].status
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

#[test]
fn status_healthy_high_throughput_consumer_is_never_warn() {
    // 1,000 records/s; record o was written at second (o − 1,000) / 1,000, so H = 1,000 + 30,000
    // k at poll k. The consumer is always a fraction of a second behind, but the lag in messages
    // creeps up, 100 + k, and C advances at every poll: Burrow's rule (and this one before
    // `min_time_lag`) says `warn` from poll 9.
    let at_poll = |k: i64| {
        let h = 1_000 + 30_000 * k;
        (h, h - 100 - k, Some(3))
    };
    let written = |r: &TimestampRead| Some(ms(0) + (r.offset - 1_000));
    let got = driven(settings(), 12, 30, at_poll, written);
    assert_eq!(got, expect(&[(Status::Ok, 12)]));
    let ungated = AnalyticsSettings {
        min_time_lag: Duration::ZERO,
        ..settings()
    };
    let got = driven(ungated, 12, 30, at_poll, written);
    use Status::*;
    assert_eq!(
        got,
        expect(&[(Ok, 9), (Warn, 3)]),
        "the gate is what keeps it ok"
    );
}

/// One poll of an idle partition whose last offset is a transaction's commit marker: H = 1,001,
/// C = 1,000, and a read at 1,000 finds no record before the head (as `kafka/` reports it).
fn idle_with_marker(settings: AnalyticsSettings, polls: i64) -> Vec<Status> {
    let mut a = ClusterAnalytics::new(settings);
    (0..polls)
        .map(|k| {
            let t = 30 * k;
            let s = snapshot(
                t,
                vec![topic("t", TopicConfig::default(), &[(0, 0, 1_001)])],
                vec![group("g", Some(1), &[("t", 0, 1_000)])],
            );
            let plan = a.plan_reads(&s);
            a.no_record_before_head(&s, &plan.reads);
            let out = a.finish(&s, &[], at(t));
            assert_eq!(out.report.groups[0].figures.lag_messages, 1);
            out.report.groups[0].status
        })
        .collect()
}

#[test]
fn status_idle_topic_is_never_stall() {
    // Nothing to read (time lag 0), one message of lag, C frozen, a member present: for 40
    // polls (20 minutes, past stop_after) neither `stall` nor `stop`.
    assert_eq!(
        idle_with_marker(settings(), 40),
        expect(&[(Status::Ok, 40)])
    );
    // Without the gate the marker alone made it stall at the full window, then stop.
    let ungated = AnalyticsSettings {
        min_time_lag: Duration::ZERO,
        ..settings()
    };
    use Status::*;
    assert_eq!(
        idle_with_marker(ungated, 32),
        expect(&[(Ok, 9), (Stall, 21), (Stop, 2)])
    );
}

#[test]
fn status_abandoned_group_turns_inactive_and_stays_so_when_records_are_evicted() {
    // Polls an hour apart; no members; C frozen at 500 on a 2-day topic written 1,000 records
    // an hour. Stop from the second poll (an hour of stall_for is past stop_after), inactive
    // after 24 h of frozen commits (poll 24), still
    // inactive once retention deletes its unread records (L = 600 > C from poll 30), until a
    // member joins at poll 32: then those evicted records make it `evicting`.
    let settings = settings();
    let mut a = ClusterAnalytics::new(settings);
    let mut got = Vec::new();
    let mut evicted = Vec::new();
    for k in 0..34 {
        let t = HOUR * k;
        let low = if k >= 30 { 600 } else { 0 };
        let members = if k >= 32 { Some(1) } else { Some(0) };
        let s = snapshot(
            t,
            vec![topic(
                "t",
                deleting(2 * 24 * HOUR),
                &[(0, low, 1_000 + 1_000 * k)],
            )],
            vec![group("g", members, &[("t", 0, 500)])],
        );
        let (_, out) = poll(&mut a, &s, t, |_| Some(ms(-600)));
        got.push(out.report.groups[0].status);
        evicted.push(out.report.groups[0].figures.evicted_messages);
    }
    use Status::*;
    assert_eq!(
        got,
        expect(&[(Ok, 1), (Stop, 23), (Inactive, 8), (Evicting, 2)])
    );
    assert_eq!(evicted[29], 0);
    assert_eq!(evicted[30], 100, "still measured while inactive");
}
