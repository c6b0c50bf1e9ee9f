//! Test harness: Apache Kafka clusters (`kafka_cluster`: one shared 1-node cluster per test
//! binary, or a test's own), client helpers that act like applications (topics, batched and
//! compressed produce, commits, live members), an in-process lagwatch on a free port, and an
//! exposition parser.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

pub mod kafka_cluster;

pub use kafka_cluster::{free_port, ClusterSpec, KafkaCluster, Listener};

/// The 1-node cluster shared by the tests of this test binary (each test uses its own topic and
/// group names); it lives until the process exits.
pub fn kafka() -> &'static KafkaCluster {
    static SHARED: OnceLock<&'static KafkaCluster> = OnceLock::new();
    SHARED.get_or_init(|| KafkaCluster::start(ClusterSpec::default()).leak())
}

/// Random-enough unique names per test, so tests sharing a cluster never collide.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Compression codec of the test producers: what applications use most.
pub const DEFAULT_CODEC: &str = "lz4";

/// Client helpers: what applications do to a cluster (create topics, produce, commit, consume).
impl KafkaCluster {
    /// A librdkafka configuration for the PLAINTEXT listener.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in self.client_properties(Listener::Plaintext) {
            c.set(k, v);
        }
        c.set("allow.auto.create.topics", "false")
            .set("log_level", "3");
        c
    }

    /// Creates a topic with `partitions` partitions, replicated to every node (at most 3), with
    /// `configs` set on it (the broker's defaults for the rest).
    pub fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("admin");
        let replication = self.spec.nodes.min(3) as i32;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let results = block_on(admin.create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
    }

    /// A producer that batches and compresses like applications do.
    pub fn producer(&self, codec: &str) -> ThreadedProducer<DefaultProducerContext> {
        self.client_config()
            .set("linger.ms", "5")
            .set("compression.type", codec)
            .set("acks", "all")
            .create()
            .expect("producer")
    }

    /// Produces `count` records to one partition (batched, lz4-compressed), stamped
    /// `timestamp_ms` (None: now), and waits until every one is acknowledged.
    pub fn produce(&self, topic: &str, partition: i32, count: usize, timestamp_ms: Option<i64>) {
        self.produce_with(DEFAULT_CODEC, topic, partition, count, timestamp_ms);
    }

    /// `produce` with a given compression codec (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn produce_with(
        &self,
        codec: &str,
        topic: &str,
        partition: i32,
        count: usize,
        timestamp_ms: Option<i64>,
    ) {
        let producer = self.producer(codec);
        for i in 0..count {
            let payload = format!("record-{i} of a batch compressed with {codec}");
            loop {
                let mut record = BaseRecord::<(), str>::to(topic)
                    .partition(partition)
                    .payload(&payload);
                if let Some(ts) = timestamp_ms {
                    record = record.timestamp(ts);
                }
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, _)) => {
                        assert!(
                            matches!(
                                e,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "produce to {topic}/{partition}: {e}"
                        );
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        assert_eq!(
            producer.in_flight_count(),
            0,
            "records to {topic}/{partition} not acknowledged"
        );
    }

    /// Commits `offsets` ((topic, partition, offset)) for `group` without joining it (no members).
    pub fn commit(&self, group: &str, offsets: &[(&str, i32, i64)]) {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .expect("tpl");
        }
        // The first commit on a fresh cluster creates the offsets topic: retry until its
        // coordinator answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("commit for {group}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("commit for {group}: {e}"),
            }
        }
    }
}

/// Runs a future to completion on a throwaway current-thread runtime (admin calls from tests).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(future)
}

/// Samples of an exposition, by series (`name{labels}` exactly as printed).
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: BTreeMap<String, f64>,
    pub text: String,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((series, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse::<f64>() {
                    samples.insert(series.to_string(), v);
                }
            }
        }
        Exposition {
            samples,
            text: text.to_string(),
        }
    }

    /// The value of the series named `name` whose labels include every `labels` pair.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| *v)
            .collect();
        match matching.as_slice() {
            [v] => Some(*v),
            [] => None,
            many => panic!("{name}{labels:?} matches {} series", many.len()),
        }
    }

    /// Sum of every series named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| *v)
            .sum()
    }
}

/// lagwatch's configuration for one cluster named `test`, polled every second at partition
/// granularity, selecting the topics matching `^{topic}$` and the groups matching `^{group}$`;
/// `extra` goes to the top level.
pub fn one_cluster_config(broker: &KafkaCluster, topic: &str, group: &str, extra: &str) -> String {
    format!(
        r#"
listen: "127.0.0.1:0"
poll_interval: 1s
granularity: partition
{extra}
clusters:
  - name: test
    bootstrap_servers: "{}"
    groups: {{ include: ["^{group}$"] }}
    topics: {{ include: ["^{topic}$"] }}
"#,
        broker.bootstrap()
    )
}

/// Waits until `group`'s lag is served for every one of `clusters`, then asserts each cluster
/// is up and reports exactly `lag`.
pub fn assert_lag_on_every_cluster(
    fetch: impl Fn() -> Exposition,
    clusters: &[&str],
    group: &str,
    lag: f64,
) {
    let m = wait_for_metrics(
        fetch,
        Duration::from_secs(90),
        "lag on every cluster",
        |m| {
            clusters.iter().all(|c| {
                m.value(
                    "kafka_consumergroup_lag_messages",
                    &[("cluster", c), ("group", group)],
                )
                .is_some()
            })
        },
    );
    for c in clusters {
        assert_eq!(
            m.value("lagwatch_kafka_up", &[("cluster", c)]),
            Some(1.0),
            "{c}"
        );
        assert_eq!(
            m.value(
                "kafka_consumergroup_lag_messages",
                &[("cluster", c), ("group", group)]
            ),
            Some(lag),
            "{c}"
        );
    }
}

/// Milliseconds since the epoch: a record's CreateTime now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Figures of the one cluster the broker tests configure, named `test`.
impl Exposition {
    /// When the poll whose figures are served ran (seconds since the epoch).
    pub fn poll_time(&self) -> f64 {
        self.value(
            "lagwatch_last_poll_success_timestamp_seconds",
            &[("cluster", "test")],
        )
        .expect("a successful poll")
    }

    /// Polls made so far.
    pub fn polls(&self) -> f64 {
        self.value(
            "lagwatch_poll_duration_seconds_count",
            &[("cluster", "test")],
        )
        .unwrap_or(0.0)
    }

    /// Polls that lasted longer than `seconds` (the smallest histogram bucket bound ≥ `seconds`).
    pub fn polls_slower_than(&self, seconds: f64) -> f64 {
        let bound = self
            .samples
            .keys()
            .filter(|s| {
                s.starts_with("lagwatch_poll_duration_seconds_bucket{")
                    && s.contains("cluster=\"test\"")
            })
            .filter_map(|s| {
                let le = s.split("le=\"").nth(1)?.split('"').next()?;
                le.parse::<f64>().ok().map(|v| (v, s.clone()))
            })
            .filter(|(v, _)| *v >= seconds)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let (_, series) = bound.expect("a poll duration bucket");
        self.polls() - self.samples.get(&series).copied().unwrap_or(0.0)
    }
}

/// Asserts `measured` is within `tolerance` of `truth`, printing both for the record.
pub fn assert_close(what: &str, measured: f64, truth: f64, tolerance: f64) {
    let error = (measured - truth).abs();
    eprintln!(
        "{what}: measured {measured:.1}, truth {truth:.1}, error {error:.2} (allowed {tolerance:.1})"
    );
    assert!(
        error <= tolerance,
        "{what}: measured {measured}, truth {truth}, allowed error {tolerance}"
    );
}

/// lagwatch running in-process on a free port, stopped on drop.
pub struct Lagwatch {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lagwatch {
    pub fn start(config_yaml: &str) -> Lagwatch {
        let config = lagwatch::config::Config::from_yaml(config_yaml)
            .unwrap_or_else(|e| panic!("test config: {e}\n{config_yaml}"));
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                lagwatch::app::run(config, None, listener, None, async move {
                    let _ = stop_rx.await;
                })
                .await
                .expect("lagwatch runs");
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        });
        Lagwatch {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    pub fn metrics(&self) -> Exposition {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Exposition::parse(&body)
    }

    /// Polls `/metrics` until `check` accepts it or `timeout` passes; returns the exposition.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Exposition) -> bool,
    ) -> Exposition {
        wait_for_metrics(|| self.metrics(), timeout, what, check)
    }
}

/// Fetches expositions until `check` accepts one or `timeout` passes (then panics with the last).
pub fn wait_for_metrics(
    fetch: impl Fn() -> Exposition,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = Instant::now() + timeout;
    loop {
        let m = fetch();
        if check(&m) {
            return m;
        }
        assert!(
            Instant::now() <= deadline,
            "timed out after {timeout:?} waiting for {what}; last exposition:\n{}",
            m.text
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Lagwatch {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A minimal HTTP/1.1 GET, enough for the exporter's endpoints.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `promtool check metrics` on an exposition and returns what it printed (empty = clean).
pub fn promtool_check(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by .ci/setup (Debian package prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `lagwatch` binary running as a process (for what only a process shows: its log and exit
/// code), stopped with SIGTERM on drop.
pub struct LagwatchProcess {
    pub port: u16,
    child: Child,
    pub log: PathBuf,
}

impl LagwatchProcess {
    /// Starts the binary on a free port; `config_yaml` must not set `listen`.
    pub fn start(config_yaml: &str) -> LagwatchProcess {
        LagwatchProcess::start_with_env(config_yaml, &[])
    }

    /// `start` with `env` added to the child's environment (secrets read with `{env: NAME}`,
    /// `RUST_LOG`), leaving the test process's own environment untouched.
    pub fn start_with_env(config_yaml: &str, env: &[(&str, &str)]) -> LagwatchProcess {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("lagwatch-process"));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join("lagwatch.yaml");
        std::fs::write(
            &config,
            format!("listen: \"127.0.0.1:{port}\"\n{config_yaml}"),
        )
        .expect("config");
        let log = dir.join("lagwatch.log");
        let child = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "json"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .expect("start lagwatch");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "lagwatch did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        LagwatchProcess { port, child, log }
    }

    pub fn metrics(&self) -> Exposition {
        let (status, body) = http_get(([127, 0, 0, 1], self.port).into(), "/metrics");
        assert_eq!(status, 200);
        Exposition::parse(&body)
    }

    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Exposition) -> bool,
    ) -> Exposition {
        wait_for_metrics(|| self.metrics(), timeout, what, check)
    }

    /// The process id (for `/proc/PID`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (has not exited or been restarted).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LagwatchProcess {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
        // Its directory holds the configuration and the log: kept when the test failed.
        if let (false, Some(dir)) = (std::thread::panicking(), self.log.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A live member of a consumer group, polling on its own thread until dropped.
pub struct Member {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaCluster {
    /// Joins `group` on `topic` and, once partitions are assigned, commits `offset` on partition 0
    /// once (`None`: the consumer's own position after its first record); never commits again,
    /// like a consumer stuck on a poison message.
    pub fn member(&self, group: &str, topic: &str, offset: Option<i64>) -> Member {
        self.member_of(group, "classic", topic, offset)
    }

    /// [`KafkaCluster::member`] on group protocol `protocol` (`classic` or `consumer`).
    pub fn member_of(
        &self,
        group: &str,
        protocol: &str,
        topic: &str,
        offset: Option<i64>,
    ) -> Member {
        use std::sync::atomic::{AtomicBool, Ordering};
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .set("group.protocol", protocol)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let topic = topic.to_string();
            std::thread::spawn(move || {
                let mut committed = false;
                while !stop.load(Ordering::Relaxed) {
                    let record = consumer.poll(Duration::from_millis(100));
                    if committed {
                        continue;
                    }
                    committed = match offset {
                        Some(o) if consumer.assignment().is_ok_and(|a| a.count() > 0) => {
                            let mut tpl = TopicPartitionList::new();
                            tpl.add_partition_offset(&topic, 0, Offset::Offset(o))
                                .expect("tpl");
                            consumer.commit(&tpl, CommitMode::Sync).is_ok()
                        }
                        None if matches!(record, Some(Ok(_))) => {
                            consumer.commit_consumer_state(CommitMode::Sync).is_ok()
                        }
                        _ => false,
                    };
                }
            })
        };
        Member {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `lagwatch check-config` on `config` with `env` added (and `RUST_LOG=trace`, its most
/// verbose); returns its exit code and everything it printed.
pub fn check_config(config: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(["check-config", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env("RUST_LOG", "trace")
        .output()
        .expect("run lagwatch check-config");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), shown)
}

/// Fails naming the line of `text` that shows any of `secrets`.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[impl AsRef<str>]) {
    for (n, line) in text.lines().enumerate() {
        for secret in secrets {
            assert!(
                !line.contains(secret.as_ref()),
                "{what} line {} shows a secret: {line}",
                n + 1
            );
        }
    }
}
