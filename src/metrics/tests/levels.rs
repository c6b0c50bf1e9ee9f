//! Levels of detail: granularity, the series guard, shards.

use super::*;

#[test]
fn partition_granularity_emits_exact_values() {
    let r = render(
        &[cluster("a", Some(report()))],
        &settings(Granularity::Partition),
    );
    for exposition in [&text(&r), &om(&r)] {
        let lines: Vec<&str> = exposition.lines().collect();
        let expected = [
            r#"kafka_partition_latest_offset{cluster="a",topic="orders",partition="2"} 30"#,
            r#"kafka_partition_earliest_offset{cluster="a",topic="payments",partition="0"} 5"#,
            r#"kafka_topic_partitions{cluster="a",topic="orders"} 3"#,
            r#"kafka_topic_latest_offsets{cluster="a",topic="orders"} 60"#,
            r#"kafka_topic_earliest_offsets{cluster="a",topic="payments"} 5"#,
            r#"kafka_topic_retention_seconds{cluster="a",topic="orders"} 3600.0"#,
            r#"kafka_consumergroup_state{cluster="a",group="billing",group_type="classic",state="empty"} 1"#,
            r#"kafka_consumergroup_state{cluster="a",group="shipping",group_type="classic",state="stable"} 1"#,
            r#"kafka_consumergroup_members{cluster="a",group="shipping",group_type="classic"} 2"#,
            r#"kafka_consumergroup_uncommitted_partitions{cluster="a",group="billing",group_type="classic"} 1"#,
            r#"kafka_consumergroup_uncommitted_partitions{cluster="a",group="shipping",group_type="classic"} 2"#,
            r#"kafka_consumergroup_lag_messages{cluster="a",group="billing",group_type="classic"} 30"#,
            r#"kafka_consumergroup_lag_messages{cluster="a",group="shipping",group_type="classic"} 0"#,
            r#"kafka_consumergroup_topic_lag_messages{cluster="a",group="billing",topic="orders"} 26"#,
            r#"kafka_consumergroup_topic_lag_messages{cluster="a",group="billing",topic="payments"} 4"#,
            r#"kafka_consumergroup_partition_committed_offset{cluster="a",group="billing",topic="orders",partition="0"} 4"#,
            r#"kafka_consumergroup_partition_lag_messages{cluster="a",group="billing",topic="orders",partition="2"} 20"#,
            r#"kafka_consumergroup_partition_lag_messages{cluster="a",group="billing",topic="payments",partition="0"} 4"#,
            r#"lagwatch_kafka_up{cluster="a"} 1"#,
            r#"lagwatch_series{cluster="a"} 73"#,
            r#"lagwatch_series_dropped{cluster="a"} 0"#,
            r#"lagwatch_timestamp_reads_pending{cluster="a"} 0"#,
            r#"lagwatch_build_info{version="0.1.0",revision="abc123"} 1"#,
        ];
        for line in expected {
            assert!(lines.contains(&line), "missing {line}\n{exposition}");
        }
        // Infinite retention.bytes and unknown retention.ms have no series; no family is empty.
        assert!(
            !exposition.contains("kafka_topic_retention_bytes"),
            "{exposition}"
        );
        assert!(
            !exposition.contains(r#"kafka_topic_retention_seconds{cluster="a",topic="payments"}"#)
        );
        // Partitions without a commit have no lag series (no -1 sentinel).
        assert!(!exposition.contains(r#"group="billing",topic="payments",partition="1""#));
        assert_eq!(kafka_samples(exposition).len(), 73);
    }
    assert_eq!((r.series, r.dropped), (73, 0));
}

#[test]
fn granularity_sets_the_finest_level() {
    // (granularity, families that must be present, families that must be absent, Kafka series)
    let partition_only = [
        "kafka_partition_latest_offset",
        "kafka_partition_earliest_offset",
        "kafka_consumergroup_partition_committed_offset",
        "kafka_consumergroup_partition_lag_messages",
    ];
    let always = [
        "kafka_topic_partitions",
        "kafka_topic_latest_offsets",
        "kafka_consumergroup_state",
        "kafka_consumergroup_lag_messages",
    ];
    let topic = ["kafka_consumergroup_topic_lag_messages"];
    let cases: [(Granularity, Vec<&str>, Vec<&str>, usize); 3] = [
        (
            Granularity::Group,
            always.to_vec(),
            [&topic[..], &partition_only[..]].concat(),
            31,
        ),
        (
            Granularity::Topic,
            [&always[..], &topic[..]].concat(),
            partition_only.to_vec(),
            46,
        ),
        (
            Granularity::Partition,
            [&always[..], &topic[..], &partition_only[..]].concat(),
            vec![],
            73,
        ),
    ];
    for (granularity, present, absent, series) in cases {
        let r = render(&[cluster("a", Some(report()))], &settings(granularity));
        let t = &text(&r);
        for name in present {
            assert!(has_family(t, name), "{granularity:?}: {name} missing");
        }
        for name in absent {
            assert!(!t.contains(name), "{granularity:?}: {name} present");
        }
        assert_eq!((r.series, r.dropped), (series, 0), "{granularity:?}");
        assert_eq!(kafka_samples(t).len(), series, "{granularity:?}");
    }
}

#[test]
fn max_series_drops_partition_level_then_topic_level() {
    // Two clusters with the same report: always 62, topic 30, partition 54 (146 in all).
    // (max_series, series emitted, dropped, per-cluster series, topic level kept, partition kept)
    let cases = [
        (146, 146, 0, 73, true, true),
        (145, 92, 54, 46, true, false),
        (92, 92, 54, 46, true, false),
        (91, 62, 84, 31, false, false),
        (62, 62, 84, 31, false, false),
        // Group level alone is over: emitted anyway (and logged as an error).
        (10, 62, 84, 31, false, false),
    ];
    for (max_series, series, dropped, per_cluster, topic_kept, partition_kept) in cases {
        let mut s = settings(Granularity::Partition);
        s.max_series = max_series;
        let r = render(
            &[cluster("a", Some(report())), cluster("b", Some(report()))],
            &s,
        );
        let t = &text(&r);
        assert_eq!(
            (r.series, r.dropped),
            (series, dropped),
            "max_series {max_series}"
        );
        assert_eq!(kafka_samples(t).len(), series, "max_series {max_series}");
        for c in ["a", "b"] {
            let line = format!(r#"lagwatch_series{{cluster="{c}"}} {per_cluster}"#);
            assert!(t.lines().any(|l| l == line), "{line}\n{t}");
            let line = format!(
                r#"lagwatch_series_dropped{{cluster="{c}"}} {}"#,
                dropped / 2
            );
            assert!(t.lines().any(|l| l == line), "{line}\n{t}");
        }
        assert_eq!(
            has_family(t, "kafka_consumergroup_topic_lag_messages"),
            topic_kept
        );
        assert_eq!(
            has_family(t, "kafka_consumergroup_partition_lag_messages"),
            partition_kept
        );
        assert_eq!(
            has_family(t, "kafka_partition_latest_offset"),
            partition_kept
        );
        // Never dropped.
        assert!(has_family(t, "kafka_consumergroup_lag_messages"));
        assert!(has_family(t, "kafka_topic_latest_offsets"));
        assert!(has_family(t, "lagwatch_kafka_up"));
    }
}

#[test]
fn max_series_counts_only_configured_levels_as_dropped() {
    // Granularity topic: the partition level is not configured, so not "dropped".
    let mut s = settings(Granularity::Topic);
    s.max_series = 45;
    let r = render(&[cluster("a", Some(report()))], &s);
    assert_eq!((r.series, r.dropped), (31, 15));
}

#[test]
fn other_shards_omit_topic_wide_families() {
    let mut s = settings(Granularity::Partition);
    s.shard_zero = false;
    let r = render(&[cluster("a", Some(report()))], &s);
    let t = &text(&r);
    assert!(!t.contains("kafka_topic_"), "{t}");
    assert!(!t.contains("kafka_partition_"), "{t}");
    assert!(has_family(t, "kafka_consumergroup_partition_lag_messages"));
    // 73 minus 7 topic-level and 10 partition-offset series.
    assert_eq!((r.series, r.dropped), (56, 0));
}

#[test]
fn share_and_streams_groups_render_their_states_and_share_groups_have_no_commit_stall() {
    let with_broker_lag = |partition, offset, lag| CommittedOffset {
        broker_lag: lag,
        ..commit("orders", partition, offset)
    };
    let report = report_with_groups(vec![
        GroupSnapshot {
            id: "etl".into(),
            group_type: GroupType::Streams,
            state: GroupState::NotReady,
            members: Some(0),
            offsets: vec![commit("orders", 1, 15)],
        },
        // orders/0 with the broker's lag (2 of the 6 records after the start offset are not
        // delivered for good), orders/2 without: the upper bound 30 - 10.
        GroupSnapshot {
            id: "jobs".into(),
            group_type: GroupType::Share,
            state: GroupState::Stable,
            members: Some(3),
            offsets: vec![with_broker_lag(0, 4, Some(2)), with_broker_lag(2, 10, None)],
        },
    ]);
    let r = render(
        &[cluster("a", Some(report))],
        &settings(Granularity::Partition),
    );
    let exposition = text(&r);
    let lines: Vec<&str> = exposition.lines().collect();
    let expected = [
        r#"kafka_consumergroup_state{cluster="a",group="etl",group_type="streams",state="not_ready"} 1"#,
        r#"kafka_consumergroup_state{cluster="a",group="jobs",group_type="share",state="stable"} 1"#,
        r#"kafka_consumergroup_members{cluster="a",group="jobs",group_type="share"} 3"#,
        r#"kafka_consumergroup_lag_messages{cluster="a",group="etl",group_type="streams"} 5"#,
        r#"kafka_consumergroup_lag_messages{cluster="a",group="jobs",group_type="share"} 22"#,
        r#"kafka_consumergroup_partition_committed_offset{cluster="a",group="jobs",topic="orders",partition="0"} 4"#,
        r#"kafka_consumergroup_partition_lag_messages{cluster="a",group="jobs",topic="orders",partition="0"} 2"#,
        r#"kafka_consumergroup_partition_lag_messages{cluster="a",group="jobs",topic="orders",partition="2"} 20"#,
        r#"kafka_consumergroup_commit_stall_seconds{cluster="a",group="etl",group_type="streams"} 0.0"#,
        r#"kafka_consumergroup_topic_commit_stall_seconds{cluster="a",group="etl",topic="orders"} 0.0"#,
    ];
    for line in expected {
        assert!(lines.contains(&line), "missing {line}\n{exposition}");
    }
    for family in [
        "kafka_consumergroup_commit_stall_seconds",
        "kafka_consumergroup_topic_commit_stall_seconds",
    ] {
        let groups: Vec<String> = family_samples(&exposition, family)
            .into_iter()
            .map(|(labels, _)| labels)
            .collect();
        assert_eq!(groups.len(), 1, "{family}: {groups:?}");
        assert!(groups[0].contains(r#"group="etl""#), "{family}: {groups:?}");
    }
}
