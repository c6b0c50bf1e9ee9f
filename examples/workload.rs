//! Demo workload: keeps consumer groups of one Apache Kafka cluster in known conditions, for the
//! demo and the end-to-end tests.
//!
//! - Topic `demo-orders` (3 partitions, 1-day retention) gets 10 records/s.
//!   - `demo-healthy` consumes everything and commits once it has caught up;
//!   - `demo-consumer-protocol` does the same as a KIP-848 (`consumer`-type) group;
//!   - `demo-lagging` consumes 2 records/s and falls further behind every second;
//!   - `demo-stalled` has a live member that commits once, then never again (a poison message);
//!   - `demo-rewinding` (no members, like consumers using `assign()`) commits 30 records behind
//!     the head and every 20 s moves its commits back 5 records.
//! - Topic `demo-short-retention` (3 partitions) keeps records 30 s and rolls a segment every
//!   5 s, so the broker's retention really deletes closed segments while the demo runs; it gets
//!   3 records/s. `demo-evicting` commits at its first offsets and never moves: it is `evicting`
//!   once its oldest unread record is 3/4 of the retention old, and about 35 s after the start
//!   retention deletes records it has not read (the low watermark passes its commit).
//!
//! Producers batch and compress like applications do (`linger.ms`, lz4): records are sent in
//! bursts once a second, keyed, so each burst leaves as one compressed batch per partition.
//!
//! Run: `cargo run --example workload -- --bootstrap 127.0.0.1:19092`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const ORDERS: &str = "demo-orders";
const SHORT_RETENTION: &str = "demo-short-retention";
const PARTITIONS: i32 = 3;

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "false")
        .set("log_level", "3");
    c
}

fn create_topic(bootstrap: &str, name: &str, configs: &[(&str, &str)]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        client(bootstrap).create().map_err(|e| e.to_string())?;
    let mut topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = rt
        .block_on(admin.create_topics(&[topic], &options))
        .map_err(|e| e.to_string())?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("create topic {t}: {e}")),
        }
    }
    Ok(())
}

/// Produces `per_second` keyed records to `topic` in one burst a second; the producer's linger
/// gathers each burst into one lz4-compressed batch per partition.
fn produce(bootstrap: String, topic: &'static str, per_second: u32, stop: Arc<AtomicBool>) {
    let producer: ThreadedProducer<DefaultProducerContext> = match client(&bootstrap)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("acks", "all")
        .create()
    {
        Ok(p) => p,
        Err(e) => return eprintln!("producer for {topic}: {e}"),
    };
    let mut n: u64 = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..per_second {
            let key = format!("order-{n}");
            let payload = format!("{{\"order\":{n},\"topic\":\"{topic}\"}}");
            let mut record = BaseRecord::<str, str>::to(topic)
                .key(&key)
                .payload(&payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err((e, _)) => {
                        eprintln!("produce to {topic}: {e}");
                        break;
                    }
                }
            }
            n += 1;
        }
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// A subscribed group member that reads at most `per_second` records (0: as fast as they come)
/// and commits what it read; with `commit` false it commits once, then never again.
/// `protocol` is the group protocol: `classic` or `consumer` (KIP-848).
fn consume(
    bootstrap: String,
    group: &'static str,
    protocol: &str,
    per_second: u32,
    commit: bool,
    stop: Arc<AtomicBool>,
) {
    let consumer: BaseConsumer = match client(&bootstrap)
        .set("group.id", group)
        .set("group.protocol", protocol)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("consumer {group}: {e}"),
    };
    if let Err(e) = consumer.subscribe(&[ORDERS]) {
        return eprintln!("subscribe {group}: {e}");
    }
    let mut last_commit = Instant::now();
    let mut uncommitted = false;
    let mut committed_once = false;
    while !stop.load(Ordering::Relaxed) {
        let message = consumer.poll(Duration::from_millis(100));
        if let Some(Ok(_)) = message {
            uncommitted = true;
            if per_second > 0 {
                std::thread::sleep(Duration::from_secs(1) / per_second);
            }
        }
        // Commits once caught up (the poll found nothing new), and at least every second while
        // reading, like a consumer that commits after each batch it processed.
        let due = message.is_none() || last_commit.elapsed() >= Duration::from_secs(1);
        if uncommitted && due && (commit || !committed_once) {
            if consumer.commit_consumer_state(CommitMode::Async).is_ok() {
                committed_once = true;
                uncommitted = false;
            }
            last_commit = Instant::now();
        }
    }
}

/// Commits offsets for a member-less group, directly.
fn commit_offsets(consumer: &BaseConsumer, topic: &str, offsets: &[i64]) -> bool {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets.iter().enumerate() {
        let _ = tpl.add_partition_offset(topic, p as i32, Offset::Offset(*o));
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("commit to {topic}: {e}");
            false
        }
    }
}

/// `demo-rewinding`: follows the head 30 records behind, and every 20 s moves back 5 records.
fn rewind(bootstrap: String, stop: Arc<AtomicBool>) {
    let consumer: BaseConsumer = match client(&bootstrap)
        .set("group.id", "demo-rewinding")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("rewinding group: {e}"),
    };
    let started = Instant::now();
    let mut last_rewind = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut offsets = Vec::new();
        for p in 0..PARTITIONS {
            match consumer.fetch_watermarks(ORDERS, p, Duration::from_secs(5)) {
                Ok((_, high)) => offsets.push((high - 30).max(0)),
                Err(_) => offsets.push(0),
            }
        }
        if last_rewind.elapsed() >= Duration::from_secs(20)
            && started.elapsed() > Duration::from_secs(20)
        {
            for o in &mut offsets {
                *o = (*o - 5).max(0);
            }
            last_rewind = Instant::now();
            commit_offsets(&consumer, ORDERS, &offsets);
            // Stay rewound for a few seconds, so a poll sees it.
            std::thread::sleep(Duration::from_secs(5));
            continue;
        }
        commit_offsets(&consumer, ORDERS, &offsets);
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `demo-evicting`: commits at the first offsets of the short-retention topic (before any record
/// is produced to it) and never moves.
fn evicting(bootstrap: &str) {
    let consumer: BaseConsumer = match client(bootstrap)
        .set("group.id", "demo-evicting")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("evicting group: {e}"),
    };
    // The first commit on a fresh cluster creates the offsets topic: retry until its coordinator
    // answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !commit_offsets(&consumer, SHORT_RETENTION, &[0; PARTITIONS as usize])
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(bootstrap) = args
        .iter()
        .position(|a| a == "--bootstrap")
        .and_then(|i| args.get(i + 1))
        .cloned()
    else {
        eprintln!("usage: workload --bootstrap BOOTSTRAP");
        std::process::exit(2);
    };
    let topics: [(&str, &[(&str, &str)]); 2] = [
        (
            ORDERS,
            &[("retention.ms", "86400000"), ("cleanup.policy", "delete")],
        ),
        // Kafka deletes whole closed segments whose newest record is older than retention.ms:
        // segment.ms rolls one every 5 s (segment.bytes cannot go below 1 MiB, which this topic
        // would take hours to fill).
        (
            SHORT_RETENTION,
            &[
                ("retention.ms", "30000"),
                ("segment.ms", "5000"),
                ("cleanup.policy", "delete"),
            ],
        ),
    ];
    for (name, configs) in topics {
        if let Err(e) = create_topic(&bootstrap, name, configs) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    evicting(&bootstrap);

    let stop = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut spawn = |f: Box<dyn FnOnce(String, Arc<AtomicBool>) + Send>| {
        let (b, s) = (bootstrap.clone(), stop.clone());
        threads.push(std::thread::spawn(move || f(b, s)));
    };
    spawn(Box::new(|b, s| produce(b, ORDERS, 10, s)));
    spawn(Box::new(|b, s| produce(b, SHORT_RETENTION, 3, s)));
    spawn(Box::new(|b, s| {
        consume(b, "demo-healthy", "classic", 0, true, s)
    }));
    spawn(Box::new(|b, s| {
        consume(b, "demo-consumer-protocol", "consumer", 0, true, s)
    }));
    spawn(Box::new(|b, s| {
        consume(b, "demo-lagging", "classic", 2, true, s)
    }));
    spawn(Box::new(|b, s| {
        consume(b, "demo-stalled", "classic", 1, false, s)
    }));
    spawn(Box::new(rewind));
    println!("workload running (Ctrl-C to stop)");
    for t in threads {
        let _ = t.join();
    }
}
