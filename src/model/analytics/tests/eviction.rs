//! Eviction risk across polls: countdown, retention usage, evicted messages and their events,
//! the `evicting` threshold.

use super::*;

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
    let g = &out.report.groups[0];
    let (compact, hourly) = (&g.topics[0], &g.topics[1]);
    // R = 1h, record 50 min old: 10 min to eviction, 83% of the retention used.
    assert_eq!(hourly.partitions[0].figures.eviction_seconds, Some(600.0));
    assert!(close(
        hourly.partitions[0].figures.retention_usage_ratio,
        3_000.0 / 3_600.0
    ));
    // A compacted topic deletes nothing by time: no countdown, no usage; time lag still known.
    assert_eq!(compact.partitions[0].figures.eviction_seconds, None);
    assert_eq!(compact.partitions[0].figures.retention_usage_ratio, None);
    assert_eq!(compact.partitions[0].figures.lag_seconds, Some(3_000.0));
    assert_eq!(g.figures.eviction_seconds, Some(600.0));
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
        assert_eq!(
            out.report.groups[0].figures.evicted_messages, evicted,
            "{why}"
        );
        assert_eq!(out.report.groups[0].status, status, "{why}");
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
        .report
        .groups
        .iter()
        .map(|g| (g.figures.eviction_seconds, g.status))
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
