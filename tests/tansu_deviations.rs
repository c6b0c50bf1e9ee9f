//! Tansu's deviations from Apache Kafka (PRODUCT.md §10) that the test data works around. Each
//! test shows its workaround is still needed: when one fails, Tansu fixed the deviation and the
//! workaround (and this test) can go.

mod common;

use std::time::Duration;

use common::{unique, Broker, Engine};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// Workaround: tests and the workload produce one record per batch.
#[test]
fn memory_engine_high_watermark_counts_batches_not_records() {
    let broker = Broker::start(Engine::Memory);
    let topic = unique("batched");
    broker.create_topic(&topic, 1, &[]);
    let producer: ThreadedProducer<DefaultProducerContext> = broker
        .client_config()
        .set("linger.ms", "500")
        .set("batch.num.messages", "10000")
        .set("enable.idempotence", "false")
        .create()
        .expect("producer");
    for i in 0..300 {
        let payload = format!("r{i}");
        producer
            .send(
                BaseRecord::<(), str>::to(&topic)
                    .partition(0)
                    .payload(&payload),
            )
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let consumer: BaseConsumer = broker.client_config().create().expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert!(high < 300, "Tansu now reports the true high watermark ({high}): one-record batches are no longer needed");

    // The workaround gives the true value.
    let single = unique("single");
    broker.create_topic(&single, 1, &[]);
    broker.produce(&single, 0, 30, None);
    let (_, high) = consumer
        .fetch_watermarks(&single, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!(high, 30);
}

/// Workaround: tests set `retention.ms` and `cleanup.policy` explicitly at topic creation, and
/// lagwatch treats an absent `retention.ms` as unknown.
#[test]
fn describe_configs_returns_only_keys_set_at_creation() {
    let broker = Broker::start(Engine::Memory);
    let bare = unique("bare");
    let explicit = unique("explicit");
    broker.create_topic(&bare, 1, &[]);
    broker.create_topic(
        &explicit,
        1,
        &[("retention.ms", "60000"), ("cleanup.policy", "delete")],
    );
    let consumer: BaseConsumer = broker.client_config().create().expect("consumer");
    let keys = ["retention.ms", "retention.bytes", "cleanup.policy"];
    let (described, errors) = lagwatch::kafka::admin_sys::describe_topic_configs(
        consumer.client(),
        &[bare.clone(), explicit.clone()],
        &keys,
        Duration::from_secs(10),
    )
    .expect("DescribeConfigs");
    assert!(errors.is_empty(), "{errors:?}");
    let entries = |t: &str| {
        described
            .iter()
            .find(|d| d.topic == t)
            .map(|d| d.entries.clone())
            .unwrap_or_else(|| panic!("{t} described"))
    };
    assert!(
        entries(&bare).iter().all(|(k, _)| k != "retention.ms"),
        "Tansu now reports default retention.ms: {:?}",
        entries(&bare)
    );
    let explicit_entries = entries(&explicit);
    assert!(explicit_entries.contains(&("retention.ms".to_string(), "60000".to_string())));
    assert!(explicit_entries.contains(&("cleanup.policy".to_string(), "delete".to_string())));
}

/// Workaround: group state comes from the classic DescribeGroups (what `rd_kafka_list_groups`
/// sends), because Tansu's ListGroups reports every group's state as unknown.
#[test]
fn list_groups_reports_unknown_state_for_a_group_describe_groups_sees_stable() {
    let broker = Broker::start(Engine::Memory);
    let topic = unique("state");
    let group = unique("members");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 1, None);
    let _member = broker.member(&group, &topic, None);
    let admin: BaseConsumer = broker.client_config().create().expect("client");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let described = loop {
        std::thread::sleep(Duration::from_millis(200));
        let list = admin
            .fetch_group_list(Some(&group), Duration::from_secs(5))
            .expect("DescribeGroups");
        if let Some(g) = list
            .groups()
            .iter()
            .find(|g| g.name() == group && g.state() == "Stable" && g.members().len() == 1)
        {
            break g.state().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the group never became stable"
        );
    };
    assert_eq!(described, "Stable");
    let listed =
        lagwatch::kafka::admin_sys::list_consumer_groups(admin.client(), Duration::from_secs(10))
            .expect("ListConsumerGroups");
    let entry = listed
        .groups
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("{group} listed: {listed:?}"));
    assert_eq!(
        entry.state, "Unknown",
        "Tansu's ListGroups now reports state: describing could be skipped"
    );

    // KIP-848's ConsumerGroupDescribe (librdkafka's DescribeConsumerGroups) sees no members of
    // the same group, which DescribeGroups reports with one: classic groups are described the
    // classic way.
    let described = lagwatch::kafka::admin_sys::describe_consumer_groups(
        admin.client(),
        std::slice::from_ref(&group),
        Duration::from_secs(10),
    )
    .expect("DescribeConsumerGroups");
    let members: Vec<u32> = described
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .filter(|d| d.group_id == group)
        .map(|d| d.members)
        .collect();
    eprintln!("DescribeConsumerGroups: {described:?}");
    assert_eq!(members.len(), 1, "{described:?}");
    assert!(
        members.iter().all(|m| *m == 0),
        "Tansu's ConsumerGroupDescribe now reports members ({members:?}): {described:?}"
    );
}
