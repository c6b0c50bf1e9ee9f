//! What lagwatch costs against a real Apache Kafka broker: starts a 1-node test cluster behind
//! the counting proxy, loads topics and groups whose lag is known exactly, runs the release
//! binary on it (on lagwatch's own protocol path, on the librdkafka path, or both) and prints a
//! markdown table beside the targets of PRODUCT.md §11: time to the first complete poll, Kafka
//! requests and bytes per poll by API, CPU per poll, resident memory, scrape time at 1 and 4
//! concurrent scrapers, and whether every group's and partition's lag is the known one.
//!
//! Run: `cargo build --release && cargo run --release --example bench -- --partitions 5000 --groups 200`
//! (`--help` for the rest). The broker and lagwatch stop, and the temporary directories go,
//! however the run ends (an interrupt included).
//!
//! The scenario: topics of `--partitions-per-group` partitions each; group g commits on every
//! partition of topic g mod topics. Partition p of topic t holds `records + (7t + p) mod 5`
//! records; group g commits offset `(g + p) mod (records of p + 1)` there, so every lag from 0 to
//! the partition's records occurs.

#[path = "../tests/common/kafka_cluster.rs"]
mod kafka_cluster;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use kafka_cluster::proxy::Traffic;
use kafka_cluster::{ClusterSpec, KafkaCluster};

/// Kafka's limit on the metadata records of one CreateTopics request: one per topic and one per
/// partition.
const RECORDS_PER_CREATE: usize = 10_000;
/// Quiet time after a poll's render before figures are read: librdkafka reports its requests in
/// its statistics within a second.
const SETTLE: Duration = Duration::from_millis(1500);

#[derive(Parser, Debug)]
#[command(about = "Costs of lagwatch against a real Kafka broker, as a markdown table")]
struct Args {
    /// Partitions in all.
    #[arg(long, default_value_t = 5000)]
    partitions: usize,
    /// Broker nodes of the test cluster; partitions spread over them (replication factor 1).
    /// A broker keeps two files open per partition holding records, so the open-file limit
    /// bounds the partitions of each broker, not of the cluster.
    #[arg(long, default_value_t = 1)]
    brokers: usize,
    /// Consumer groups.
    #[arg(long, default_value_t = 200)]
    groups: usize,
    /// Partitions each group commits on: the size of each topic (divides --partitions).
    #[arg(long, default_value_t = 250)]
    partitions_per_group: usize,
    /// Fewest records per partition (each holds this plus 0 to 4).
    #[arg(long, default_value_t = 10)]
    records: i64,
    /// Polls measured once the start-up timestamp reads are done and their reader closed.
    #[arg(long, default_value_t = 20)]
    polls: u32,
    /// lagwatch's poll_interval, in seconds.
    #[arg(long, default_value_t = 5)]
    poll_interval: u64,
    /// Which path sends the group requests (`group_requests`); `both` measures each in turn.
    #[arg(long, value_enum, default_value_t = Paths::Both)]
    group_requests: Paths,
    /// Scrapes timed per scraper count (at 4 scrapers, this many in all).
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// Once the first path is measured, keep the loaded cluster and that lagwatch running (their
    /// addresses and lagwatch's pid printed) until interrupted, e.g. to profile it.
    #[arg(long)]
    hold: bool,
    /// The lagwatch binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/lagwatch"))]
    lagwatch: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Paths {
    Native,
    Librdkafka,
    Both,
}

impl Paths {
    fn each(self) -> Vec<&'static str> {
        match self {
            Paths::Native => vec!["native"],
            Paths::Librdkafka => vec!["librdkafka"],
            Paths::Both => vec!["native", "librdkafka"],
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Sleeps, or fails when the run was interrupted (so every guard is dropped on the way out).
fn pause(d: Duration) -> Result<(), String> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if STOP.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let handler = on_signal as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    if let Err(e) = run(&args) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let scenario = Scenario::new(args)?;
    if !args.lagwatch.is_file() {
        return Err(format!(
            "no lagwatch binary at {} (cargo build --release)",
            args.lagwatch.display()
        ));
    }
    raise_limits(args.partitions.div_ceil(args.brokers.max(1)));
    let cluster = KafkaCluster::start(ClusterSpec {
        nodes: args.brokers.max(1),
        counted: true,
        ..ClusterSpec::default()
    });
    let loaded = Instant::now();
    scenario.load(&cluster)?;
    eprintln!(
        "bench: {} partitions in {} topics, {} groups ({} group-partitions) loaded in {:.1} s",
        args.partitions,
        scenario.topics,
        args.groups,
        scenario.group_partitions(),
        loaded.elapsed().as_secs_f64()
    );
    let mut results = Vec::new();
    for path in args.group_requests.each() {
        results.push((path, measure(args, &scenario, &cluster, path)?));
    }
    print!("{}", table(args, &scenario, &results));
    Ok(())
}

/// Lets each broker map two index files per partition and keep its files open (two per
/// partition holding records: 9,000 partitions fit in 20,000 open files, 19,000 do not), for
/// `partitions` per broker.
fn raise_limits(partitions: usize) {
    let maps = 2 * partitions + 65_536;
    let current: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if current < maps {
        let set = Command::new("sysctl")
            .arg("-w")
            .arg(format!("vm.max_map_count={maps}"))
            .stdout(Stdio::null())
            .status();
        if !matches!(set, Ok(s) if s.success()) {
            eprintln!("bench: vm.max_map_count is {current}; the broker may need {maps} (sysctl -w as root)");
        }
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads and sets this process's own limit through a valid pointer; the broker
    // inherits it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    if (limit.rlim_max as usize) < 2 * partitions + 1_000 {
        eprintln!(
            "bench: the open-file limit is {}; the broker keeps two files open per partition holding records",
            limit.rlim_max
        );
    }
}

/// Topics, groups and the lag each should show.
struct Scenario {
    topics: usize,
    per_topic: usize,
    groups: usize,
    records: i64,
}

impl Scenario {
    fn new(args: &Args) -> Result<Scenario, String> {
        let per_topic = args.partitions_per_group;
        if per_topic == 0 || args.partitions == 0 || args.partitions % per_topic != 0 {
            return Err(format!(
                "--partitions-per-group ({per_topic}) must divide --partitions ({})",
                args.partitions
            ));
        }
        if args.groups == 0 || args.records < 1 {
            return Err("--groups and --records must be at least 1".into());
        }
        Ok(Scenario {
            topics: args.partitions / per_topic,
            per_topic,
            groups: args.groups,
            records: args.records,
        })
    }

    fn topic(t: usize) -> String {
        format!("bench-t{t:05}")
    }

    fn group(g: usize) -> String {
        format!("bench-g{g:05}")
    }

    /// The topic group `g` commits on.
    fn topic_of(&self, g: usize) -> usize {
        g % self.topics
    }

    fn records(&self, t: usize, p: usize) -> i64 {
        self.records + ((7 * t + p) % 5) as i64
    }

    fn committed(&self, g: usize, t: usize, p: usize) -> i64 {
        (g + p) as i64 % (self.records(t, p) + 1)
    }

    fn lag(&self, g: usize, p: usize) -> i64 {
        let t = self.topic_of(g);
        self.records(t, p) - self.committed(g, t, p)
    }

    fn group_lag(&self, g: usize) -> i64 {
        (0..self.per_topic).map(|p| self.lag(g, p)).sum()
    }

    fn group_partitions(&self) -> usize {
        self.groups * self.per_topic
    }

    /// Creates the topics, fills them and commits every group's offsets.
    fn load(&self, cluster: &KafkaCluster) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = client(cluster)
            .create()
            .map_err(|e| format!("admin client: {e}"))?;
        let per_request = (RECORDS_PER_CREATE / (self.per_topic + 1)).max(1);
        let names: Vec<String> = (0..self.topics).map(Scenario::topic).collect();
        for chunk in names.chunks(per_request) {
            let topics: Vec<NewTopic> = chunk
                .iter()
                .map(|n| NewTopic::new(n, self.per_topic as i32, TopicReplication::Fixed(1)))
                .collect();
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(300)));
            let results = block_on(admin.create_topics(&topics, &options))
                .map_err(|e| format!("create topics: {e}"))?;
            for r in results {
                r.map_err(|(t, e)| format!("create topic {t}: {e}"))?;
            }
        }
        self.produce(cluster)?;
        self.commit(cluster)
    }

    fn produce(&self, cluster: &KafkaCluster) -> Result<(), String> {
        let producer: ThreadedProducer<Deliveries> = client(cluster)
            .set("linger.ms", "50")
            .set("batch.num.messages", "100000")
            .set("queue.buffering.max.messages", "2000000")
            .set("compression.type", "lz4")
            .set("acks", "all")
            .set("message.timeout.ms", "300000")
            .create_with_context(Deliveries::default())
            .map_err(|e| format!("producer: {e}"))?;
        let mut sent = 0u64;
        for t in 0..self.topics {
            let topic = Scenario::topic(t);
            for p in 0..self.per_topic {
                for i in 0..self.records(t, p) {
                    let payload = format!("record {i}");
                    let mut record = BaseRecord::<(), str>::to(&topic)
                        .partition(p as i32)
                        .payload(&payload);
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((e, r)) => {
                                if !matches!(
                                    e,
                                    rdkafka::error::KafkaError::MessageProduction(
                                        rdkafka::types::RDKafkaErrorCode::QueueFull
                                    )
                                ) {
                                    return Err(format!("produce to {topic}/{p}: {e}"));
                                }
                                record = r;
                                pause(Duration::from_millis(10))?;
                            }
                        }
                    }
                    sent += 1;
                }
            }
        }
        producer
            .flush(Duration::from_secs(300))
            .map_err(|e| format!("flush: {e}"))?;
        let context = producer.context();
        let (ok, failed) = (
            context.ok.load(Ordering::Relaxed),
            context.failed.load(Ordering::Relaxed),
        );
        if ok != sent || failed > 0 {
            return Err(format!(
                "{sent} records sent, {ok} acknowledged, {failed} failed"
            ));
        }
        Ok(())
    }

    /// One OffsetCommit per group with all its partitions, from 4 threads.
    fn commit(&self, cluster: &KafkaCluster) -> Result<(), String> {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| -> Result<(), String> {
                        loop {
                            let g = next.fetch_add(1, Ordering::Relaxed);
                            if g >= self.groups {
                                return Ok(());
                            }
                            self.commit_group(cluster, g)?;
                        }
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("commit thread panicked".into()))
            })
        })
    }

    fn commit_group(&self, cluster: &KafkaCluster, g: usize) -> Result<(), String> {
        let group = Scenario::group(g);
        let consumer: BaseConsumer = client(cluster)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("consumer: {e}"))?;
        let t = self.topic_of(g);
        let topic = Scenario::topic(t);
        let mut tpl = TopicPartitionList::with_capacity(self.per_topic);
        for p in 0..self.per_topic {
            tpl.add_partition(&topic, p as i32)
                .set_offset(Offset::Offset(self.committed(g, t, p)))
                .map_err(|e| format!("offset: {e}"))?;
        }
        // The first commits on a fresh cluster create the offsets topic: retried until its
        // coordinator answers.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("bench: commit for {group}: {e}; retrying");
                    pause(Duration::from_millis(500))?;
                }
                Err(e) => return Err(format!("commit for {group}: {e}")),
            }
        }
    }
}

/// Counts the producer's acknowledged and failed records.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.ok
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn client(cluster: &KafkaCluster) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", cluster.bootstrap())
        .set("allow.auto.create.topics", "false")
        .set("log_level", "3");
    c
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A running lagwatch, stopped (SIGTERM, then SIGKILL) and its directory removed when dropped;
/// it also dies with this process.
struct Lagwatch {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Lagwatch {
    fn start(binary: &Path, config: &str) -> Result<Lagwatch, String> {
        let port = kafka_cluster::free_port();
        let dir =
            std::env::temp_dir().join(format!("lagwatch-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join("lagwatch.yaml");
        std::fs::write(&file, format!("listen: \"127.0.0.1:{port}\"\n{config}"))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let log = std::fs::File::create(dir.join("lagwatch.log")).map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; it runs in the forked child only.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = command
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        let mut lagwatch = Lagwatch { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || lagwatch.child.try_wait().ok().flatten().is_some() {
                return Err(format!("lagwatch did not listen: {}", lagwatch.log_tail()));
            }
            pause(Duration::from_millis(20))?;
        }
        Ok(lagwatch)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("lagwatch.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn scrape(&self) -> Result<Scrape, String> {
        scrape(self.port)
    }

    fn metrics(&self) -> Result<Metrics, String> {
        let scraped = self.scrape()?;
        let mut text = String::new();
        if scraped.gzip {
            flate2::read::GzDecoder::new(scraped.body.as_slice())
                .read_to_string(&mut text)
                .map_err(|e| format!("gunzip /metrics: {e}"))?;
        } else {
            text = String::from_utf8_lossy(&scraped.body).into_owned();
        }
        Ok(Metrics {
            text,
            gzip_bytes: scraped.body.len(),
        })
    }
}

impl Drop for Lagwatch {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `/metrics` answer, gzip accepted, and how long it took from connecting to its last byte.
struct Scrape {
    body: Vec<u8>,
    gzip: bool,
    took: Duration,
}

fn scrape(port: u16) -> Result<Scrape, String> {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connect to lagwatch: {e}"))?;
    stream
        .write_all(
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        )
        .map_err(|e| format!("scrape: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("scrape: {e}"))?;
    let took = started.elapsed();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("scrape: no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!("scrape: {}", head.lines().next().unwrap_or("")));
    }
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Ok(Scrape {
        gzip: head.contains("content-encoding: gzip"),
        body,
        took,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("short chunk")?);
        data = data.get(size + 2..).ok_or("short chunk")?;
    }
}

/// An exposition as text.
struct Metrics {
    text: String,
    gzip_bytes: usize,
}

impl Metrics {
    /// Every sample of `name` with its labels.
    fn samples<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (BTreeMap<&'a str, &'a str>, f64)> + 'a {
        self.text.lines().filter_map(move |line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
                let (labels, value) = rest.rsplit_once("} ")?;
                (labels, value)
            } else {
                ("", rest.strip_prefix(' ')?)
            };
            let labels = labels
                .split("\",")
                .filter(|l| !l.is_empty())
                .filter_map(|l| {
                    let (k, v) = l.split_once("=\"")?;
                    Some((k, v.trim_end_matches('"')))
                })
                .collect();
            Some((labels, value.trim().parse::<f64>().ok()?))
        })
    }

    fn sum(&self, name: &str) -> f64 {
        self.samples(name)
            .filter(|(l, _)| l.get("cluster") == Some(&"bench"))
            .map(|(_, v)| v)
            .sum()
    }

    fn polls(&self) -> f64 {
        self.sum("lagwatch_poll_duration_seconds_count")
    }

    fn series(&self) -> usize {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count()
    }

    /// Groups whose `kafka_consumergroup_lag_messages` is served.
    fn groups_served(&self) -> usize {
        self.samples("kafka_consumergroup_lag_messages")
            .filter(|(l, _)| l.get("cluster") == Some(&"bench"))
            .count()
    }

    /// Cumulative buckets (upper bound, count) of a histogram, summed over its series.
    fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (labels, v) in self.samples(name) {
            let Some(le) = labels.get("le") else { continue };
            let bound = if *le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            by_bound.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += v;
        }
        let mut buckets: Vec<(f64, f64)> = by_bound.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// Cumulative CPU time (user + system) of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // Fields 14 (utime) and 15 (stime), counted from 1, are 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / hz
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What one path cost.
struct Measured {
    first_complete_poll: Duration,
    /// From start to no record-timestamp read pending: polls are measured after it.
    reads_drained: Duration,
    polls: f64,
    /// Per poll, by API key, from the proxy.
    traffic: BTreeMap<i16, (f64, f64)>,
    lagwatch_requests: f64,
    cpu: f64,
    rss: f64,
    hwm: f64,
    /// Scrape times in ms (p50, p99) at 1 and 4 scrapers, client side and, when lagwatch
    /// exposes a scrape-duration histogram, its bucket bounds.
    scrapes: [(f64, f64); 2],
    in_process: Option<[(f64, f64); 2]>,
    series: usize,
    plain_bytes: usize,
    gzip_bytes: usize,
    groups_correct: usize,
    partitions_correct: usize,
}

fn measure(
    args: &Args,
    scenario: &Scenario,
    cluster: &KafkaCluster,
    path: &str,
) -> Result<Measured, String> {
    // Every series of every group-partition fits under the series guard (11 partition-level
    // families, the group and topic levels, and lagwatch's own).
    let max_series = scenario.group_partitions() * 16 + 100_000;
    let config = format!(
        r#"poll_interval: {interval}s
granularity: partition
max_series: {max_series}
clusters:
  - name: bench
    bootstrap_servers: "{bootstrap}"
    group_requests: {path}
    groups: {{ include: ["^bench-g"] }}
    topics: {{ include: ["^bench-t"] }}
"#,
        interval = args.poll_interval,
        bootstrap = cluster.bootstrap(),
    );
    let interval = Duration::from_secs(args.poll_interval);
    eprintln!("bench: {path}: starting lagwatch");
    let started = Instant::now();
    let lagwatch = Lagwatch::start(&args.lagwatch, &config)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let first_complete_poll = loop {
        let served = lagwatch.metrics()?.groups_served();
        if served == scenario.groups {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{path}: {served} of {} groups served after 300 s: {}",
                scenario.groups,
                lagwatch.log_tail()
            ));
        }
        pause(Duration::from_millis(100))?;
    };
    eprintln!(
        "bench: {path}: first complete poll after {:.2} s; measuring {} polls",
        first_complete_poll.as_secs_f64(),
        args.polls
    );
    // The steady state: the record-timestamp reads the first polls queue (at most
    // `time_lag.max_reads_per_poll` per poll) are done, and the reader they opened has closed
    // (`READER_IDLE_POLLS` polls without a read), before polls are measured.
    let deadline = Instant::now() + Duration::from_secs(600);
    let reads_drained = loop {
        let pending = lagwatch.metrics()?.sum("lagwatch_timestamp_reads_pending");
        if pending == 0.0 {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{path}: {pending} timestamp reads still pending after 600 s"
            ));
        }
        pause(Duration::from_millis(500))?;
    };
    eprintln!(
        "bench: {path}: timestamp reads done after {:.2} s; waiting {} polls for the idle reader to close",
        reads_drained.as_secs_f64(),
        lagwatch::kafka::READER_IDLE_POLLS
    );
    pause(interval * lagwatch::kafka::READER_IDLE_POLLS)?;
    // Starts on the quiet time after a render, and ends a whole number of poll intervals later
    // (polls tick at a fixed rate), on the same point of the cycle.
    let rendered = lagwatch.metrics()?.polls();
    loop {
        if lagwatch.metrics()?.polls() > rendered {
            break;
        }
        pause(Duration::from_millis(100))?;
    }
    pause(SETTLE)?;
    let before = lagwatch.metrics()?;
    let (traffic0, cpu0) = (cluster.requests.traffic(), cpu_seconds(lagwatch.pid()));
    pause(interval * args.polls)?;
    let (traffic1, cpu1) = (cluster.requests.traffic(), cpu_seconds(lagwatch.pid()));
    let (rss, _) = memory_mib(lagwatch.pid());
    let after = lagwatch.metrics()?;
    let polls = after.polls() - before.polls();
    let per_poll = |a: u64, b: u64| (b - a) as f64 / polls;
    let traffic = traffic1
        .iter()
        .map(|(key, t1)| {
            let t0 = traffic0.get(key).copied().unwrap_or_default();
            let bytes = |t: &Traffic| t.request_bytes + t.response_bytes;
            (
                *key,
                (
                    per_poll(t0.requests, t1.requests),
                    per_poll(bytes(&t0), bytes(t1)),
                ),
            )
        })
        .filter(|(_, (requests, bytes))| *requests > 0.0 || *bytes > 0.0)
        .collect();
    let lagwatch_requests = (after.sum("lagwatch_kafka_requests_total")
        - before.sum("lagwatch_kafka_requests_total"))
        / polls;
    let (groups_correct, partitions_correct) = check_lag(scenario, &after);
    eprintln!("bench: {path}: timing scrapes");
    let histogram = "lagwatch_scrape_duration_seconds_bucket";
    let mut scrapes = [(0.0, 0.0); 2];
    let mut in_process = [(0.0, 0.0); 2];
    let mut has_histogram = true;
    for (i, scrapers) in [1usize, 4].into_iter().enumerate() {
        let buckets0 = lagwatch.metrics()?.buckets(histogram);
        scrapes[i] = time_scrapes(lagwatch.port, scrapers, args.scrapes)?;
        let buckets1 = lagwatch.metrics()?.buckets(histogram);
        match quantiles(&buckets0, &buckets1) {
            Some(q) => in_process[i] = q,
            None => has_histogram = false,
        }
    }
    let (_, hwm) = memory_mib(lagwatch.pid());
    if args.hold {
        eprintln!(
            "bench: {path}: holding until interrupted: lagwatch pid {} on 127.0.0.1:{}, \
             broker {} (proxy), {}",
            lagwatch.pid(),
            lagwatch.port,
            cluster.bootstrap(),
            lagwatch.dir.display()
        );
        while !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(Measured {
        first_complete_poll,
        reads_drained,
        polls,
        traffic,
        lagwatch_requests,
        cpu: (cpu1 - cpu0) / polls,
        rss,
        hwm,
        scrapes,
        in_process: has_histogram.then_some(in_process),
        series: after.series(),
        plain_bytes: after.text.len(),
        gzip_bytes: after.gzip_bytes,
        groups_correct,
        partitions_correct,
    })
}

/// Groups and group-partitions whose served lag is the known one.
fn check_lag(scenario: &Scenario, m: &Metrics) -> (usize, usize) {
    let index = |name: &str, prefix: &str| name.strip_prefix(prefix)?.parse::<usize>().ok();
    let groups = m
        .samples("kafka_consumergroup_lag_messages")
        .filter(|(l, v)| {
            l.get("cluster") == Some(&"bench")
                && l.get("group")
                    .and_then(|g| index(g, "bench-g"))
                    .is_some_and(|g| g < scenario.groups && *v == scenario.group_lag(g) as f64)
        })
        .count();
    let partitions = m
        .samples("kafka_consumergroup_partition_lag_messages")
        .filter(|(l, v)| {
            let (Some(g), Some(t), Some(p)) = (
                l.get("group").and_then(|g| index(g, "bench-g")),
                l.get("topic").and_then(|t| index(t, "bench-t")),
                l.get("partition").and_then(|p| p.parse::<usize>().ok()),
            ) else {
                return false;
            };
            l.get("cluster") == Some(&"bench")
                && g < scenario.groups
                && t == scenario.topic_of(g)
                && p < scenario.per_topic
                && *v == scenario.lag(g, p) as f64
        })
        .count();
    (groups, partitions)
}

/// p50 and p99 in ms of `total` scrapes from `scrapers` threads at once.
fn time_scrapes(port: u16, scrapers: usize, total: usize) -> Result<(f64, f64), String> {
    let each = total.div_ceil(scrapers);
    let mut times: Vec<f64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..scrapers)
            .map(|_| {
                s.spawn(move || -> Result<Vec<f64>, String> {
                    (0..each)
                        .map(|_| scrape(port).map(|r| r.took.as_secs_f64() * 1000.0))
                        .collect()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("scraper panicked".into())))
            .collect::<Result<Vec<Vec<f64>>, String>>()
    })?
    .concat();
    times.sort_by(f64::total_cmp);
    Ok((percentile(&times, 0.50), percentile(&times, 0.99)))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// p50 and p99 in ms of the observations between two readings of a cumulative histogram: the
/// upper bound of the bucket holding each; None without the histogram.
fn quantiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<(f64, f64)> {
    if after.is_empty() {
        return None;
    }
    let count = |b: &[(f64, f64)], bound: f64| {
        b.iter()
            .find(|(le, _)| *le == bound)
            .map_or(0.0, |(_, c)| *c)
    };
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| (*le, c - count(before, *le)))
        .collect();
    let total = deltas.last().map_or(0.0, |(_, c)| *c);
    let at = |q: f64| {
        deltas
            .iter()
            .find(|(_, c)| *c >= q * total)
            .map_or(f64::NAN, |(le, _)| le * 1000.0)
    };
    Some((at(0.50), at(0.99)))
}

/// Kafka API names by key, for the keys lagwatch and librdkafka send.
fn api_name(key: i16) -> String {
    let name = match key {
        0 => "Produce",
        1 => "Fetch",
        2 => "ListOffsets",
        3 => "Metadata",
        8 => "OffsetCommit",
        9 => "OffsetFetch",
        10 => "FindCoordinator",
        11 => "JoinGroup",
        12 => "Heartbeat",
        13 => "LeaveGroup",
        14 => "SyncGroup",
        15 => "DescribeGroups",
        16 => "ListGroups",
        17 => "SaslHandshake",
        18 => "ApiVersions",
        32 => "DescribeConfigs",
        36 => "SaslAuthenticate",
        60 => "DescribeCluster",
        69 => "ConsumerGroupDescribe",
        71 => "GetTelemetrySubscriptions",
        72 => "PushTelemetry",
        76 => "ShareGroupDescribe",
        89 => "StreamsGroupDescribe",
        _ => return format!("API key {key}"),
    };
    name.to_string()
}

fn mib(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
    }
}

/// `value` and whether it meets `target` (at most).
fn against(value: f64, target: f64, shown: String) -> String {
    if value.is_nan() {
        shown
    } else if value <= target {
        format!("{shown} ✓")
    } else {
        format!("{shown} ✗")
    }
}

fn table(args: &Args, scenario: &Scenario, results: &[(&str, Measured)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} partitions ({} topics) on {} broker(s), {} groups × {} partitions = {} group-partitions; granularity partition, {} s polls, {} polls measured\n",
        args.partitions,
        scenario.topics,
        args.brokers.max(1),
        scenario.groups,
        scenario.per_topic,
        scenario.group_partitions(),
        args.poll_interval,
        args.polls,
    );
    let header: String = results.iter().map(|(p, _)| format!(" {p} |")).collect();
    let rule: String = results.iter().map(|_| "---|").collect();
    let _ = writeln!(out, "| figure | target |{header}\n|---|---|{rule}");
    type Row = (&'static str, &'static str, fn(&Measured) -> String);
    let rows: [Row; 13] = [
        ("first complete poll (from start)", "≤ 2 s", |m| {
            let s = m.first_complete_poll.as_secs_f64();
            against(s, 2.0, format!("{s:.2} s"))
        }),
        ("start-up timestamp reads done (from start)", "—", |m| {
            format!("{:.1} s", m.reads_drained.as_secs_f64())
        }),
        ("Kafka requests per poll (broker side)", "≤ 20", |m| {
            let n: f64 = m.traffic.values().map(|(r, _)| r).sum();
            against(n, 20.0, format!("{n:.1}"))
        }),
        ("`lagwatch_kafka_requests_total` per poll", "—", |m| {
            format!("{:.1}", m.lagwatch_requests)
        }),
        ("bytes per poll (requests + responses)", "—", |m| {
            mib(m.traffic.values().map(|(_, b)| b).sum())
        }),
        ("CPU per poll (user + system)", "≤ 0.2 s", |m| {
            against(m.cpu, 0.2, format!("{:.3} s", m.cpu))
        }),
        ("RSS steady (VmRSS)", "≤ 64 MiB", |m| {
            against(m.rss, 64.0, format!("{:.0} MiB", m.rss))
        }),
        ("RSS peak (VmHWM)", "≤ 96 MiB", |m| {
            against(m.hwm, 96.0, format!("{:.0} MiB", m.hwm))
        }),
        (
            "scrape p50 / p99, 1 scraper (client)",
            "p99 ≤ 5 ms",
            |m| {
                let (p50, p99) = m.scrapes[0];
                against(p99, 5.0, format!("{p50:.2} / {p99:.2} ms"))
            },
        ),
        (
            "scrape p50 / p99, 4 scrapers (client)",
            "p99 ≤ 10 ms",
            |m| {
                let (p50, p99) = m.scrapes[1];
                against(p99, 10.0, format!("{p50:.2} / {p99:.2} ms"))
            },
        ),
        (
            "scrape p50 / p99 in process, 1 / 4 scrapers (bucket bounds)",
            "—",
            |m| match m.in_process {
                Some([(a, b), (c, d)]) => format!("≤ {a} / ≤ {b} ms; ≤ {c} / ≤ {d} ms"),
                None => "no `lagwatch_scrape_duration_seconds`".to_string(),
            },
        ),
        ("exposition: series, plain / gzip", "—", |m| {
            format!(
                "{}, {} / {}",
                m.series,
                mib(m.plain_bytes as f64),
                mib(m.gzip_bytes as f64)
            )
        }),
        ("polls measured", "—", |m| format!("{}", m.polls)),
    ];
    for (figure, target, cell) in rows {
        let cells: String = results
            .iter()
            .map(|(_, m)| format!(" {} |", cell(m)))
            .collect();
        let _ = writeln!(out, "| {figure} | {target} |{cells}");
    }
    let cells: String = results
        .iter()
        .map(|(_, m)| {
            format!(
                " groups {}/{}, partitions {}/{} |",
                m.groups_correct,
                scenario.groups,
                m.partitions_correct,
                scenario.group_partitions()
            )
        })
        .collect();
    let _ = writeln!(out, "| lag correct | all |{cells}");
    // Per API: requests and bytes per poll on each path.
    let keys: std::collections::BTreeSet<i16> = results
        .iter()
        .flat_map(|(_, m)| m.traffic.keys().copied())
        .collect();
    let header: String = results
        .iter()
        .map(|(p, _)| format!(" {p}: requests | {p}: bytes |"))
        .collect();
    let rule: String = results.iter().map(|_| "---|---|").collect();
    let _ = writeln!(
        out,
        "\nPer poll by API (broker side):\n\n| API |{header}\n|---|{rule}"
    );
    for key in keys {
        let cells: String = results
            .iter()
            .map(|(_, m)| match m.traffic.get(&key) {
                Some((r, b)) => format!(" {r:.1} | {} |", mib(*b)),
                None => " 0 | — |".to_string(),
            })
            .collect();
        let _ = writeln!(out, "| {} |{cells}", api_name(key));
    }
    out
}
