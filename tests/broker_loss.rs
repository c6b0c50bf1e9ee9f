//! Broker loss on a 3-node Apache Kafka cluster: one node killed (only its partitions go
//! stale, groups whose coordinator moved are still read), every node killed (up 0 within two
//! polls, the exporter keeps serving), and ten kill/restart cycles (no poll lost, memory flat).
//!
//! Topics have replication factor 1 with partition p on node p % 3 + 1, so every node leads
//! some partitions and losing one node loses exactly its partitions; `__consumer_offsets` is
//! replicated to all three nodes, so group coordinators move to a surviving node.
//!
//! lagwatch polls every 5 s. The waits have generous deadlines (the test machines are small and
//! shared); detection and recovery are asserted in polls, counted by
//! `lagwatch_poll_duration_seconds_count`, and printed in polls and seconds. The cluster fences
//! a dead node after 4 s (`broker.session.timeout.ms` of the test clusters), so a killed node's
//! partitions lose their leader within the first poll after the kill.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{block_on, unique, ClusterSpec, Exposition, KafkaCluster, LagwatchProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

const POLL: Duration = Duration::from_secs(5);
/// Deadline of every wait: far beyond what the assertions on polls allow, so a slow shared
/// machine fails an assertion with a measured value rather than a timeout.
const WAIT: Duration = Duration::from_secs(90);
const NODES: i32 = 3;
/// Partitions of the spread topic: two per node.
const PARTITIONS: i32 = 6;

/// Each test kills nodes of its own 3-node cluster; one at a time keeps the shared 2 cores from
/// running three such clusters at once.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn leader_of(partition: i32) -> i32 {
    partition % NODES + 1
}

fn config(cluster: &KafkaCluster, topic: &str, groups: &str) -> String {
    format!(
        r#"poll_interval: 5s
granularity: partition
clusters:
  - name: test
    bootstrap_servers: "{}"
    groups: {{ include: ["^{groups}"] }}
    topics: {{ include: ["^{topic}$"] }}
"#,
        cluster.bootstrap()
    )
}

/// Creates `topic` with replication factor 1 and partition p on node p % 3 + 1.
fn create_spread_topic(cluster: &KafkaCluster, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().expect("admin");
    let assignment: Vec<Vec<i32>> = (0..PARTITIONS).map(|p| vec![leader_of(p)]).collect();
    let replicas: Vec<&[i32]> = assignment.iter().map(Vec::as_slice).collect();
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Variable(&replicas));
    let results = block_on(admin.create_topics(
        &[new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// The node leading the `__consumer_offsets` partition of `group`: Kafka places a group on
/// partition `abs(hashCode(group)) % partitions` (Java's `String.hashCode`, `Utils.abs`).
fn coordinator_of(cluster: &KafkaCluster, group: &str) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    let consumer: BaseConsumer = cluster.client_config().create().expect("client");
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = consumer
            .fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                let t = m.topics().first()?;
                let n = t.partitions().len() as i32;
                (n > 0).then(|| {
                    t.partitions()
                        .iter()
                        .find(|p| p.id() == abs % n)
                        .map(|p| p.leader())
                })?
            });
        match leader {
            Some(id) if id > 0 => return id,
            _ => {
                assert!(Instant::now() < deadline, "no leader of {group}'s offsets");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn up(m: &Exposition) -> Option<f64> {
    m.value("lagwatch_kafka_up", &[("cluster", "test")])
}

fn latest(m: &Exposition, topic: &str, partition: i32) -> Option<f64> {
    m.value(
        "kafka_partition_latest_offset",
        &[("topic", topic), ("partition", &partition.to_string())],
    )
}

fn list_offsets_errors(m: &Exposition) -> f64 {
    m.value(
        "lagwatch_poll_errors_total",
        &[("cluster", "test"), ("stage", "list_offsets")],
    )
    .unwrap_or(0.0)
}

/// Resident memory of a process, in KiB, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// What a wait saw: how long it took, and in how many polls.
struct Measured {
    seconds: f64,
    polls: f64,
    m: Exposition,
}

/// Waits for `check`, asserting on every exposition seen meanwhile with `always`; measures
/// the time and the polls it took from `since` / `polls_before`.
fn measure(
    lw: &LagwatchProcess,
    what: &str,
    since: Instant,
    polls_before: f64,
    always: impl Fn(&Exposition),
    check: impl Fn(&Exposition) -> bool,
) -> Measured {
    let m = lw.wait_for(WAIT, what, |m| {
        always(m);
        check(m)
    });
    let measured = Measured {
        seconds: since.elapsed().as_secs_f64(),
        polls: m.polls() - polls_before,
        m,
    };
    eprintln!(
        "broker_loss: {what}: {:.1} s, {} polls",
        measured.seconds, measured.polls
    );
    measured
}

#[test]
fn losing_one_node_costs_only_its_partitions_and_groups_move_with_their_coordinator() {
    let _serial = serial();
    let mut cluster = KafkaCluster::start(ClusterSpec {
        nodes: 3,
        ..ClusterSpec::default()
    });
    let topic = unique("spread");
    create_spread_topic(&cluster, &topic);
    for p in 0..PARTITIONS {
        cluster.produce(&topic, p, 10, None);
    }
    let prefix = unique("loss");
    let group = format!("{prefix}-moved");
    let all: Vec<(&str, i32, i64)> = (0..PARTITIONS).map(|p| (topic.as_str(), p, 4)).collect();
    cluster.commit(&group, &all);
    // The node to kill is the group's coordinator, so the group must be found on another node.
    let victim = coordinator_of(&cluster, &group);
    let victim_label = victim.to_string();
    let (lost, kept): (Vec<i32>, Vec<i32>) = (0..PARTITIONS).partition(|&p| leader_of(p) == victim);

    let lw = LagwatchProcess::start(&config(&cluster, &topic, &prefix));
    let t = topic.as_str();
    let g = group.as_str();
    let m = lw.wait_for(WAIT, "every partition and the group's lag", |m| {
        up(m) == Some(1.0)
            && (0..PARTITIONS).all(|p| latest(m, t, p) == Some(10.0))
            && m.value("kafka_consumergroup_lag_messages", &[("group", g)]) == Some(36.0)
    });
    let errors_before = list_offsets_errors(&m);
    let polls_before = m.polls();

    cluster.kill(victim as usize);
    let killed = Instant::now();
    let detected = measure(
        &lw,
        "one node lost: its partitions gone",
        killed,
        polls_before,
        |m| assert_eq!(up(m), Some(1.0), "one node lost keeps the cluster up"),
        |m| {
            lost.iter().all(|&p| latest(m, t, p).is_none())
                && kept.iter().all(|&p| latest(m, t, p).is_some())
                && list_offsets_errors(m) > errors_before
        },
    );
    assert!(
        detected.polls <= 2.0,
        "one node lost seen after {} polls ({:.1} s)",
        detected.polls,
        detected.seconds
    );
    assert_eq!(
        detected.m.value("kafka_topic_partitions", &[("topic", t)]),
        Some(kept.len() as f64),
        "only the lost node's partitions are missing"
    );

    // The other nodes' partitions get new records: their watermarks stay fresh.
    for &p in &kept {
        cluster.produce(&topic, p, 5, None);
    }
    let produced = Instant::now();
    let polls_now = lw.metrics().polls();
    let fresh = measure(
        &lw,
        "one node lost: the others' new records",
        produced,
        polls_now,
        |m| assert_eq!(up(m), Some(1.0), "one node lost keeps the cluster up"),
        |m| kept.iter().all(|&p| latest(m, t, p) == Some(15.0)),
    );
    assert!(
        fresh.polls <= 2.0,
        "new records seen after {} polls ({:.1} s)",
        fresh.polls,
        fresh.seconds
    );

    // The group's coordinator moved to a surviving node: a new commit there is read.
    let moved: Vec<(&str, i32, i64)> = kept.iter().map(|&p| (t, p, 7)).collect();
    cluster.commit(&group, &moved);
    let expected_lag = (kept.len() as i64 * (15 - 7)) as f64;
    let moved_at = Instant::now();
    let polls_now = lw.metrics().polls();
    measure(
        &lw,
        "the group read from its new coordinator",
        moved_at,
        polls_now,
        |m| assert_eq!(up(m), Some(1.0)),
        |m| {
            m.value("kafka_consumergroup_lag_messages", &[("group", g)]) == Some(expected_lag)
                && kept.iter().all(|&p| {
                    m.value(
                        "kafka_consumergroup_partition_committed_offset",
                        &[("group", g), ("topic", t), ("partition", &p.to_string())],
                    ) == Some(7.0)
                })
        },
    );
    let log = lw.log_text();
    let named = format!("\"broker\":\"node {victim_label}");
    assert!(
        log.lines()
            .any(|l| l.contains("\"stage\":\"list_offsets\"") && l.contains(&named)),
        "a list_offsets failure logged with {named}:\n{log}"
    );

    cluster.start_node(victim as usize);
    let restarted = Instant::now();
    let polls_now = lw.metrics().polls();
    let recovered = measure(
        &lw,
        "node back: every partition",
        restarted,
        polls_now,
        |_| {},
        |m| {
            up(m) == Some(1.0)
                && (0..PARTITIONS).all(|p| latest(m, t, p).is_some())
                && m.value("kafka_topic_partitions", &[("topic", t)]) == Some(PARTITIONS as f64)
        },
    );
    assert!(
        recovered.polls <= 2.0,
        "full data {} polls ({:.1} s) after the node served again",
        recovered.polls,
        recovered.seconds
    );
    assert_polls_bounded(&lw);
}

/// Starts a 3-node cluster with the spread topic (10 records per partition) and lagwatch on it;
/// returns once lagwatch reports every partition.
fn spread_cluster() -> (KafkaCluster, String, LagwatchProcess) {
    let cluster = KafkaCluster::start(ClusterSpec {
        nodes: 3,
        ..ClusterSpec::default()
    });
    let topic = unique("spread");
    create_spread_topic(&cluster, &topic);
    for p in 0..PARTITIONS {
        cluster.produce(&topic, p, 10, None);
    }
    let lw = LagwatchProcess::start(&config(&cluster, &topic, &unique("none")));
    let t = topic.as_str();
    lw.wait_for(WAIT, "every partition", |m| {
        up(m) == Some(1.0) && (0..PARTITIONS).all(|p| latest(m, t, p) == Some(10.0))
    });
    (cluster, topic, lw)
}

/// Every poll ended within its deadline (`poll_timeout`, the 5 s poll interval) plus the
/// grace of the call in flight: none reached the next histogram bucket, 10 s. Without the
/// deadline a poll right after a node died waited a call timeout per stage, 15–20 s.
fn assert_polls_bounded(lw: &LagwatchProcess) {
    let m = lw.metrics();
    eprintln!(
        "broker_loss: {} polls, {} slower than 5 s, {} slower than 10 s",
        m.polls(),
        m.polls_slower_than(5.0),
        m.polls_slower_than(10.0)
    );
    assert_eq!(
        m.polls_slower_than(10.0),
        0.0,
        "polls slower than 10 s out of {}",
        m.polls()
    );
}

/// The exporter survived: same process, no panic logged.
fn assert_survived(lw: &mut LagwatchProcess) {
    assert!(lw.running(), "lagwatch exited:\n{}", lw.log_text());
    let log = lw.log_text();
    assert!(!log.contains("panicked"), "lagwatch panicked:\n{log}");
}

#[test]
fn losing_every_node_is_seen_within_two_polls_and_the_exporter_keeps_serving() {
    let _serial = serial();
    let (mut cluster, topic, mut lw) = spread_cluster();
    let t = topic.as_str();
    let polls_before = lw.metrics().polls();

    for id in cluster.node_ids() {
        cluster.kill(id);
    }
    let killed = Instant::now();
    // Every exposition of the waits below is a `/metrics` answer (200) during the outage.
    let detected = measure(
        &lw,
        "every node lost: up 0",
        killed,
        polls_before,
        |_| {},
        |m| up(m) == Some(0.0),
    );
    assert!(
        detected.polls <= 2.0,
        "up 0 after {} polls ({:.1} s)",
        detected.polls,
        detected.seconds
    );
    // The outage lasts until the last good data is stale (3 poll intervals): up stays 0 and
    // polls go on, each bounded by the poll's deadline.
    let down_polls = detected.m.polls();
    let stale = measure(
        &lw,
        "every node lost: stale series dropped",
        killed,
        polls_before,
        |m| assert_eq!(up(m), Some(0.0)),
        |m| latest(m, t, 0).is_none() && m.polls() >= down_polls + 2.0,
    );
    assert!(stale
        .m
        .value("kafka_topic_partitions", &[("topic", t)])
        .is_none());
    assert_survived(&mut lw);

    cluster.start_nodes(&cluster.node_ids());
    let restarted = Instant::now();
    let polls_now = lw.metrics().polls();
    let recovered = measure(
        &lw,
        "every node back: every partition",
        restarted,
        polls_now,
        |_| {},
        |m| up(m) == Some(1.0) && (0..PARTITIONS).all(|p| latest(m, t, p) == Some(10.0)),
    );
    assert!(
        recovered.polls <= 2.0,
        "full data {} polls ({:.1} s) after the cluster served again",
        recovered.polls,
        recovered.seconds
    );
    assert_survived(&mut lw);
    assert_polls_bounded(&lw);
}

#[test]
fn ten_kills_and_restarts_lose_no_poll_and_no_memory() {
    let _serial = serial();
    let (mut cluster, topic, mut lw) = spread_cluster();
    let t = topic.as_str();
    let start = lw.metrics();
    let rss_start = rss_kib(lw.pid());
    let began = Instant::now();
    let duration_sum = |m: &Exposition| {
        m.value("lagwatch_poll_duration_seconds_sum", &[("cluster", "test")])
            .unwrap_or(0.0)
    };

    for cycle in 0..10 {
        // A different node each time: every node's partitions and coordinators move.
        let victim = cycle % NODES + 1;
        // Restarted right away: the node's start-up (seconds of JVM and KRaft catch-up) is the
        // outage lagwatch polls through; waiting for its detection too would double the cycle.
        cluster.kill(victim as usize);
        cluster.start_node(victim as usize);
        let restarted = Instant::now();
        let polls_now = lw.metrics().polls();
        measure(
            &lw,
            &format!("cycle {cycle}: node {victim} back"),
            restarted,
            polls_now,
            |_| {},
            |m| up(m) == Some(1.0) && (0..PARTITIONS).all(|p| latest(m, t, p) == Some(10.0)),
        );
    }

    let end = lw.metrics();
    let elapsed = began.elapsed().as_secs_f64();
    let rss_end = rss_kib(lw.pid());
    let polls_run = end.polls() - start.polls();
    let busy = duration_sum(&end) - duration_sum(&start);
    eprintln!(
        "broker_loss: 10 cycles in {elapsed:.1} s: {polls_run} polls ({busy:.1} s polling); \
         RSS {rss_start} KiB at the start, {rss_end} KiB at the end"
    );
    // A tick is only ever delayed by a poll still running (each poll is bounded by its
    // deadline), so elapsed <= polls * interval + time spent polling; one poll of slack for
    // each end of the window.
    let expected = (elapsed - busy) / POLL.as_secs_f64() - 2.0;
    assert!(
        polls_run >= expected,
        "{polls_run} polls in {elapsed:.1} s ({busy:.1} s polling): polls were lost"
    );
    // lagwatch's own state is bounded by the series it serves (the same before and after);
    // librdkafka's buffers and broker threads are reused across reconnects. 20 MiB is far above
    // allocator noise and a leak of even 2 MiB per cycle would exceed it.
    let growth_kib = rss_end.saturating_sub(rss_start);
    assert!(
        growth_kib < 20 * 1024,
        "RSS grew by {growth_kib} KiB over 10 cycles ({rss_start} -> {rss_end} KiB)"
    );
    assert!(
        list_offsets_errors(&end) > list_offsets_errors(&start),
        "the outages were seen as list_offsets errors"
    );
    assert_survived(&mut lw);
    assert_polls_bounded(&lw);
}
