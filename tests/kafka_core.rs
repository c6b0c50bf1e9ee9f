//! Collection against Apache Kafka: offsets, lag, groups, request counts, outages.

mod common;

use std::time::Duration;

use common::{kafka, unique, ClusterSpec, Exposition, KafkaCluster, Lagwatch};

const WAIT: Duration = Duration::from_secs(60);

fn config(broker: &KafkaCluster, topics: &str, groups: &str, granularity: &str) -> String {
    format!(
        r#"
listen: "127.0.0.1:0"
poll_interval: 1s
granularity: {granularity}
clusters:
  - name: test
    bootstrap_servers: "{}"
    groups: {{ include: ["{groups}"] }}
    topics: {{ include: ["{topics}"] }}
"#,
        broker.bootstrap()
    )
}

#[test]
fn offsets_and_lag_match_ground_truth_for_a_group_without_members() {
    let broker = kafka();
    let topic = unique("orders");
    let group = unique("billing");
    broker.create_topic(
        &topic,
        3,
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    );
    for (partition, count) in [(0, 10), (1, 20), (2, 30)] {
        broker.produce(&topic, partition, count, None);
    }
    broker.commit(&group, &[(&topic, 0, 4), (&topic, 1, 20), (&topic, 2, 10)]);

    let lw = Lagwatch::start(&config(
        broker,
        &format!("^{topic}$"),
        &format!("^{group}$"),
        "partition",
    ));
    let t = topic.as_str();
    let g = group.as_str();
    let m = lw.wait_for(WAIT, "group lag", |m| {
        m.value("kafka_consumergroup_lag_messages", &[("group", g)])
            .is_some()
    });
    assert_eq!(
        m.value("lagwatch_kafka_up", &[("cluster", "test")]),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "kafka_partition_latest_offset",
            &[("topic", t), ("partition", "2")]
        ),
        Some(30.0)
    );
    assert_eq!(
        m.value(
            "kafka_partition_earliest_offset",
            &[("topic", t), ("partition", "2")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value("kafka_topic_partitions", &[("topic", t)]),
        Some(3.0)
    );
    assert_eq!(
        m.value("kafka_topic_latest_offsets", &[("topic", t)]),
        Some(60.0)
    );
    assert_eq!(
        m.value("kafka_topic_retention_seconds", &[("topic", t)]),
        Some(3600.0)
    );
    let partition_lag = |p: &str| {
        m.value(
            "kafka_consumergroup_partition_lag_messages",
            &[("group", g), ("topic", t), ("partition", p)],
        )
    };
    assert_eq!(partition_lag("0"), Some(6.0));
    assert_eq!(partition_lag("1"), Some(0.0));
    assert_eq!(partition_lag("2"), Some(20.0));
    assert_eq!(
        m.value(
            "kafka_consumergroup_partition_committed_offset",
            &[("group", g), ("topic", t), ("partition", "0")]
        ),
        Some(4.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_topic_lag_messages",
            &[("group", g), ("topic", t)]
        ),
        Some(26.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", g)]),
        Some(26.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_members", &[("group", g)]),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_uncommitted_partitions",
            &[("group", g)]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_state", &[("group", g)]),
        Some(1.0)
    );

    assert_eq!(
        common::promtool_check(&m.text),
        "",
        "promtool check metrics on the live exposition"
    );
    // The scrape is served from the buffer rendered after the poll: readiness and health hold.
    assert_eq!(lw.get("/healthz").0, 200);
    assert_eq!(lw.get("/readyz").0, 200);
}

#[test]
fn uncommitted_partitions_are_counted_not_reported_as_lag() {
    let broker = kafka();
    let topic = unique("events");
    let group = unique("partial");
    broker.create_topic(&topic, 4, &[]);
    broker.produce(&topic, 0, 5, None);
    broker.produce(&topic, 3, 7, None);
    broker.commit(&group, &[(&topic, 0, 2)]);

    let lw = Lagwatch::start(&config(
        broker,
        &format!("^{topic}$"),
        &format!("^{group}$"),
        "partition",
    ));
    let (t, g) = (topic.as_str(), group.as_str());
    let m = lw.wait_for(WAIT, "group lag", |m| {
        m.value("kafka_consumergroup_lag_messages", &[("group", g)])
            .is_some()
    });
    assert_eq!(
        m.value(
            "kafka_consumergroup_uncommitted_partitions",
            &[("group", g)]
        ),
        Some(3.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", g)]),
        Some(3.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_partition_lag_messages",
            &[("group", g), ("topic", t), ("partition", "3")]
        ),
        None,
        "a partition without a commit has no lag series"
    );
    // A topic without its own retention.ms reports the broker's default (7 days), which
    // DescribeConfigs returns with the topic's own settings.
    assert_eq!(
        m.value("kafka_topic_retention_seconds", &[("topic", t)]),
        Some(604800.0)
    );
}

#[test]
fn a_group_with_live_members_shows_them_and_its_state() {
    let broker = kafka();
    let topic = unique("live");
    let group = unique("workers");
    broker.create_topic(&topic, 2, &[]);
    broker.produce(&topic, 0, 3, None);

    let _member = broker.member(&group, &topic, None);

    let lw = Lagwatch::start(&config(
        broker,
        &format!("^{topic}$"),
        &format!("^{group}$"),
        "topic",
    ));
    let g = group.as_str();
    let m = lw.wait_for(WAIT, "one stable member", |m| {
        m.value("kafka_consumergroup_members", &[("group", g)]) == Some(1.0)
            && m.value(
                "kafka_consumergroup_state",
                &[("group", g), ("state", "stable")],
            ) == Some(1.0)
    });
    assert_eq!(
        m.sum("kafka_consumergroup_state", &[("group", g)]),
        1.0,
        "one state series per group"
    );
}

/// Requests per poll, measured over several polls from `lagwatch_kafka_requests_total`.
fn requests_per_poll(lw: &Lagwatch) -> f64 {
    let count = |m: &Exposition| {
        (
            m.sum("lagwatch_kafka_requests_total", &[("cluster", "test")]),
            m.value(
                "lagwatch_poll_duration_seconds_count",
                &[("cluster", "test")],
            )
            .unwrap_or(0.0),
        )
    };
    // Let the connections settle (bootstrap, first metadata, coordinator lookups).
    let warm = lw.wait_for(WAIT, "five polls", |m| count(m).1 >= 5.0);
    std::thread::sleep(Duration::from_millis(1500));
    let (r0, p0) = count(&lw.metrics());
    let _ = warm;
    std::thread::sleep(Duration::from_secs(8));
    let (r1, p1) = count(&lw.metrics());
    assert!(p1 > p0, "polls went on");
    (r1 - r0) / (p1 - p0)
}

#[test]
fn requests_per_poll_do_not_grow_with_partitions() {
    let broker = kafka();
    let small = unique("small");
    let large = unique("large");
    let group = unique("reader");
    broker.create_topic(&small, 1, &[]);
    broker.create_topic(&large, 200, &[]);
    broker.produce(&small, 0, 1, None);
    broker.produce(&large, 0, 1, None);
    broker.commit(&group, &[(&small, 0, 1)]);
    broker.commit(&group, &[(&large, 0, 1), (&large, 199, 0)]);

    let per_poll_small = {
        let lw = Lagwatch::start(&config(
            broker,
            &format!("^{small}$"),
            &format!("^{group}$"),
            "partition",
        ));
        requests_per_poll(&lw)
    };
    let per_poll_large = {
        let lw = Lagwatch::start(&config(
            broker,
            &format!("^{large}$"),
            &format!("^{group}$"),
            "partition",
        ));
        lw.wait_for(WAIT, "200 partitions", |m| {
            m.value("kafka_topic_partitions", &[("topic", large.as_str())]) == Some(200.0)
        });
        requests_per_poll(&lw)
    };
    eprintln!(
        "requests per poll: 1 partition {per_poll_small:.2}, 200 partitions {per_poll_large:.2}"
    );
    assert!(
        per_poll_small > 0.0,
        "requests are counted from librdkafka statistics"
    );
    // Metadata, 2 ListOffsets, 2 ListGroups, DescribeGroups, OffsetFetch, and now and then a
    // FindCoordinator or metadata refresh: a handful, the same for 1 or 200 partitions.
    assert!(per_poll_large < 15.0, "{per_poll_large}");
    assert!(
        (per_poll_large - per_poll_small).abs() <= 2.0,
        "1 partition: {per_poll_small}, 200 partitions: {per_poll_large}"
    );
}

#[test]
fn a_broker_outage_is_survived_and_recovered_from_without_restart() {
    // Its own cluster: the test kills the only node.
    let mut broker = KafkaCluster::start(ClusterSpec::default());
    let topic = unique("outage");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 2, None);

    let lw = Lagwatch::start(&config(&broker, ".*", ".*", "topic"));
    lw.wait_for(WAIT, "up", |m| {
        m.value("lagwatch_kafka_up", &[("cluster", "test")]) == Some(1.0)
    });

    broker.kill(1);
    let m = lw.wait_for(WAIT, "up 0 and a metadata error", |m| {
        m.value("lagwatch_kafka_up", &[("cluster", "test")]) == Some(0.0)
            && m.value(
                "lagwatch_poll_errors_total",
                &[("cluster", "test"), ("stage", "metadata")],
            )
            .unwrap_or(0.0)
                + m.value(
                    "lagwatch_poll_errors_total",
                    &[("cluster", "test"), ("stage", "list_offsets")],
                )
                .unwrap_or(0.0)
                >= 1.0
    });
    assert!(m
        .value(
            "lagwatch_last_poll_success_timestamp_seconds",
            &[("cluster", "test")]
        )
        .is_some());
    assert_eq!(lw.get("/healthz").0, 200);
    assert_eq!(
        lw.get("/readyz").0,
        200,
        "a Kafka outage does not make the exporter unready"
    );
    // After 3 poll intervals without success, the cluster's Kafka series are dropped.
    let m = lw.wait_for(WAIT, "stale series dropped", |m| {
        m.value("kafka_topic_partitions", &[("topic", topic.as_str())])
            .is_none()
    });
    assert_eq!(
        m.value("lagwatch_kafka_up", &[("cluster", "test")]),
        Some(0.0)
    );

    // The node comes back on its ports with its data.
    broker.start_node(1);
    let recovered = unique("after");
    broker.create_topic(&recovered, 1, &[]);
    lw.wait_for(WAIT, "recovery", |m| {
        m.value("lagwatch_kafka_up", &[("cluster", "test")]) == Some(1.0)
            && m.value("kafka_topic_partitions", &[("topic", recovered.as_str())]) == Some(1.0)
    });
}

#[test]
fn shards_split_the_groups_and_only_shard_0_reports_topics() {
    let broker = kafka();
    let topic = unique("sharded");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 4, None);
    let prefix = unique("shard");
    let groups: Vec<String> = (0..8).map(|i| format!("{prefix}-g{i}")).collect();
    for g in &groups {
        broker.commit(g, &[(&topic, 0, 1)]);
    }
    let shard = |index: u32| {
        Lagwatch::start(&format!(
            "listen: \"127.0.0.1:0\"\npoll_interval: 1s\nshard: {{ index: {index}, count: 2 }}\nclusters:\n  - name: test\n    bootstrap_servers: \"{}\"\n    groups: {{ include: [\"^{prefix}-\"] }}\n    topics: {{ include: [\"^{topic}$\"] }}\n",
            broker.bootstrap()
        ))
    };
    let (zero, one) = (shard(0), shard(1));
    let owned = |lw: &Lagwatch| -> Vec<String> {
        let m = lw.wait_for(WAIT, "a poll", |m| {
            m.value(
                "lagwatch_poll_duration_seconds_count",
                &[("cluster", "test")],
            )
            .unwrap_or(0.0)
                >= 2.0
        });
        groups
            .iter()
            .filter(|g| {
                m.value("kafka_consumergroup_lag_messages", &[("group", g.as_str())])
                    .is_some()
            })
            .cloned()
            .collect()
    };
    let (a, b) = (owned(&zero), owned(&one));
    assert_eq!(
        a.len() + b.len(),
        groups.len(),
        "every group in exactly one shard: {a:?} {b:?}"
    );
    assert!(a.iter().all(|g| !b.contains(g)));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "8 groups over 2 shards: {a:?} {b:?}"
    );
    assert_eq!(
        zero.metrics()
            .value("kafka_topic_partitions", &[("topic", topic.as_str())]),
        Some(1.0)
    );
    assert_eq!(
        one.metrics()
            .value("kafka_topic_partitions", &[("topic", topic.as_str())]),
        None
    );
}

#[test]
fn an_idle_timestamp_reader_keeps_no_statistics_waiting() {
    use lagwatch::config::{Config, ShardConfig};
    use lagwatch::kafka::{ClusterCollector, CollectorSettings, READER_IDLE_POLLS};
    use lagwatch::model::analytics::TimestampRead;

    let broker = kafka();
    let topic = unique("idle-reader");
    broker.create_topic(&topic, 1, &[]);
    // A minute old: older records could be gone to retention before they are read.
    let written = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 60_000;
    broker.produce(&topic, 0, 5, Some(written));
    let config = Config::from_yaml(&common::one_cluster_config(
        broker,
        &topic,
        "none",
        "poll_timeout: 10s",
    ))
    .expect("configuration");
    let mut collector = ClusterCollector::new(CollectorSettings {
        cluster: config.clusters[0].clone(),
        shard: ShardConfig::default(),
        offset_fetch_concurrency: 4,
        config_refresh: Duration::from_secs(300),
    })
    .expect("collector");
    // 1. A poll with one read: the reader exists and reads the record's own timestamp.
    assert!(collector.poll(&collector.deadline()).snapshot.is_some());
    let read = TimestampRead {
        topic: topic.as_str().into(),
        partition: 0,
        offset: 2,
    };
    let mut errors = Vec::new();
    let got = collector.read_timestamps(
        std::slice::from_ref(&read),
        &collector.deadline(),
        &mut errors,
    );
    assert_eq!(got.timestamps, vec![(read.clone(), Some(written))]);
    assert!(errors.is_empty(), "{errors:?}");
    // 2. 4 s of polls without reads: librdkafka queues a statistics report a second on each
    // handle; every poll serves the idle reader's, so none is left waiting.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        assert!(collector.poll(&collector.deadline()).snapshot.is_some());
        let idle = collector.read_timestamps(&[], &collector.deadline(), &mut errors);
        assert!(idle.timestamps.is_empty());
    }
    let waiting = collector.events_waiting();
    assert!(waiting <= 1, "{waiting} events waiting");
    assert!(errors.is_empty(), "{errors:?}");
    // 3. The reader closes after READER_IDLE_POLLS polls without a read, and a read opens it
    // again.
    assert!(collector.reader_open());
    for _ in 8..READER_IDLE_POLLS {
        collector.read_timestamps(&[], &collector.deadline(), &mut errors);
    }
    assert!(!collector.reader_open());
    let again = collector.read_timestamps(
        std::slice::from_ref(&read),
        &collector.deadline(),
        &mut errors,
    );
    assert_eq!(again.timestamps, vec![(read, Some(written))]);
    assert!(collector.reader_open());
    assert!(errors.is_empty(), "{errors:?}");
}
