//! Demo workload: keeps consumer groups in known conditions against one or two brokers, for the
//! demo and the end-to-end tests.
//!
//! On `--memory BOOTSTRAP` (a broker with group state): topic `demo-orders` (3 partitions) gets
//! 10 records/s; `demo-healthy` consumes everything; `demo-lagging` consumes 2 records/s and falls
//! behind; `demo-stalled` has a live member but never commits past its first commit;
//! `demo-rewinding` (no members) commits forward and every 20 s moves its commit back 5 records.
//! On `--sqlite BOOTSTRAP` (a broker that runs retention): topic `demo-short-retention` keeps
//! records 2 minutes and `demo-evicting` stays at the start, so retention deletes what it has not read.
//!
//! Every record is produced in its own batch (`linger.ms=0`, `batch.num.messages=1`).
//!
//! Run: `cargo run --example workload -- --memory 127.0.0.1:19092 [--sqlite 127.0.0.1:19093]`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
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
    let results = rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .map_err(|e| e.to_string())?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("create topic {t}: {e}")),
        }
    }
    Ok(())
}

/// Produces `per_second` records to `topic`, round-robin over partitions, one per batch.
fn produce(bootstrap: String, topic: &'static str, per_second: u32, stop: Arc<AtomicBool>) {
    let producer: ThreadedProducer<DefaultProducerContext> = match client(&bootstrap)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("enable.idempotence", "false")
        .create()
    {
        Ok(p) => p,
        Err(e) => return eprintln!("producer for {topic}: {e}"),
    };
    let pause = Duration::from_secs(1) / per_second;
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let payload = format!("record {n}");
        let partition = (n % PARTITIONS as u64) as i32;
        let record = BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(&payload);
        if let Err((e, _)) = producer.send(record) {
            eprintln!("produce to {topic}: {e}");
        }
        let _ = producer.flush(Duration::from_secs(5));
        n += 1;
        std::thread::sleep(pause);
    }
}

/// A subscribed group member that reads at most `per_second` records (0: as fast as they come)
/// and commits every second; with `commit` false it commits once, then never again.
fn consume(
    bootstrap: String,
    group: &'static str,
    per_second: u32,
    commit: bool,
    stop: Arc<AtomicBool>,
) {
    let consumer: BaseConsumer = match client(&bootstrap)
        .set("group.id", group)
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
    let mut committed_once = false;
    while !stop.load(Ordering::Relaxed) {
        let message = consumer.poll(Duration::from_millis(100));
        if let Some(Ok(_)) = message {
            if per_second > 0 {
                std::thread::sleep(Duration::from_secs(1) / per_second);
            }
        }
        if last_commit.elapsed() >= Duration::from_secs(1) && (commit || !committed_once) {
            if consumer.commit_consumer_state(CommitMode::Async).is_ok() {
                committed_once = true;
            }
            last_commit = Instant::now();
        }
    }
}

/// Commits offsets for a member-less group, directly.
fn commit_offsets(consumer: &BaseConsumer, topic: &str, offsets: &[i64]) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets.iter().enumerate() {
        let _ = tpl.add_partition_offset(topic, p as i32, Offset::Offset(*o));
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
        eprintln!("commit: {e}");
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

/// `demo-evicting`: committed at the first offsets of the short-retention topic, never moving.
fn evicting(bootstrap: String) {
    match client(&bootstrap)
        .set("group.id", "demo-evicting")
        .set("enable.auto.commit", "false")
        .create::<BaseConsumer>()
    {
        Ok(c) => commit_offsets(&c, SHORT_RETENTION, &[1, 1, 1]),
        Err(e) => eprintln!("evicting group: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(memory) = arg("--memory") else {
        eprintln!("usage: workload --memory BOOTSTRAP [--sqlite BOOTSTRAP]");
        std::process::exit(2);
    };
    let sqlite = arg("--sqlite");
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = create_topic(
        &memory,
        ORDERS,
        &[("retention.ms", "86400000"), ("cleanup.policy", "delete")],
    ) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let mut threads = Vec::new();
    let spawn = |threads: &mut Vec<std::thread::JoinHandle<()>>, f: Box<dyn FnOnce() + Send>| {
        threads.push(std::thread::spawn(f));
    };
    {
        let (b, s) = (memory.clone(), stop.clone());
        spawn(&mut threads, Box::new(move || produce(b, ORDERS, 10, s)));
        let (b, s) = (memory.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || consume(b, "demo-healthy", 0, true, s)),
        );
        let (b, s) = (memory.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || consume(b, "demo-lagging", 2, true, s)),
        );
        let (b, s) = (memory.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || consume(b, "demo-stalled", 1, false, s)),
        );
        let (b, s) = (memory.clone(), stop.clone());
        spawn(&mut threads, Box::new(move || rewind(b, s)));
    }
    if let Some(sqlite) = sqlite {
        match create_topic(
            &sqlite,
            SHORT_RETENTION,
            &[("retention.ms", "120000"), ("cleanup.policy", "delete")],
        ) {
            Ok(()) => {
                let (b, s) = (sqlite.clone(), stop.clone());
                spawn(
                    &mut threads,
                    Box::new(move || produce(b, SHORT_RETENTION, 3, s)),
                );
                evicting(sqlite);
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    println!("workload running (Ctrl-C to stop)");
    for t in threads {
        let _ = t.join();
    }
}
