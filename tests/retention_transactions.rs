//! Retention and transactions against a real broker, checked against ground truth: segments
//! deleted by the broker's own retention check, DeleteRecords, and a transactional producer
//! whose commit markers, aborted records and open transaction shape the head (PRODUCT.md §4).

mod common;

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use common::{block_on, kafka, unique, Exposition, KafkaCluster, Lagwatch, LagwatchProcess};

const WAIT: Duration = Duration::from_secs(120);

/// One cluster named `test`, polled every second; `cluster_extra` goes into the cluster's entry
/// (e.g. `isolation`), `extra` at the top level.
fn config(
    broker: &KafkaCluster,
    topic: &str,
    groups: &str,
    extra: &str,
    cluster_extra: &str,
) -> String {
    format!(
        r#"
poll_interval: 1s
granularity: partition
{extra}
clusters:
  - name: test
    bootstrap_servers: "{}"
    groups: {{ include: ["^({groups})$"] }}
    topics: {{ include: ["^{topic}$"] }}
    {cluster_extra}
"#,
        broker.bootstrap()
    )
}

fn partition_value(m: &Exposition, name: &str, group: &str, topic: &str) -> Option<f64> {
    m.value(
        name,
        &[("group", group), ("topic", topic), ("partition", "0")],
    )
}

fn status(m: &Exposition, group: &str, status: &str) -> Option<f64> {
    m.value(
        "kafka_consumergroup_status",
        &[("group", group), ("status", status)],
    )
}

fn read_errors(m: &Exposition) -> f64 {
    m.value(
        "lagwatch_poll_errors_total",
        &[("cluster", "test"), ("stage", "read_timestamps")],
    )
    .unwrap_or(0.0)
}

#[test]
fn real_retention_deletes_a_segment_and_the_countdown_never_runs_late() {
    let broker = kafka();
    let topic = unique("retention-real");
    let group = unique("lagging");
    let retention_s = 120.0;
    // segment.ms = 1 s: the fresh batch below, stamped later than that past the old batch, rolls
    // a new segment; the old segment then holds only the old records, and the broker's retention
    // check (every second in the test cluster) deletes it once its newest record is R old.
    broker.create_topic(
        &topic,
        1,
        &[
            ("retention.ms", "120000"),
            ("cleanup.policy", "delete"),
            ("segment.ms", "1000"),
        ],
    );
    // Offsets 0..10: R − 30 s old, so deleted about 30 s from now; offsets 10..30: fresh.
    let old_ms = common::now_ms() - 90_000;
    broker.produce(&topic, 0, 10, Some(old_ms));
    broker.produce(&topic, 0, 20, None);
    broker.commit(&group, &[(&topic, 0, 3)]);

    let lw = LagwatchProcess::start(&config(broker, &topic, &group, "", ""));
    let (t, g) = (topic.as_str(), group.as_str());
    // Before the deletion: every poll's time to eviction is at most the truth,
    // T(3) + R − (when the poll ran), plus a little for rounding. Clamped at 0 like the metric:
    // past T(3) + R the record may go at the next retention check, which takes up to a second.
    let truth = |m: &Exposition| (old_ms as f64 / 1000.0 + retention_s - m.poll_time()).max(0.0);
    let mut samples = Vec::new();
    let mut last_poll = 0.0;
    let deadline = Instant::now() + WAIT;
    let evicted_m = loop {
        assert!(
            Instant::now() < deadline,
            "retention never deleted the segment"
        );
        let m = lw.metrics();
        let evicted = partition_value(&m, "kafka_consumergroup_partition_evicted_messages", g, t);
        if evicted.unwrap_or(0.0) > 0.0 {
            break m;
        }
        let eviction = partition_value(&m, "kafka_consumergroup_partition_eviction_seconds", g, t);
        if let Some(eviction) = eviction.filter(|_| m.polls() > last_poll) {
            last_poll = m.polls();
            let truth = truth(&m);
            eprintln!("time to eviction: measured {eviction:.2}, truth {truth:.2}");
            assert!(
                eviction <= truth + 0.5,
                "time to eviction {eviction} later than the truth {truth}"
            );
            // Not earlier than the truth by more than an exact read's rounding either.
            assert!(eviction >= truth - 2.0, "{eviction} vs {truth}");
            assert_eq!(
                m.value(
                    "kafka_partition_earliest_offset",
                    &[("topic", t), ("partition", "0")]
                ),
                Some(0.0)
            );
            samples.push(eviction);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        samples.len() >= 3,
        "only {} polls sampled before the deletion",
        samples.len()
    );
    let m = evicted_m;
    assert_eq!(
        m.value(
            "kafka_partition_earliest_offset",
            &[("topic", t), ("partition", "0")]
        ),
        Some(10.0),
        "the old segment (offsets 0..10) is gone, the fresh one stays"
    );
    assert_eq!(
        m.value(
            "kafka_partition_latest_offset",
            &[("topic", t), ("partition", "0")]
        ),
        Some(30.0)
    );
    assert_eq!(
        partition_value(&m, "kafka_consumergroup_partition_evicted_messages", g, t),
        Some(7.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_evicted_messages", &[("group", g)]),
        Some(7.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", g)]),
        Some(20.0)
    );
    assert_eq!(
        partition_value(&m, "kafka_consumergroup_partition_eviction_seconds", g, t),
        Some(0.0)
    );
    assert_eq!(status(&m, g, "evicting"), Some(1.0));

    // A few more polls with the same loss: the event is logged once, not once per poll.
    let seen = m.polls();
    let m = lw.wait_for(WAIT, "three more polls", |m| m.polls() >= seen + 3.0);
    assert_eq!(
        partition_value(&m, "kafka_consumergroup_partition_evicted_messages", g, t),
        Some(7.0)
    );
    let log = lw.log_text();
    let events: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("retention deleted messages the group had not read"))
        .collect();
    assert_eq!(events.len(), 1, "one eviction event:\n{log}");
    let event = events[0];
    for field in [
        g,
        t,
        "\"evicted\":7",
        "\"low_watermark\":10",
        "\"committed\":3",
    ] {
        assert!(event.contains(field), "{field} in {event}");
    }
}

#[test]
fn delete_records_moves_the_low_watermark_and_counts_evicted_messages() {
    let broker = kafka();
    let topic = unique("truncated");
    let behind = unique("behind");
    let ahead = unique("ahead");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 30, None);
    broker.commit(&behind, &[(&topic, 0, 5)]);
    broker.commit(&ahead, &[(&topic, 0, 20)]);
    let lw = Lagwatch::start(&config(
        broker,
        &topic,
        &format!("{behind}|{ahead}"),
        "",
        "",
    ));
    let (t, b, a) = (topic.as_str(), behind.as_str(), ahead.as_str());
    lw.wait_for(WAIT, "both groups", |m| {
        m.value("kafka_consumergroup_lag_messages", &[("group", b)]) == Some(25.0)
            && m.value("kafka_consumergroup_lag_messages", &[("group", a)]) == Some(10.0)
    });

    let admin: AdminClient<DefaultClientContext> = broker.client_config().create().expect("admin");
    let mut before = TopicPartitionList::new();
    before
        .add_partition_offset(&topic, 0, Offset::Offset(12))
        .expect("tpl");
    let deleted = block_on(admin.delete_records(
        &before,
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .expect("delete_records");
    for e in deleted.elements() {
        e.error().expect("records deleted");
    }

    let m = lw.wait_for(WAIT, "the new low watermark", |m| {
        m.value(
            "kafka_partition_earliest_offset",
            &[("topic", t), ("partition", "0")],
        ) == Some(12.0)
    });
    assert_eq!(
        m.value(
            "kafka_partition_latest_offset",
            &[("topic", t), ("partition", "0")]
        ),
        Some(30.0)
    );
    // Offsets 5..12 were deleted before `behind` read them; it can still read 12..30.
    assert_eq!(
        partition_value(&m, "kafka_consumergroup_partition_evicted_messages", b, t),
        Some(7.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", b)]),
        Some(18.0)
    );
    assert_eq!(status(&m, b, "evicting"), Some(1.0));
    // `ahead` (at 20) lost nothing.
    assert_eq!(
        partition_value(&m, "kafka_consumergroup_partition_evicted_messages", a, t),
        Some(0.0)
    );
    assert_eq!(
        m.value("kafka_consumergroup_lag_messages", &[("group", a)]),
        Some(10.0)
    );
    assert_eq!(status(&m, a, "ok"), Some(1.0));
}

/// A transactional producer (`transactional.id`), initialised.
fn transactional_producer(broker: &KafkaCluster) -> ThreadedProducer<DefaultProducerContext> {
    let producer: ThreadedProducer<DefaultProducerContext> = broker
        .client_config()
        .set("transactional.id", unique("txn"))
        // The open transaction must outlive the test's polls.
        .set("transaction.timeout.ms", "600000")
        .set("linger.ms", "5")
        .set("compression.type", common::DEFAULT_CODEC)
        .create()
        .expect("transactional producer");
    // The first transaction on a fresh cluster creates the transaction log: a generous timeout.
    producer
        .init_transactions(Duration::from_secs(60))
        .expect("init_transactions");
    producer
}

fn send_all(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    count: usize,
    timestamp_ms: i64,
) {
    for i in 0..count {
        let payload = format!("transactional record {i}");
        producer
            .send(
                BaseRecord::<(), str>::to(topic)
                    .partition(0)
                    .payload(&payload)
                    .timestamp(timestamp_ms),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// A read_committed consumer of `group` that reads every committed record and commits its
/// `position()` once it has passed `last`, the last committed record's offset; returns the
/// position committed.
fn consume_and_commit_position(broker: &KafkaCluster, group: &str, topic: &str, past: i64) -> i64 {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    // Past the last record, the fetcher moves the position over the commit marker after it
    // (an empty read of the control batch): wait for that, not only for the last record.
    let past = past + 1;
    loop {
        assert!(Instant::now() < deadline, "position never passed {past}");
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(200)) {
            eprintln!("consume {topic}: {e}");
        }
        let position =
            consumer
                .position()
                .ok()
                .and_then(|p| match p.find_partition(topic, 0)?.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
        if let Some(position) = position.filter(|p| *p > past) {
            consumer
                .commit_consumer_state(CommitMode::Sync)
                .expect("commit position");
            return position;
        }
    }
}

#[test]
fn transactions_lag_to_the_last_stable_offset_and_markers_are_no_time_lag() {
    let broker = kafka();
    let topic = unique("transactional");
    let at_position = unique("position");
    let last_read = unique("last-read-plus-one");
    let at_aborted = unique("at-aborted");
    broker.create_topic(&topic, 1, &[]);
    let ten_minutes_ago = common::now_ms() - 10 * 60_000;
    let five_minutes_ago = common::now_ms() - 5 * 60_000;
    let one_minute_ago = common::now_ms() - 60_000;

    let producer = transactional_producer(broker);
    // Offsets 0..5 committed, 5 its commit marker.
    producer.begin_transaction().expect("begin");
    send_all(&producer, &topic, 5, ten_minutes_ago);
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit");
    // Offsets 6..9 aborted, 9 the abort marker.
    producer.begin_transaction().expect("begin");
    send_all(&producer, &topic, 3, ten_minutes_ago);
    producer
        .abort_transaction(Duration::from_secs(30))
        .expect("abort");
    // Offsets 10..14 committed, 14 the commit marker.
    producer.begin_transaction().expect("begin");
    send_all(&producer, &topic, 4, five_minutes_ago);
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit");
    // Offsets 15..17: a transaction left open for the rest of the test, so the last stable
    // offset stays at 15 while the high watermark is 17.
    producer.begin_transaction().expect("begin");
    send_all(&producer, &topic, 2, one_minute_ago);

    // A consumer that commits position(): past the last commit marker, 15.
    let position = consume_and_commit_position(broker, &at_position, &topic, 13);
    assert_eq!(position, 15, "position() after the last committed record");
    // One that commits the last record it read + 1: 14, the commit marker.
    broker.commit(&last_read, &[(&topic, 0, 14)]);
    // One at the first aborted record: under read_committed the next record it reads is 10.
    broker.commit(&at_aborted, &[(&topic, 0, 6)]);
    let groups = format!("{at_position}|{last_read}|{at_aborted}");
    let (t, p, l, x) = (
        topic.as_str(),
        at_position.as_str(),
        last_read.as_str(),
        at_aborted.as_str(),
    );
    let all_known = |m: &Exposition| {
        [p, l, x].iter().all(|g| {
            partition_value(m, "kafka_consumergroup_partition_lag_seconds", g, t).is_some()
        })
    };

    // read_committed: the head is the last stable offset.
    let committed = Lagwatch::start(&config(
        broker,
        t,
        &groups,
        "status: { allowed_lag: 1 }",
        "isolation: read_committed",
    ));
    let first = committed.wait_for(WAIT, "time lag of every group", all_known);
    let m = committed.wait_for(WAIT, "three more polls", |m| {
        m.polls() >= first.polls() + 3.0 && all_known(m)
    });
    assert_eq!(
        m.value(
            "kafka_partition_latest_offset",
            &[("topic", t), ("partition", "0")]
        ),
        Some(15.0),
        "read_committed: the head is the LSO"
    );
    let lag = |g: &str| partition_value(&m, "kafka_consumergroup_partition_lag_messages", g, t);
    let seconds = |g: &str| partition_value(&m, "kafka_consumergroup_partition_lag_seconds", g, t);
    assert_eq!(lag(p), Some(0.0));
    assert_eq!(lag(l), Some(1.0));
    assert_eq!(lag(x), Some(9.0));
    assert_eq!(seconds(p), Some(0.0), "caught up");
    assert_eq!(
        seconds(l),
        Some(0.0),
        "only the commit marker between the commit and the head"
    );
    // The aborted records are skipped: the oldest readable record is offset 10, 5 minutes old.
    let age = m.poll_time() - five_minutes_ago as f64 / 1000.0;
    let measured = seconds(x).unwrap_or(f64::NAN);
    assert!(
        (measured - age).abs() <= 15.0,
        "time lag at the aborted records: {measured}, truth {age}"
    );
    // allowed_lag 1 absorbs the marker.
    assert_eq!(status(&m, l, "ok"), Some(1.0));
    assert_eq!(status(&m, p, "ok"), Some(1.0));
    // No read ever waited at the LSO: no failed read, no slow poll.
    assert_eq!(read_errors(&m), 0.0, "no timestamp read failed");
    assert_eq!(
        m.polls_slower_than(2.5),
        0.0,
        "no poll came near the 5 s call timeout"
    );
    drop(committed);

    // read_uncommitted: the head is the high watermark, and the open transaction's records count.
    let uncommitted = Lagwatch::start(&config(
        broker,
        t,
        &groups,
        "status: { allowed_lag: 1 }",
        "isolation: read_uncommitted",
    ));
    let m = uncommitted.wait_for(WAIT, "time lag of every group", all_known);
    assert_eq!(
        m.value(
            "kafka_partition_latest_offset",
            &[("topic", t), ("partition", "0")]
        ),
        Some(17.0),
        "read_uncommitted: the head is the high watermark"
    );
    let lag = |g: &str| partition_value(&m, "kafka_consumergroup_partition_lag_messages", g, t);
    let seconds = |g: &str| partition_value(&m, "kafka_consumergroup_partition_lag_seconds", g, t);
    assert_eq!(lag(p), Some(2.0));
    assert_eq!(lag(l), Some(3.0));
    assert_eq!(lag(x), Some(11.0));
    // Records of the open transaction, a minute old, are what both can still read.
    let age = m.poll_time() - one_minute_ago as f64 / 1000.0;
    for g in [p, l] {
        let measured = seconds(g).unwrap_or(f64::NAN);
        assert!(
            (measured - age).abs() <= 5.0,
            "{g}: time lag {measured}, truth {age}"
        );
    }
    // read_uncommitted reads the aborted records: offset 6, ten minutes old.
    let age = m.poll_time() - ten_minutes_ago as f64 / 1000.0;
    let measured = seconds(x).unwrap_or(f64::NAN);
    assert!(
        (measured - age).abs() <= 30.0,
        "time lag at the aborted records: {measured}, truth {age}"
    );
    assert_eq!(read_errors(&m), 0.0, "no timestamp read failed");
    drop(uncommitted);
    producer
        .abort_transaction(Duration::from_secs(30))
        .expect("abort the open transaction");
}

#[test]
fn a_commit_on_a_marker_written_while_lagwatch_runs_is_no_time_lag() {
    let broker = kafka();
    let topic = unique("marker-live");
    let group = unique("on-marker");
    broker.create_topic(&topic, 1, &[]);
    let (t, g) = (topic.as_str(), group.as_str());
    let committed = Lagwatch::start(&config(
        broker,
        t,
        g,
        "status: { allowed_lag: 1 }",
        "isolation: read_committed",
    ));
    broker.commit(g, &[(t, 0, 0)]);
    let seen = committed.wait_for(WAIT, "the empty partition and the group", |m| {
        partition_value(m, "kafka_consumergroup_partition_lag_seconds", g, t) == Some(0.0)
    });

    // While lagwatch polls: records 0..3 and their commit marker at 3 (LSO 4), with the
    // records' own timestamps a minute old. The group commits 3, the marker: inside the head
    // history, where interpolation alone would say it is as old as the head's move.
    let producer = transactional_producer(broker);
    producer.begin_transaction().expect("begin");
    send_all(&producer, t, 3, common::now_ms() - 60_000);
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit");
    broker.commit(g, &[(t, 0, 3)]);
    let moved = committed.wait_for(WAIT, "the head past the marker", |m| {
        m.polls() > seen.polls()
            && m.value(
                "kafka_partition_latest_offset",
                &[("topic", t), ("partition", "0")],
            ) == Some(4.0)
            && partition_value(m, "kafka_consumergroup_partition_committed_offset", g, t)
                == Some(3.0)
    });
    // Three polls later the head has stood still; time lag 0 from then on, not a growing age.
    let m = committed.wait_for(WAIT, "three more polls", |m| {
        m.polls() >= moved.polls() + 3.0
    });
    let lag = partition_value(&m, "kafka_consumergroup_partition_lag_messages", g, t);
    let seconds = partition_value(&m, "kafka_consumergroup_partition_lag_seconds", g, t);
    assert_eq!(lag, Some(1.0), "the marker is one message of lag");
    assert_eq!(
        seconds,
        Some(0.0),
        "only the marker between the commit and the head"
    );
    assert_eq!(status(&m, g, "ok"), Some(1.0));
    let later = committed.wait_for(WAIT, "five more polls", |m| {
        m.polls() >= moved.polls() + 5.0
    });
    assert_eq!(
        partition_value(&later, "kafka_consumergroup_partition_lag_seconds", g, t),
        Some(0.0),
        "still 0, no age growing"
    );
    assert_eq!(read_errors(&later), 0.0, "the read found the end, no error");
}
