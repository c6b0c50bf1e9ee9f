//! Per-leader batching, proved on librdkafka's mock cluster (three brokers, leaders spread over
//! them): requests to each broker per poll stay the same whether the topic has 3 partitions or
//! 300, and a leader going down costs only its own partitions, counted as errors.

mod common;

use std::time::Duration;

use common::{unique, Exposition, Lagwatch};
use rdkafka::mocking::MockCluster;

fn config(bootstrap: &str, topic: &str) -> String {
    format!(
        "listen: \"127.0.0.1:0\"\npoll_interval: 1s\ngranularity: partition\nclusters:\n  - name: mock\n    bootstrap_servers: \"{bootstrap}\"\n    topics: {{ include: [\"^{topic}$\"] }}\n"
    )
}

/// Requests per poll to each broker (node ids 1..=3), averaged over several polls.
fn per_broker_per_poll(lw: &Lagwatch) -> Vec<f64> {
    let read = |m: &Exposition| {
        let polls = m
            .value(
                "lagwatch_poll_duration_seconds_count",
                &[("cluster", "mock")],
            )
            .unwrap_or(0.0);
        let brokers: Vec<f64> = ["1", "2", "3"]
            .iter()
            .map(|b| {
                m.value(
                    "lagwatch_kafka_requests_total",
                    &[("cluster", "mock"), ("broker", b)],
                )
                .unwrap_or(0.0)
            })
            .collect();
        (polls, brokers)
    };
    lw.wait_for(Duration::from_secs(60), "four polls", |m| read(m).0 >= 4.0);
    std::thread::sleep(Duration::from_millis(1500));
    let (p0, r0) = read(&lw.metrics());
    std::thread::sleep(Duration::from_secs(8));
    let (p1, r1) = read(&lw.metrics());
    r0.iter()
        .zip(&r1)
        .map(|(a, b)| (b - a) / (p1 - p0))
        .collect()
}

#[test]
fn list_offsets_go_to_each_leader_once_whatever_the_partition_count() {
    let cluster = MockCluster::new(3).expect("mock cluster");
    let bootstrap = cluster.bootstrap_servers();
    let small = unique("small");
    let large = unique("large");
    cluster.create_topic(&small, 3, 1).expect("topic");
    cluster.create_topic(&large, 300, 1).expect("topic");
    // Spread the leaders evenly: partition p on broker p % 3 + 1.
    for (topic, partitions) in [(&small, 3), (&large, 300)] {
        for p in 0..partitions {
            cluster
                .partition_leader(topic, p, Some(p % 3 + 1))
                .expect("leader");
        }
    }

    let small_rates = {
        let lw = Lagwatch::start(&config(&bootstrap, &small));
        per_broker_per_poll(&lw)
    };
    let large_rates = {
        let lw = Lagwatch::start(&config(&bootstrap, &large));
        let m = lw.wait_for(Duration::from_secs(60), "300 partitions", |m| {
            m.value("kafka_topic_partitions", &[("topic", large.as_str())]) == Some(300.0)
        });
        assert_eq!(
            m.value("lagwatch_kafka_up", &[("cluster", "mock")]),
            Some(1.0)
        );
        per_broker_per_poll(&lw)
    };
    eprintln!("requests per poll per broker: 3 partitions {small_rates:?}, 300 partitions {large_rates:?}");
    for (broker, (s, l)) in small_rates.iter().zip(&large_rates).enumerate() {
        // Every broker leads partitions, so each gets its two ListOffsets (earliest, latest).
        assert!(*l >= 2.0, "broker {}: {l}", broker + 1);
        // One request per partition would add about 200 per broker per poll.
        assert!(
            (l - s).abs() <= 2.0,
            "broker {}: 3 partitions {s}, 300 partitions {l}",
            broker + 1
        );
    }
}

#[test]
fn a_leader_going_down_costs_only_its_partitions_and_recovers() {
    let cluster = MockCluster::new(3).expect("mock cluster");
    let topic = unique("spread");
    cluster.create_topic(&topic, 6, 1).expect("topic");
    for p in 0..6 {
        cluster
            .partition_leader(&topic, p, Some(p % 3 + 1))
            .expect("leader");
    }
    let lw = Lagwatch::start(&config(&cluster.bootstrap_servers(), &topic));
    let t = topic.as_str();
    lw.wait_for(Duration::from_secs(60), "up", |m| {
        m.value("kafka_topic_partitions", &[("topic", t)]) == Some(6.0)
    });
    cluster.broker_down(2).expect("broker down");
    lw.wait_for(Duration::from_secs(60), "offsets errors", |m| {
        m.value(
            "lagwatch_poll_errors_total",
            &[("cluster", "mock"), ("stage", "list_offsets")],
        )
        .unwrap_or(0.0)
            > 0.0
    });
    // The partitions led by the live brokers are still reported: one dead leader costs only its
    // own partitions.
    let m = lw.wait_for(
        Duration::from_secs(60),
        "the other leaders' partitions",
        |m| m.value("kafka_topic_partitions", &[("topic", t)]) == Some(4.0),
    );
    assert!(m
        .value(
            "kafka_partition_latest_offset",
            &[("topic", t), ("partition", "1")]
        )
        .is_none());
    assert!(m
        .value(
            "kafka_partition_latest_offset",
            &[("topic", t), ("partition", "0")]
        )
        .is_some());
    cluster.broker_up(2).expect("broker up");
    lw.wait_for(Duration::from_secs(60), "recovered", |m| {
        m.value("lagwatch_kafka_up", &[("cluster", "mock")]) == Some(1.0)
            && m.value("kafka_topic_partitions", &[("topic", t)]) == Some(6.0)
    });
}
