//! The shape of the report: the one walk over the committed offsets (what it sums, what it
//! skips) and the lifetime of the state behind it.

use super::*;

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
        .report
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
    assert_eq!(out.report.groups[2].status, Status::Ok);
    assert_eq!(out.report.groups[2].figures.lag_seconds, None);
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
    assert_eq!(out.report.groups[0].topics[0].rewinds_total, 0);
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
    assert_eq!(out.report.groups[0].figures.lag_seconds, Some(10.0));
}

#[test]
fn report_sums_per_topic_and_group_and_counts_uncommitted() {
    let orders: Arc<str> = Arc::from("orders");
    let payments: Arc<str> = Arc::from("payments");
    let gone: Arc<str> = Arc::from("gone");
    let commit = |topic: &Arc<str>, partition, offset| CommittedOffset {
        topic: topic.clone(),
        partition,
        offset,
        broker_lag: None,
    };
    let s = Snapshot {
        taken_at: at(0),
        topics: crate::model::fixtures::orders_and_payments(),
        groups: vec![GroupSnapshot {
            id: "billing".into(),
            group_type: GroupType::Classic,
            state: GroupState::Empty,
            members: Some(0),
            offsets: vec![
                commit(&gone, 0, 100),
                commit(&orders, 0, 4),
                commit(&orders, 1, 20),
                commit(&orders, 2, 10),
                commit(&payments, 0, 1),
            ],
        }],
    };
    let (_, out) = poll(&mut ClusterAnalytics::new(settings()), &s, 0, |_| None);
    let r = out.report;
    assert_eq!(r.topics[0].latest_offsets, 60);
    assert_eq!(r.topics[0].earliest_offsets, 0);
    assert_eq!(r.topics[0].retention_seconds, Some(3600.0));
    assert_eq!(r.topics[0].retention_bytes, None, "negative means infinite");
    assert_eq!(r.topics[1].retention_seconds, None, "unknown stays unknown");
    assert_eq!(r.topics[1].earliest_offsets, 5);

    let g = &r.groups[0];
    assert_eq!(g.topics.len(), 2, "the vanished topic is skipped");
    assert_eq!(g.topics[0].topic.as_ref(), "orders");
    let lags: Vec<i64> = g.topics[0]
        .partitions
        .iter()
        .map(|p| p.figures.lag_messages)
        .collect();
    assert_eq!(lags, vec![6, 0, 20]);
    assert_eq!(g.topics[0].figures.lag_messages, 26);
    // payments/0: C=1 < L=5, so lag is H - L = 4; payments/1 has no commit.
    assert_eq!(g.topics[1].figures.lag_messages, 4);
    assert_eq!(g.figures.lag_messages, 30);
    assert_eq!(g.uncommitted_partitions, 1);
    assert_eq!(g.members, Some(0));
}
