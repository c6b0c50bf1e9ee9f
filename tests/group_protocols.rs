//! Both consumer-group protocols against Apache Kafka: a classic group (JoinGroup/SyncGroup) and
//! a KIP-848 `consumer` group, each with live members that consume and commit. State, member
//! count and lag are exact for both, and a rebalance (a member joining, then one leaving) never
//! moves the lag lagwatch reports away from the committed truth.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use common::{kafka, unique, Exposition, KafkaCluster, Lagwatch};

const WAIT: Duration = Duration::from_secs(120);
const PARTITIONS: i32 = 4;
const PRODUCED: i64 = 40;
/// Per partition, the offset members commit up to and then stop: the group stays behind by a
/// known amount while its members stay alive and keep polling.
const CAPS: [i64; PARTITIONS as usize] = [10, 15, 20, 25];

/// Σ (produced − committed) once every member committed up to its partition's cap.
fn true_lag() -> i64 {
    CAPS.iter().map(|cap| PRODUCED - cap).sum()
}

/// A live member: subscribed, polling on its own thread, committing each record it reads below
/// the cap of its partition; leaves the group (closes the consumer) when dropped.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn worker(broker: &KafkaCluster, group: &str, topic: &str, protocol: &str) -> Worker {
    let mut config = broker.client_config();
    config
        .set("group.id", group)
        .set("group.protocol", protocol)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if protocol == "classic" {
        // A member that left is noticed through LeaveGroup; a short session bounds the wait if
        // the leave is lost.
        config.set("session.timeout.ms", "10000");
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(record)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let (partition, offset) = (record.partition(), record.offset());
                let cap = CAPS[usize::try_from(partition).expect("partition")];
                if offset >= cap {
                    continue;
                }
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(record.topic(), partition, Offset::Offset(offset + 1))
                    .expect("tpl");
                // A commit refused mid-rebalance is harmless: the partition's next owner reads
                // from the last commit that succeeded and commits the same records again.
                let _ = consumer.commit(&tpl, CommitMode::Sync);
            }
            // Dropping the consumer closes it, which leaves the group.
        })
    };
    Worker {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one scrape says about the group.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    poll: Option<f64>,
    lag: Option<f64>,
    members: Option<f64>,
    state: Vec<String>,
}

fn sample(m: &Exposition, group: &str) -> Sample {
    let state = m
        .samples
        .iter()
        .filter(|(series, v)| {
            series.starts_with("kafka_consumergroup_state{")
                && series.contains(&format!("group=\"{group}\""))
                && **v == 1.0
        })
        .filter_map(|(series, _)| {
            let (_, rest) = series.split_once("state=\"")?;
            Some(rest.split('"').next()?.to_string())
        })
        .collect();
    Sample {
        poll: m.value("lagwatch_last_poll_success_timestamp_seconds", &[]),
        lag: m.value("kafka_consumergroup_lag_messages", &[("group", group)]),
        members: m.value("kafka_consumergroup_members", &[("group", group)]),
        state,
    }
}

fn settled(s: &Sample, members: f64) -> bool {
    s.lag == Some(true_lag() as f64)
        && s.members == Some(members)
        && s.state == ["stable".to_string()]
}

/// Scrapes every 200 ms (several times per 1 s poll) until the group has settled at `members`
/// stable members with the true lag for three consecutive polls; asserts on every scrape that the
/// lag series is present and exactly the committed truth (the committed offsets do not move: a
/// partition's new owner starts at the cap and commits nothing), so neither a spike towards the
/// head nor a drop to 0 can hide between polls. Returns the distinct samples seen.
fn through_rebalance(lw: &Lagwatch, group: &str, members: f64, what: &str) -> Vec<Sample> {
    let deadline = Instant::now() + WAIT;
    let mut seen: Vec<Sample> = Vec::new();
    let mut settled_polls = 0;
    loop {
        let s = sample(&lw.metrics(), group);
        assert_eq!(
            s.lag,
            Some(true_lag() as f64),
            "{what}: lag left the truth ({}); samples so far: {seen:#?}",
            true_lag()
        );
        // The pitfall of KIP-848 groups read with the classic API: Dead with 0 members. Between
        // the two member counts the group never has fewer than 2 members nor another state
        // count than one.
        assert!(
            s.members.is_some_and(|n| n >= 2.0)
                && s.state.len() == 1
                && !s.state.contains(&"dead".to_string()),
            "{what}: {s:?}; samples so far: {seen:#?}"
        );
        if seen.last().map(|last| last.poll) != Some(s.poll) {
            settled_polls = if settled(&s, members) {
                settled_polls + 1
            } else {
                0
            };
            seen.push(s);
            if settled_polls >= 3 {
                return seen;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not settled at {members} stable members after {WAIT:?}: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn group_is_exact_through_rebalances(protocol: &str) {
    let broker = kafka();
    let topic = unique(&format!("proto-{protocol}"));
    let group = unique(&format!("group-{protocol}"));
    broker.create_topic(&topic, PARTITIONS, &[]);
    for p in 0..PARTITIONS {
        broker.produce(&topic, p, PRODUCED as usize, None);
    }

    let first = worker(broker, &group, &topic, protocol);
    let second = worker(broker, &group, &topic, protocol);

    let lw = Lagwatch::start(&common::one_cluster_config(broker, &topic, &group, ""));
    let g = group.as_str();
    let m = lw.wait_for(WAIT, "2 stable members, every cap committed", |m| {
        settled(&sample(m, g), 2.0)
    });
    for (p, cap) in CAPS.iter().enumerate() {
        let p = p.to_string();
        assert_eq!(
            m.value(
                "kafka_consumergroup_partition_committed_offset",
                &[("group", g), ("partition", &p)]
            ),
            Some(*cap as f64),
            "{protocol} partition {p}"
        );
        assert_eq!(
            m.value(
                "kafka_consumergroup_partition_lag_messages",
                &[("group", g), ("partition", &p)]
            ),
            Some((PRODUCED - cap) as f64),
            "{protocol} partition {p}"
        );
    }
    assert_eq!(
        m.sum("kafka_consumergroup_state", &[("group", g)]),
        1.0,
        "{protocol}: one state series"
    );
    // The group's type is Kafka's name for its protocol, on the group-level series only.
    for family in [
        "kafka_consumergroup_state",
        "kafka_consumergroup_members",
        "kafka_consumergroup_lag_messages",
        "kafka_consumergroup_status",
    ] {
        assert_eq!(
            m.sum(family, &[("group", g), ("group_type", protocol)]),
            m.sum(family, &[("group", g)]),
            "{protocol}: {family} labelled group_type={protocol}"
        );
    }
    assert_eq!(
        m.value(
            "kafka_consumergroup_members",
            &[("group", g), ("group_type", protocol)]
        ),
        Some(2.0)
    );
    assert!(!m.text.contains(&format!(
        "kafka_consumergroup_partition_lag_messages{{cluster=\"test\",group=\"{g}\",group_type"
    )));

    let third = worker(broker, &group, &topic, protocol);
    let joined = through_rebalance(&lw, g, 3.0, &format!("{protocol}: a third member joins"));
    assert!(joined.iter().any(|s| s.members == Some(3.0)), "{joined:#?}");

    drop(first);
    let left = through_rebalance(&lw, g, 2.0, &format!("{protocol}: a member leaves"));
    eprintln!(
        "{protocol}: {} polls while joining, {} while leaving; states seen: {:?}",
        joined.len(),
        left.len(),
        joined
            .iter()
            .chain(&left)
            .map(|s| (s.members, s.state.clone()))
            .collect::<Vec<_>>()
    );
    // A KIP-848 group is described with ConsumerGroupDescribe: every state it passed through
    // is the broker's own (stable, reconciling, assigning, ...), never `unknown`.
    if protocol == "consumer" {
        for s in joined.iter().chain(&left) {
            assert!(
                !s.state.contains(&"unknown".to_string()),
                "{protocol}: {s:?}"
            );
        }
    }
    drop((second, third));
}

#[test]
fn a_classic_group_is_exact_through_rebalances() {
    group_is_exact_through_rebalances("classic");
}

#[test]
fn a_kip_848_consumer_group_is_exact_through_rebalances() {
    group_is_exact_through_rebalances("consumer");
}
