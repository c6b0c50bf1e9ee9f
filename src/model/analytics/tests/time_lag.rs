//! Time lag across polls: interpolation from the head history, exact reads and their cache, the
//! read budget.

use super::*;

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
            out.report.groups[0].topics[0].partitions[0]
                .figures
                .lag_seconds,
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
        assert_eq!(out.report.groups[0].figures.lag_seconds, want, "{why}");
    }
    // The head finally moves at 180 s: record 1100 was appended between the last idle sample
    // (150 s) and 180 s; interpolation puts it at 150 s.
    let s = snapshot(
        180,
        vec![topic("t", TopicConfig::default(), &[(0, 0, 1_101)])],
        vec![group("g", Some(1), &[("t", 0, 1_100)])],
    );
    let (_, out) = poll(&mut a, &s, 180, no_reads);
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(30.0));
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
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(100.0));
    assert_eq!(a.state_counts().2, 1, "the read is cached");
    // Next poll, same C: served from the cache, no read; lag grew by the 30 s that passed.
    let s1 = snapshot(
        30,
        vec![topic("t", TopicConfig::default(), &[(0, 0, 1_300)])],
        vec![group("g", Some(1), &[("t", 0, 400)])],
    );
    let (plan, out) = poll(&mut a, &s1, 30, no_reads);
    assert!(plan.reads.is_empty());
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(130.0));
    // C moves inside the history (≥ 1000): interpolation; the unused cache entry is dropped.
    let s2 = snapshot(
        60,
        vec![topic("t", TopicConfig::default(), &[(0, 0, 1_600)])],
        vec![group("g", Some(1), &[("t", 0, 1_150)])],
    );
    let (plan, out) = poll(&mut a, &s2, 60, no_reads);
    assert!(plan.reads.is_empty());
    // 1150 is the middle of 1000..1300 over 0..30 s: appended at 15 s.
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(45.0));
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
    let lags: Vec<Option<f64>> = out.report.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.figures.lag_seconds)
        .collect();
    assert_eq!(
        lags,
        vec![Some(110.0), Some(120.0), None],
        "partition 2 is absent this poll"
    );
    // Aggregates cover the known partitions only.
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(120.0));
    assert_eq!(out.report.groups[0].topics[0].lag_skew_seconds, Some(10.0));
    // Next poll: the first two are cached, the third is read; nothing pending.
    let (plan, out) = poll(&mut a, &snapshot(30, topics(10), groups()), 30, record);
    assert_eq!(plan.reads, vec![read("t", 2, 30)]);
    assert_eq!(out.timestamp_reads_pending, 0);
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(160.0));
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
    let p = out.report.groups[0].topics[0].partitions[0];
    assert_eq!(p.figures.lag_seconds, Some(1_200.0));
    assert_eq!(p.figures.evicted_messages, 30);
    assert_eq!(
        p.figures.eviction_seconds,
        Some(0.0),
        "already evicting: clamped at 0"
    );
    assert!(close(p.figures.retention_usage_ratio, 1_200.0 / 3_600.0));
}

#[test]
fn a_read_finding_only_transaction_markers_before_the_head_is_caught_up() {
    // Offsets 10..14 committed records, 14 their commit marker, head (LSO) 15; the group sits
    // on the marker, before the history (lagwatch started after the transaction).
    let mut a = ClusterAnalytics::new(settings());
    let payments = |h| vec![topic("payments", TopicConfig::default(), &[(0, 0, h)])];
    let groups = || vec![group("g", Some(1), &[("payments", 0, 14)])];
    let lag_seconds = |out: &Analytics| {
        out.report.groups[0].topics[0].partitions[0]
            .figures
            .lag_seconds
    };

    // Poll 1: the read at 14 reaches the end of the partition without a record.
    let s = snapshot(0, payments(15), groups());
    let plan = a.plan_reads(&s);
    assert_eq!(plan.reads, vec![read("payments", 0, 14)]);
    a.no_record_before_head(&s, &plan.reads);
    let unanswered: Vec<_> = plan.reads.iter().map(|r| (r.clone(), None)).collect();
    let out = a.finish(&s, &unanswered, at(0));
    assert_eq!(lag_seconds(&out), Some(0.0), "only a marker before H");
    assert_eq!(
        out.report.groups[0].topics[0].partitions[0]
            .figures
            .lag_messages,
        1
    );

    // Poll 2, head unchanged: nothing to read again, still caught up.
    let s = snapshot(30, payments(15), groups());
    let (plan, out) = poll(&mut a, &s, 30, no_reads);
    assert!(plan.reads.is_empty());
    assert_eq!(lag_seconds(&out), Some(0.0));

    // Poll 3: records 15..20 appended between 30 s and 60 s; the oldest unread is 15, whose
    // time comes from the head history (it passed 15 at 30 s).
    let s = snapshot(60, payments(20), groups());
    let (plan, out) = poll(&mut a, &s, 90, no_reads);
    assert!(plan.reads.is_empty());
    assert_eq!(lag_seconds(&out), Some(60.0));
}

#[test]
fn a_marker_written_inside_the_history_is_read_once_the_head_stops() {
    // lagwatch is running when a transaction writes records 10..14 and its commit marker at
    // 14 (LSO 10 → 15). The group commits 14, the marker: inside the head history.
    let mut a = ClusterAnalytics::new(settings());
    let payments = |h| vec![topic("payments", TopicConfig::default(), &[(0, 0, h)])];
    let groups = |c| vec![group("g", Some(1), &[("payments", 0, c)])];
    let lag_seconds = |out: &Analytics| {
        out.report.groups[0].topics[0].partitions[0]
            .figures
            .lag_seconds
    };
    let s = snapshot(0, payments(10), groups(10));
    poll(&mut a, &s, 0, no_reads);

    // Poll 2, the head just moved: interpolated (the head passed 14 at 24 s), nothing read.
    let s = snapshot(30, payments(15), groups(14));
    let (plan, out) = poll(&mut a, &s, 30, no_reads);
    assert!(plan.reads.is_empty());
    assert_eq!(lag_seconds(&out), Some(6.0));

    // Poll 3, the head stood still: the record at 14 is read, and there is none before 15.
    let s = snapshot(60, payments(15), groups(14));
    let plan = a.plan_reads(&s);
    assert_eq!(plan.reads, vec![read("payments", 0, 14)]);
    a.no_record_before_head(&s, &plan.reads);
    let unanswered: Vec<_> = plan.reads.iter().map(|r| (r.clone(), None)).collect();
    let out = a.finish(&s, &unanswered, at(60));
    assert_eq!(lag_seconds(&out), Some(0.0), "only the marker before H");

    // Poll 4: remembered, not read again.
    let s = snapshot(90, payments(15), groups(14));
    let (plan, out) = poll(&mut a, &s, 90, no_reads);
    assert!(plan.reads.is_empty());
    assert_eq!(lag_seconds(&out), Some(0.0));
}

#[test]
fn a_record_near_a_head_that_stopped_is_read_once_and_its_own_time_kept() {
    let mut a = ClusterAnalytics::new(settings());
    let orders = |h| vec![topic("orders", TopicConfig::default(), &[(0, 0, h)])];
    let groups = || vec![group("g", Some(1), &[("orders", 0, 18)])];
    poll(&mut a, &snapshot(0, orders(0), groups()), 0, no_reads);
    poll(&mut a, &snapshot(30, orders(20), groups()), 30, no_reads);
    // The head stopped at 20; record 18 was really appended at 10 s (interpolation says 27 s).
    let (plan, out) = poll(&mut a, &snapshot(60, orders(20), groups()), 60, |r| {
        (r.offset == 18).then_some(ms(10))
    });
    assert_eq!(plan.reads, vec![read("orders", 0, 18)]);
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(50.0));
    // A read that fails leaves the interpolation: 120 − 27 s.
    let mut b = ClusterAnalytics::new(settings());
    poll(&mut b, &snapshot(0, orders(0), groups()), 0, no_reads);
    poll(&mut b, &snapshot(30, orders(20), groups()), 30, no_reads);
    let (_, out) = poll(&mut b, &snapshot(120, orders(20), groups()), 120, |_| None);
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(93.0));
    // The cached answer is used without a new read.
    let (plan, out) = poll(&mut a, &snapshot(90, orders(20), groups()), 90, no_reads);
    assert!(plan.reads.is_empty());
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(80.0));
}
