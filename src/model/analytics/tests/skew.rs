//! Commit skew across polls: partition skew, rewinds, commit stall.

use super::*;

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
    let t = &out.report.groups[0].topics[0];
    let lags: Vec<Option<f64>> = t.partitions.iter().map(|p| p.figures.lag_seconds).collect();
    assert_eq!(lags, vec![Some(10.0), Some(50.0), Some(0.0)]);
    assert_eq!(t.lag_skew_seconds, Some(50.0));
    assert_eq!(t.figures.lag_seconds, Some(50.0));
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
        let topic = &out.report.groups[0].topics[0];
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
        assert_eq!(
            out.report.groups[0].figures.commit_stall_seconds,
            Some(want),
            "{why}"
        );
    }
}
