//! Kafka collection: the only module that talks to Kafka. One [`ClusterCollector`] per cluster
//! turns broker answers into a [`Snapshot`] per poll.
//!
//! Requests per poll grow with brokers and coordinators, never with partitions (PRODUCT.md
//! §11): Metadata 1; ListOffsets 2 per leader broker per chunk of topics (one `offsets_for_times`
//! call per leader, the leaders in parallel); ListGroups 1 per broker (native, v5 with the type
//! filter; else librdkafka's ListConsumerGroups); classic DescribeGroups batched per
//! coordinator; ConsumerGroupDescribe 1 per coordinator for KIP-848 groups; DescribeConfigs 1, only when the topic set changes or
//! on refresh; committed offsets over the native path ([`native`]): FindCoordinator 1 and
//! OffsetFetch 1 per coordinator, per 256 KiB of group ids — or, where the cluster needs
//! librdkafka, OffsetFetch 1 per group, `offset_fetch_concurrency` in flight. Names a selector
//! spells out exactly that a listing left out (hidden by ACLs, or absent) cost one more request
//! each while they are missing: Metadata per topic, DescribeConsumerGroups for the groups
//! ([`Unauthorized`]).
//!
//! Request accounting: every request counts in `lagwatch_kafka_requests_total{broker}` through
//! one [`RequestCounter`] per cluster — librdkafka's from the per-broker `req` deltas of its
//! statistics, the native path's as each request is written (with its connection set-up:
//! ApiVersions, SaslHandshake, SaslAuthenticate), under the same labels (node id, or
//! `bootstrap`).
//!
//! Stages by file: `watermarks` (metadata, ListOffsets), `groups` (list, describe, committed
//! offsets), `topic_configs` (DescribeConfigs), `reader` (record timestamps). `error` holds the
//! typed errors from a Kafka call up to a failed [`Stage`]; `admin_sys` the FFI admin calls;
//! `native` lagwatch's own protocol path.

pub mod admin_sys;
mod deadline;
mod error;
mod groups;
pub mod msk_iam;
pub mod native;
pub mod oauth;
mod reader;
mod stage;
pub mod stats;
mod topic_configs;
mod watermarks;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::{ClusterConfig, GroupRequests, ShardConfig};
use crate::model::{GroupSnapshot, Snapshot, TopicConfig, TopicSnapshot};
pub use deadline::Deadline;
pub use error::{BrokerRef, CollectError, KafkaCallError, Request, StageError};
pub use reader::{TimestampReader, TimestampsRead};
pub use stage::Stage;
use stats::RequestCounter;
pub use stats::StatsContext;
pub use watermarks::Leaders;

/// How often librdkafka reports statistics (request counts), in milliseconds.
const STATISTICS_INTERVAL_MS: &str = "1000";

/// Events served from a handle's queue at most, once per poll, on the handles nothing else
/// polls between their calls (the coordinator handle, the timestamp reader): more than the statistics reports
/// (one a second) of the longest poll interval lagwatch keeps a handle through.
const STATS_BACKLOG: usize = 128;

/// Polls in a row without a timestamp read after which the reader is closed. Reads come in
/// bursts (start-up, a group falling behind its partitions' head history) and a reader holds
/// librdkafka's state for every partition of every topic it read (queues, buffers, timers,
/// statistics): between bursts that is memory and CPU for nothing. A new one costs a
/// connection and a metadata request.
pub const READER_IDLE_POLLS: u32 = 12;

/// Serves the events waiting on a handle whose queue nothing else polls: its statistics (one
/// report a second, each naming every partition the handle knows: left waiting they would pile
/// up for as long as the handle lives), logs, errors and token refreshes.
fn serve_events(consumer: &BaseConsumer<StatsContext>) {
    // One event per call: serving only one per poll would leave the backlog ever growing.
    for _ in 0..STATS_BACKLOG {
        let _ = consumer.poll(Duration::ZERO);
    }
}

/// What one poll produced.
#[derive(Debug, Clone)]
pub struct PollOutcome {
    /// `None` when the metadata or offsets stage failed: there is nothing trustworthy to report.
    pub snapshot: Option<Snapshot>,
    pub errors: Vec<StageError>,
    pub unauthorized: Unauthorized,
}

/// Selected topics and groups Kafka refused to describe to lagwatch's principal this poll.
/// Kafka hides what a principal may not Describe from its listings (Metadata, ListGroups,
/// OffsetFetch of a whole group) without an error, so only what lagwatch can name is here:
/// names the selectors spell out exactly that the listings left out and Kafka then refused by
/// name, and listed groups whose own requests were refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unauthorized {
    pub topics: Vec<String>,
    pub groups: Vec<String>,
}

impl Unauthorized {
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.groups.is_empty()
    }
}

impl PollOutcome {
    /// Whether the stages that decide `lagwatch_kafka_up` succeeded.
    pub fn up(&self) -> bool {
        self.snapshot.is_some()
    }
}

/// Settings of one cluster's collection, taken from the validated configuration.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    pub cluster: ClusterConfig,
    /// Which groups this replica polls.
    pub shard: ShardConfig,
    pub offset_fetch_concurrency: usize,
    pub config_refresh: Duration,
}

impl CollectorSettings {
    /// The longest any one Kafka call waits: a poll interval, bounded so a dead broker is
    /// noticed quickly and a short interval still leaves a slow broker time to answer.
    pub fn call_timeout(&self) -> Duration {
        self.cluster
            .poll_interval
            .clamp(Duration::from_secs(5), Duration::from_secs(15))
    }

    /// The deadline of a poll starting now: `poll_timeout`, shared out among the stages.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.cluster.poll_timeout, self.call_timeout())
    }
}

/// Polls one cluster. Blocking: run it on a blocking thread.
pub struct ClusterCollector {
    settings: CollectorSettings,
    consumer: Arc<BaseConsumer<StatsContext>>,
    /// Requests of all of this cluster's handles.
    requests: Arc<Mutex<RequestCounter>>,
    /// Reads record timestamps; created on first use, closed after [`READER_IDLE_POLLS`]
    /// polls without a read.
    reader: Option<TimestampReader>,
    /// Polls in a row without a timestamp read.
    reader_idle_polls: u32,
    stop_stats: Arc<AtomicBool>,
    stats_thread: Option<JoinHandle<()>>,
    /// Topic configs by topic, and when and for which topic set they were read.
    configs: HashMap<String, TopicConfig>,
    configs_read: Option<(Instant, Vec<String>)>,
    /// Groups of the last poll, and which of them were themselves carried over from the poll before.
    previous_groups: HashMap<String, (GroupSnapshot, bool)>,
    /// Partition leaders of the last metadata, to name the broker of a failed request.
    leaders: Leaders,
    /// The handle of the group-coordinator calls (DescribeConsumerGroups, committed offsets);
    /// created on first use, dropped after one of its calls timed out. librdkafka caches a
    /// group's coordinator for as long as it is used and asks again only on a state change of
    /// the cached broker, which a dead, decommissioned broker never has: on the long-lived
    /// handle a group whose coordinator died would time out until restart. A new handle looks
    /// every coordinator up again.
    coordinator: Option<Arc<BaseConsumer<StatsContext>>>,
    /// lagwatch's own protocol path for committed offsets (batched per coordinator); `None`
    /// when the cluster's security settings or brokers need librdkafka (logged once).
    native: Option<native::NativeClient>,
    /// Whether the native path's request versions were checked against a broker.
    native_checked: bool,
    /// The version of each Kafka 4 group request (share and streams groups) the brokers speak,
    /// `None` per request they lack; read once after the versions check.
    group_versions: Option<BTreeMap<Request, Option<i16>>>,
}

impl ClusterCollector {
    pub fn new(settings: CollectorSettings) -> Result<ClusterCollector, CollectError> {
        let cluster = &settings.cluster;
        let requests = Arc::new(Mutex::new(RequestCounter::default()));
        // Decided first, so the reason is logged even when librdkafka then refuses the settings.
        let native = match cluster.group_requests {
            GroupRequests::Librdkafka => Err("group_requests: librdkafka".to_string()),
            GroupRequests::Native => {
                native::NativeClient::new(cluster, requests.clone(), settings.call_timeout())
            }
        };
        let native = native
            .map_err(|reason| native_refused(&cluster.name, &reason))
            .ok();
        // No group.id: the handle's main queue then stays its own, so polling it delivers statistics.
        let consumer: BaseConsumer<StatsContext> = client_config(cluster)
            .create_with_context(
                StatsContext::new(&cluster.name, "admin", requests.clone())
                    .with_msk_iam(cluster.aws_msk_iam.as_ref()),
            )
            .map_err(|source| CollectError::Client {
                cluster: cluster.name.clone(),
                source,
            })?;
        let consumer = Arc::new(consumer);
        let stop_stats = Arc::new(AtomicBool::new(false));
        let stats_thread = {
            let consumer = consumer.clone();
            let stop = stop_stats.clone();
            std::thread::Builder::new()
                .name(format!("stats-{}", cluster.name))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // Serves statistics, log and error events; this handle consumes no messages.
                        let _ = consumer.poll(Duration::from_millis(200));
                    }
                })
                .ok()
        };
        Ok(ClusterCollector {
            settings,
            consumer,
            requests,
            reader: None,
            reader_idle_polls: 0,
            stop_stats,
            stats_thread,
            configs: HashMap::new(),
            configs_read: None,
            previous_groups: HashMap::new(),
            leaders: Leaders::default(),
            coordinator: None,
            native,
            native_checked: false,
            group_versions: None,
        })
    }

    /// The handle for group-coordinator calls, created when there is none. Its statistics are
    /// served by [`ClusterCollector::coordinator_done`].
    fn coordinator_client(&mut self) -> Result<Arc<BaseConsumer<StatsContext>>, CollectError> {
        if let Some(c) = &self.coordinator {
            return Ok(c.clone());
        }
        let cluster = &self.settings.cluster;
        let consumer: BaseConsumer<StatsContext> = client_config(cluster)
            .create_with_context(
                StatsContext::new(&cluster.name, "coordinator", self.requests.clone())
                    .with_msk_iam(cluster.aws_msk_iam.as_ref()),
            )
            .map_err(|source| CollectError::Client {
                cluster: cluster.name.clone(),
                source,
            })?;
        // Serves the OAUTHBEARER token request librdkafka queued at creation; later refreshes
        // are served after each poll's calls (`coordinator_done`).
        let _ = consumer.poll(Duration::ZERO);
        let consumer = Arc::new(consumer);
        self.coordinator = Some(consumer.clone());
        Ok(consumer)
    }

    /// After the group-coordinator calls of a poll: serves the handle's statistics (admin calls
    /// answer on their own queues, so nothing else polls its main queue), and drops it when a
    /// call timed out, so the next poll looks the coordinators up afresh.
    fn coordinator_done(&mut self, timed_out: bool) {
        if let Some(c) = &self.coordinator {
            serve_events(c);
        }
        if timed_out {
            self.coordinator = None;
        }
    }

    /// Whether the timestamp reader is open (it is opened by a read and closed after
    /// [`READER_IDLE_POLLS`] polls without one).
    pub fn reader_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Events waiting on this cluster's librdkafka handles for lagwatch to serve; served every
    /// poll, so at most about a poll interval's statistics reports.
    pub fn events_waiting(&self) -> usize {
        let reader = self
            .reader
            .as_ref()
            .map_or(0, TimestampReader::events_waiting);
        let coordinator = self
            .coordinator
            .as_ref()
            .map_or(0, |c| admin_sys::events_waiting(c.client()));
        admin_sys::events_waiting(self.consumer.client()) + coordinator + reader
    }

    /// The deadline of a poll starting now.
    pub fn deadline(&self) -> Deadline {
        self.settings.deadline()
    }

    /// Cumulative Kafka requests per broker label, from librdkafka statistics.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        match self.requests.lock() {
            Ok(counter) => counter.totals(),
            Err(poisoned) => poisoned.into_inner().totals(),
        }
    }

    /// Second phase of a poll: the record timestamps (ms since the epoch) at the offsets the
    /// model asked for, within what is left of `deadline`. `None` for a record that could not
    /// be read in time.
    pub fn read_timestamps(
        &mut self,
        reads: &[crate::model::analytics::TimestampRead],
        deadline: &Deadline,
        errors: &mut Vec<StageError>,
    ) -> TimestampsRead {
        let unread = || TimestampsRead {
            timestamps: reads.iter().map(|r| (r.clone(), None)).collect(),
            no_record_before_head: Vec::new(),
        };
        if reads.is_empty() {
            self.reader_idle_polls = self.reader_idle_polls.saturating_add(1);
            if self.reader_idle_polls >= READER_IDLE_POLLS {
                self.reader = None;
            }
            return TimestampsRead::default();
        }
        self.reader_idle_polls = 0;
        if self.reader.is_none() {
            match TimestampReader::new(&self.settings.cluster, self.requests.clone()) {
                Ok(r) => self.reader = Some(r),
                Err(e) => {
                    errors.push(StageError::new(Stage::ReadTimestamps, None, e));
                    return unread();
                }
            }
        }
        let Some(timeout) = stage_timeout(deadline, Stage::ReadTimestamps, errors) else {
            return unread();
        };
        match &self.reader {
            Some(reader) => reader.read(reads, &self.leaders, timeout, errors),
            None => unread(),
        }
    }

    /// One poll within `deadline`: every stage runs in its share of the time; a failed stage is
    /// reported and the rest goes on with what it has.
    pub fn poll(&mut self, deadline: &Deadline) -> PollOutcome {
        // Nothing else polls the reader's queue between its reads, failed polls included.
        if let Some(reader) = &self.reader {
            reader.serve_events();
        }
        let mut errors = Vec::new();
        let mut unauthorized = Unauthorized::default();
        let timeout = deadline
            .timeout(Stage::Metadata)
            .unwrap_or(deadline.budget());
        let topics = match self.topic_partitions(timeout, &mut unauthorized.topics) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                return PollOutcome {
                    snapshot: None,
                    errors,
                    unauthorized,
                };
            }
        };
        let Some(timeout) = stage_timeout(deadline, Stage::ListOffsets, &mut errors) else {
            return PollOutcome {
                snapshot: None,
                errors,
                unauthorized,
            };
        };
        let offsets = match self.watermarks(&topics, timeout, &mut errors) {
            Ok(o) => o,
            Err(e) => {
                errors.push(e);
                return PollOutcome {
                    snapshot: None,
                    errors,
                    unauthorized,
                };
            }
        };
        let taken_at = SystemTime::now();
        self.refresh_configs(&topics, deadline, &mut errors);
        let topic_snapshots: Vec<TopicSnapshot> = topics
            .iter()
            .filter_map(|(name, _)| {
                let partitions = offsets.get(name.as_str())?.clone();
                Some(TopicSnapshot {
                    name: Arc::from(name.as_str()),
                    partitions,
                    config: self.configs.get(name).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let groups = self.groups(
            &topic_snapshots,
            deadline,
            &mut errors,
            &mut unauthorized.groups,
        );
        PollOutcome {
            snapshot: Some(Snapshot {
                taken_at,
                topics: topic_snapshots,
                groups,
            }),
            errors,
            unauthorized,
        }
    }
}

impl Drop for ClusterCollector {
    fn drop(&mut self) {
        self.stop_stats.store(true, Ordering::Relaxed);
        if let Some(t) = self.stats_thread.take() {
            let _ = t.join();
        }
    }
}

/// How long the calls of `stage` may wait, or `None` with the stage's error noted when the
/// poll's time is up.
fn stage_timeout(
    deadline: &Deadline,
    stage: Stage,
    errors: &mut Vec<StageError>,
) -> Option<Duration> {
    let timeout = deadline.timeout(stage);
    if timeout.is_none() {
        errors.push(StageError::new(
            stage,
            None,
            CollectError::OutOfTime {
                budget: deadline.budget(),
            },
        ));
    }
    timeout
}

/// Why a cluster's librdkafka configuration was refused, found without contacting Kafka.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCheckError {
    #[error("no such librdkafka property")]
    UnknownProperty { key: String },
    /// librdkafka's description, which names the value; a secret's value is not described.
    #[error("invalid value: {description}")]
    InvalidValue { key: String, description: String },
    /// librdkafka refused to create the client (e.g. a certificate it could not load).
    #[error("cannot create the Kafka client: {0}")]
    Create(String),
}

impl ClientCheckError {
    /// The `kafka:` property at fault, when one is.
    pub fn property(&self) -> Option<&str> {
        match self {
            ClientCheckError::UnknownProperty { key }
            | ClientCheckError::InvalidValue { key, .. } => Some(key),
            ClientCheckError::Create(_) => None,
        }
    }
}

/// Sets every `kafka:` property of `cluster` on a librdkafka configuration, one at a time so a
/// refusal names its property, then creates the cluster's client as a poll would (loading its
/// certificates and keys) and drops it. The client is given no bootstrap servers: librdkafka
/// would otherwise connect to one as soon as the client exists. Blocking.
pub fn check_client(cluster: &ClusterConfig) -> Result<(), ClientCheckError> {
    for (key, value) in &cluster.kafka {
        let mut one = ClientConfig::new();
        one.set(key, &value.value);
        if let Err(e) = one.create_native_config() {
            return Err(match e {
                rdkafka::error::KafkaError::ClientConfig(
                    rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
                    ..,
                ) => ClientCheckError::UnknownProperty { key: key.clone() },
                rdkafka::error::KafkaError::ClientConfig(_, description, ..) if !value.secret => {
                    ClientCheckError::InvalidValue {
                        key: key.clone(),
                        description,
                    }
                }
                _ => ClientCheckError::InvalidValue {
                    key: key.clone(),
                    description: "librdkafka refused it (a secret: not shown)".to_string(),
                },
            });
        }
    }
    let client: BaseConsumer = client_config(cluster)
        .remove("bootstrap.servers")
        .create()
        .map_err(|e| ClientCheckError::Create(e.to_string()))?;
    drop(client);
    Ok(())
}

/// The one log line of a cluster whose committed offsets go through librdkafka, and why.
fn native_refused(cluster: &str, reason: &str) {
    tracing::info!(
        cluster,
        reason,
        "committed offsets through librdkafka, one group per request: {reason}"
    );
}

/// The librdkafka settings every handle of `cluster` shares: the user's properties, then the
/// ones lagwatch owns.
fn client_config(cluster: &ClusterConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in &cluster.kafka {
        config.set(key, &value.value);
    }
    config
        .set("bootstrap.servers", &cluster.bootstrap_servers)
        .set("client.id", format!("lagwatch-{}", cluster.name))
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .set("isolation.level", cluster.isolation.as_str());
    config
}
