//! Time lag, eviction risk, rewinds and status against a real broker, checked against ground
//! truth: records with known CreateTimes, commits at known offsets.

mod common;

use std::time::Duration;

use common::{kafka, unique, Exposition, Lagwatch};

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn exact_reads_give_time_lag_and_eviction_risk_on_the_first_poll() {
    let broker = kafka();
    let topic = unique("retained");
    let group = unique("slow");
    broker.create_topic(
        &topic,
        2,
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    );
    let now = common::now_ms();
    let fifty_minutes_ago = now - 50 * 60_000;
    let ten_minutes_ago = now - 10 * 60_000;
    let one_minute_ago = now - 60_000;
    // Partition 0: 10 records 50 minutes old, then 10 records 1 minute old.
    broker.produce(&topic, 0, 10, Some(fifty_minutes_ago));
    broker.produce(&topic, 0, 10, Some(one_minute_ago));
    // Partition 1: 5 records 10 minutes old, 5 records 1 minute old.
    broker.produce(&topic, 1, 5, Some(ten_minutes_ago));
    broker.produce(&topic, 1, 5, Some(one_minute_ago));
    // Next records to read: offset 5 of p0 (50 min old), offset 5 of p1 (1 min old).
    broker.commit(&group, &[(&topic, 0, 5), (&topic, 1, 5)]);

    let lw = Lagwatch::start(&common::one_cluster_config(broker, &topic, &group, ""));
    let (t, g) = (topic.as_str(), group.as_str());
    let m = lw.wait_for(WAIT, "time lag", |m| {
        m.value("kafka_consumergroup_lag_seconds", &[("group", g)])
            .is_some()
    });
    let at = m.poll_time();
    let age = |ts_ms: i64| at - ts_ms as f64 / 1000.0;
    let p0 = m
        .value(
            "kafka_consumergroup_partition_lag_seconds",
            &[("group", g), ("topic", t), ("partition", "0")],
        )
        .expect("p0 time lag");
    let p1 = m
        .value(
            "kafka_consumergroup_partition_lag_seconds",
            &[("group", g), ("topic", t), ("partition", "1")],
        )
        .expect("p1 time lag");
    // Exact reads: within max(one poll interval, 5%) of the truth.
    common::assert_close(
        "p0 time lag (exact read)",
        p0,
        age(fifty_minutes_ago),
        (0.05 * 3000.0_f64).max(1.0),
    );
    common::assert_close(
        "p1 time lag (exact read)",
        p1,
        age(one_minute_ago),
        (0.05 * 60.0_f64).max(1.0),
    );
    let group_lag = m
        .value("kafka_consumergroup_lag_seconds", &[("group", g)])
        .expect("group");
    assert_eq!(
        group_lag, p0,
        "the group's time lag is its worst partition's"
    );
    let skew = m
        .value(
            "kafka_consumergroup_topic_lag_skew_seconds",
            &[("group", g), ("topic", t)],
        )
        .expect("skew");
    common::assert_close("skew", skew, p0 - p1, 0.001);

    // retention.ms = 1 h, next record 50 minutes old: about 10 minutes to eviction, usage 0.83.
    let eviction = m
        .value("kafka_consumergroup_eviction_seconds", &[("group", g)])
        .expect("eviction");
    common::assert_close(
        "eviction seconds",
        eviction,
        3600.0 - age(fifty_minutes_ago),
        0.05 * 600.0,
    );
    let usage = m
        .value("kafka_consumergroup_retention_usage_ratio", &[("group", g)])
        .expect("usage");
    common::assert_close(
        "retention usage",
        usage,
        age(fifty_minutes_ago) / 3600.0,
        0.01,
    );
    // 10 minutes left is under min(eviction_warning 1h, retention/4 = 15m): evicting.
    assert_eq!(
        m.value(
            "kafka_consumergroup_status",
            &[("group", g), ("status", "evicting")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_evicted_messages", &[("group", g)]),
        Some(0.0)
    );

    // Later polls use the cached reads: still exact.
    let first = m
        .value(
            "lagwatch_poll_duration_seconds_count",
            &[("cluster", "test")],
        )
        .unwrap_or(0.0);
    let m = lw.wait_for(WAIT, "three more polls", |m| {
        m.value(
            "lagwatch_poll_duration_seconds_count",
            &[("cluster", "test")],
        )
        .unwrap_or(0.0)
            >= first + 3.0
    });
    let p0 = m
        .value(
            "kafka_consumergroup_partition_lag_seconds",
            &[("group", g), ("topic", t), ("partition", "0")],
        )
        .expect("p0 time lag");
    let at = m.poll_time();
    common::assert_close(
        "p0 time lag (cached)",
        p0,
        at - fifty_minutes_ago as f64 / 1000.0,
        150.0,
    );
    assert_eq!(
        m.value("lagwatch_timestamp_reads_pending", &[("cluster", "test")]),
        Some(0.0)
    );
}

#[test]
fn interpolated_time_lag_follows_steady_production() {
    let broker = kafka();
    let topic = unique("steady");
    let group = unique("follower");
    broker.create_topic(&topic, 1, &[]);
    let lw = Lagwatch::start(&common::one_cluster_config(broker, &topic, &group, ""));
    lw.wait_for(WAIT, "first poll", |m| {
        m.value("lagwatch_kafka_up", &[("cluster", "test")]) == Some(1.0)
    });

    // Records stamped now, 4 per second for 12 s, so lagwatch sees the head advance poll by poll.
    let mut produced_at = Vec::new();
    for _ in 0..48 {
        produced_at.push(common::now_ms());
        broker.produce(&topic, 0, 1, None);
        std::thread::sleep(Duration::from_millis(250));
    }
    let committed = 8usize;
    broker.commit(&group, &[(&topic, 0, committed as i64)]);
    let (t, g) = (topic.as_str(), group.as_str());
    // Keep producing while polls go on; read a poll that saw the commit.
    let mut m = lw.wait_for(WAIT, "time lag", |m| {
        m.value(
            "kafka_consumergroup_partition_lag_seconds",
            &[("group", g), ("topic", t), ("partition", "0")],
        )
        .is_some()
    });
    for _ in 0..12 {
        broker.produce(&topic, 0, 1, None);
        std::thread::sleep(Duration::from_millis(250));
    }
    m = lw.wait_for(WAIT, "a later poll", |x| {
        x.poll_time() > m.poll_time() + 2.0
    });
    let measured = m
        .value(
            "kafka_consumergroup_partition_lag_seconds",
            &[("group", g), ("topic", t), ("partition", "0")],
        )
        .expect("time lag");
    let truth = m.poll_time() - produced_at[committed] as f64 / 1000.0;
    // Within max(one poll interval, 5%) of the truth (the head was seen once per second).
    common::assert_close(
        "interpolated time lag",
        measured,
        truth,
        (0.05 * truth).max(1.0),
    );
    assert_eq!(
        m.value("lagwatch_timestamp_reads_pending", &[("cluster", "test")]),
        Some(0.0)
    );
}

#[test]
fn a_commit_moving_backwards_counts_a_rewind_and_the_rewound_messages() {
    let broker = kafka();
    let topic = unique("replayed");
    let group = unique("replayer");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 40, None);
    broker.commit(&group, &[(&topic, 0, 30)]);
    let lw = Lagwatch::start(&common::one_cluster_config(
        broker,
        &topic,
        &group,
        "status: { window: 3 }",
    ));
    let (t, g) = (topic.as_str(), group.as_str());
    lw.wait_for(WAIT, "the first commit", |m| {
        m.value(
            "kafka_consumergroup_partition_committed_offset",
            &[("group", g), ("partition", "0")],
        ) == Some(30.0)
    });
    broker.commit(&group, &[(&topic, 0, 20)]);
    let m = lw.wait_for(WAIT, "a rewind", |m| {
        m.value(
            "kafka_consumergroup_rewinds_total",
            &[("group", g), ("topic", t)],
        ) == Some(1.0)
    });
    assert_eq!(
        m.value(
            "kafka_consumergroup_rewound_messages_total",
            &[("group", g), ("topic", t)]
        ),
        Some(10.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_status",
            &[("group", g), ("status", "rewind")]
        ),
        Some(1.0)
    );
}

#[test]
fn a_live_group_whose_commits_never_move_stalls_then_stops() {
    let broker = kafka();
    let topic = unique("stuck");
    let group = unique("poison");
    broker.create_topic(&topic, 1, &[]);
    // Written 10 minutes ago: past the default status.min_time_lag (60 s).
    broker.produce(&topic, 0, 10, Some(common::now_ms() - 10 * 60_000));

    // A live member that committed offset 2 once and never again (a poison message).
    let _member = broker.member(&group, &topic, Some(2));

    let lw = Lagwatch::start(&common::one_cluster_config(
        broker,
        &topic,
        &group,
        "status: { window: 3, stop_after: 8s }",
    ));
    let g = group.as_str();
    let m = lw.wait_for(WAIT, "stall", |m| {
        m.value(
            "kafka_consumergroup_status",
            &[("group", g), ("status", "stall")],
        ) == Some(1.0)
    });
    assert_eq!(
        m.value("kafka_consumergroup_members", &[("group", g)]),
        Some(1.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", g)]),
        Some(8.0)
    );
    assert!(
        m.value("kafka_consumergroup_commit_stall_seconds", &[("group", g)])
            .expect("stall")
            > 0.0
    );
    assert!(
        m.value("kafka_consumergroup_lag_seconds", &[("group", g)])
            .expect("time lag")
            >= 600.0,
        "the gate passed on the time lag of the real record at the commit"
    );
    let m = lw.wait_for(WAIT, "stop", |m| {
        m.value(
            "kafka_consumergroup_status",
            &[("group", g), ("status", "stop")],
        ) == Some(1.0)
    });
    assert!(
        m.value("kafka_consumergroup_commit_stall_seconds", &[("group", g)])
            .expect("stall")
            >= 8.0
    );
}

#[test]
fn a_frozen_commit_seconds_behind_is_not_a_stall() {
    // The same live member and frozen commit, but the records were written just now: after a
    // full window (3 polls) and past stop_after (5 s), the time lag is still under
    // status.min_time_lag (60 s), so the group is neither `stall` nor `stop`.
    let broker = kafka();
    let topic = unique("fresh");
    let group = unique("busy");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 10, None);
    let _member = broker.member(&group, &topic, Some(2));
    let lw = Lagwatch::start(&common::one_cluster_config(
        broker,
        &topic,
        &group,
        "status: { window: 3, stop_after: 5s }",
    ));
    let g = group.as_str();
    let m = lw.wait_for(WAIT, "8 s of frozen commits", |m| {
        m.value("kafka_consumergroup_commit_stall_seconds", &[("group", g)])
            .is_some_and(|s| s >= 8.0)
    });
    let lag_seconds = m
        .value("kafka_consumergroup_lag_seconds", &[("group", g)])
        .expect("time lag");
    assert!(lag_seconds < 60.0, "time lag {lag_seconds}");
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", g)]),
        Some(8.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_status",
            &[("group", g), ("status", "ok")]
        ),
        Some(1.0)
    );
}

#[test]
fn retention_deleting_unread_records_reports_evicted_messages() {
    let broker = kafka();
    let topic = unique("expiring");
    let group = unique("late");
    // Retention deletes whole closed segments. segment.ms rolls a new segment when a batch's
    // CreateTime is that far past the segment's first record.
    broker.create_topic(
        &topic,
        1,
        &[
            ("retention.ms", "600000"),
            ("cleanup.policy", "delete"),
            ("segment.ms", "600000"),
        ],
    );
    // 10 records an hour old (past the 10-minute retention), then 10 fresh ones: the fresh batch
    // starts a new segment, the old one holds only expired records, and the broker's retention
    // check (every second in the test cluster) deletes it, moving the low watermark to 10.
    broker.produce(&topic, 0, 10, Some(common::now_ms() - 3_600_000));
    broker.produce(&topic, 0, 10, None);
    broker.commit(&group, &[(&topic, 0, 3)]);

    // As a process, to see the log event.
    let yaml = common::one_cluster_config(broker, &topic, &group, "");
    let yaml: String = yaml
        .lines()
        .filter(|l| !l.starts_with("listen:"))
        .collect::<Vec<_>>()
        .join("\n");
    let lw = common::LagwatchProcess::start(&yaml);
    let (t, g) = (topic.as_str(), group.as_str());
    let m = lw.wait_for(WAIT, "evicted messages", |m| {
        m.value("kafka_consumergroup_evicted_messages", &[("group", g)])
            .unwrap_or(0.0)
            > 0.0
    });
    assert_eq!(
        m.value(
            "kafka_partition_earliest_offset",
            &[("topic", t), ("partition", "0")]
        ),
        Some(10.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_evicted_messages", &[("group", g)]),
        Some(7.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_partition_evicted_messages",
            &[("group", g), ("topic", t), ("partition", "0")]
        ),
        Some(7.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", g)]),
        Some(10.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_eviction_seconds", &[("group", g)]),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_status",
            &[("group", g), ("status", "evicting")]
        ),
        Some(1.0)
    );
}

#[test]
fn time_lag_is_read_from_batches_of_every_compression_codec() {
    let broker = kafka();
    let group = unique("codecs");
    let prefix = unique("codec");
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    // Records 20 minutes old, so the time lag comes from reading the record at the commit
    // (inside a compressed batch), not from the head history.
    let twenty_minutes_ago = common::now_ms() - 20 * 60_000;
    let mut commits = Vec::new();
    let topics: Vec<String> = codecs.iter().map(|c| format!("{prefix}-{c}")).collect();
    for (codec, topic) in codecs.iter().zip(&topics) {
        broker.create_topic(topic, 1, &[]);
        broker.produce_with(codec, topic, 0, 20, Some(twenty_minutes_ago));
        commits.push((topic.as_str(), 0, 7));
    }
    broker.commit(&group, &commits);

    let lw = Lagwatch::start(&common::one_cluster_config(
        broker,
        &format!("{prefix}-.*"),
        &group,
        "",
    ));
    let g = group.as_str();
    let topic_lag = |m: &Exposition, t: &str| {
        m.value(
            "kafka_consumergroup_topic_lag_seconds",
            &[("group", g), ("topic", t)],
        )
    };
    let m = lw.wait_for(WAIT, "time lag of every codec's topic", |m| {
        topics.iter().all(|t| topic_lag(m, t).is_some())
    });
    let at = m.poll_time();
    for (codec, topic) in codecs.iter().zip(&topics) {
        assert_eq!(
            m.value(
                "kafka_consumergroup_topic_lag_messages",
                &[("group", g), ("topic", topic)]
            ),
            Some(13.0),
            "{codec}"
        );
        common::assert_close(
            &format!("{codec} time lag (exact read)"),
            topic_lag(&m, topic).unwrap_or(f64::NAN),
            at - twenty_minutes_ago as f64 / 1000.0,
            // Within max(one poll interval, 5%) of the truth, as every time lag.
            (0.05 * 1200.0_f64).max(1.0),
        );
    }
    assert_eq!(
        m.value(
            "lagwatch_poll_errors_total",
            &[("cluster", "test"), ("stage", "read_timestamps")]
        )
        .unwrap_or(0.0),
        0.0,
        "no timestamp read failed"
    );
}
