//! Kafka collection: the only module that talks to Kafka. One [`ClusterCollector`] per cluster
//! turns broker answers into a [`Snapshot`] per poll.
//!
//! Requests per poll grow with brokers and groups, never with partitions (PRODUCT.md §11):
//! Metadata 1; ListOffsets 2 per leader broker per chunk of topics (librdkafka groups an
//! `offsets_for_times` call by leader); ListConsumerGroups 1 per broker; classic DescribeGroups
//! batched per coordinator; DescribeConfigs 1, only when the topic set changes or on refresh;
//! OffsetFetch 1 per group, `offset_fetch_concurrency` in flight.

pub mod admin_sys;
mod reader;
mod stage;
pub mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{ClusterConfig, ShardConfig};
use crate::model::{
    CommittedOffset, GroupSnapshot, GroupState, PartitionOffsets, Snapshot, TopicConfig,
    TopicSnapshot,
};
use admin_sys::GroupKind;
pub use reader::TimestampReader;
pub use stage::Stage;
use stats::RequestCounter;
pub use stats::StatsContext;

/// Topics per ListOffsets call: brokers get slow on huge requests (PRODUCT.md §10, §11).
const TOPICS_PER_LIST_OFFSETS: usize = 50;

/// Topic configuration keys lagwatch reads.
const CONFIG_KEYS: [&str; 3] = ["retention.ms", "retention.bytes", "cleanup.policy"];

/// How often librdkafka reports statistics (request counts), in milliseconds.
const STATISTICS_INTERVAL_MS: &str = "1000";

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cluster {cluster}: cannot create the Kafka client: {source}")]
    Client {
        cluster: String,
        #[source]
        source: KafkaError,
    },
}

/// A failed stage of a poll, with enough context to log and count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError {
    pub stage: Stage,
    pub message: String,
}

/// What one poll produced.
#[derive(Debug, Clone)]
pub struct PollOutcome {
    /// `None` when the metadata or offsets stage failed: there is nothing trustworthy to report.
    pub snapshot: Option<Snapshot>,
    pub errors: Vec<StageError>,
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
    /// Timeout of each Kafka call: a poll interval, bounded so a dead broker is noticed quickly
    /// and a short interval still leaves a slow broker time to answer.
    pub fn call_timeout(&self) -> Duration {
        self.cluster
            .poll_interval
            .clamp(Duration::from_secs(5), Duration::from_secs(15))
    }
}

/// Polls one cluster. Blocking: run it on a blocking thread.
pub struct ClusterCollector {
    settings: CollectorSettings,
    consumer: Arc<BaseConsumer<StatsContext>>,
    /// Requests of all of this cluster's handles.
    requests: Arc<Mutex<RequestCounter>>,
    /// Reads record timestamps; created on first use.
    reader: Option<TimestampReader>,
    stop_stats: Arc<AtomicBool>,
    stats_thread: Option<JoinHandle<()>>,
    /// Topic configs by topic, and when and for which topic set they were read.
    configs: HashMap<String, TopicConfig>,
    configs_read: Option<(Instant, Vec<String>)>,
    /// Groups of the last poll, and which of them were themselves carried over from the poll before.
    previous_groups: HashMap<String, (GroupSnapshot, bool)>,
}

impl ClusterCollector {
    pub fn new(settings: CollectorSettings) -> Result<ClusterCollector, CollectError> {
        let cluster = &settings.cluster;
        let requests = Arc::new(Mutex::new(RequestCounter::default()));
        // No group.id: the handle's main queue then stays its own, so polling it delivers statistics.
        let consumer: BaseConsumer<StatsContext> = client_config(cluster)
            .create_with_context(StatsContext::new(&cluster.name, "admin", requests.clone()))
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
            stop_stats,
            stats_thread,
            configs: HashMap::new(),
            configs_read: None,
            previous_groups: HashMap::new(),
        })
    }

    /// Cumulative Kafka requests per broker label, from librdkafka statistics.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        match self.requests.lock() {
            Ok(counter) => counter.totals(),
            Err(poisoned) => poisoned.into_inner().totals(),
        }
    }

    /// Second phase of a poll: the record timestamps (ms since the epoch) at the offsets the
    /// model asked for. `None` for a record that could not be read in time.
    pub fn read_timestamps(
        &mut self,
        reads: &[crate::model::analytics::TimestampRead],
        errors: &mut Vec<StageError>,
    ) -> Vec<(crate::model::analytics::TimestampRead, Option<i64>)> {
        if reads.is_empty() {
            return Vec::new();
        }
        if self.reader.is_none() {
            match TimestampReader::new(&self.settings.cluster, self.requests.clone()) {
                Ok(r) => self.reader = Some(r),
                Err(e) => {
                    errors.push(StageError {
                        stage: Stage::ReadTimestamps,
                        message: e.to_string(),
                    });
                    return reads.iter().map(|r| (r.clone(), None)).collect();
                }
            }
        }
        let timeout = self.settings.call_timeout();
        match &self.reader {
            Some(reader) => reader.read(reads, timeout, errors),
            None => reads.iter().map(|r| (r.clone(), None)).collect(),
        }
    }

    /// One poll: every stage runs; a failed stage is reported and the rest goes on with what it has.
    pub fn poll(&mut self) -> PollOutcome {
        let mut errors = Vec::new();
        let timeout = self.settings.call_timeout();
        let topics = match self.topic_partitions(timeout) {
            Ok(t) => t,
            Err(message) => {
                errors.push(StageError {
                    stage: Stage::Metadata,
                    message,
                });
                return PollOutcome {
                    snapshot: None,
                    errors,
                };
            }
        };
        let offsets = match self.watermarks(&topics, timeout, &mut errors) {
            Ok(o) => o,
            Err(message) => {
                errors.push(StageError {
                    stage: Stage::ListOffsets,
                    message,
                });
                return PollOutcome {
                    snapshot: None,
                    errors,
                };
            }
        };
        let taken_at = SystemTime::now();
        self.refresh_configs(&topics, timeout, &mut errors);
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
        let groups = self.groups(&topic_snapshots, timeout, &mut errors);
        PollOutcome {
            snapshot: Some(Snapshot {
                taken_at,
                topics: topic_snapshots,
                groups,
            }),
            errors,
        }
    }

    /// Selected topics with their partition ids, sorted by name.
    fn topic_partitions(&self, timeout: Duration) -> Result<Vec<(String, Vec<i32>)>, String> {
        let metadata = self.consumer.fetch_metadata(None, timeout).map_err(|e| {
            format!(
                "metadata from {}: {e}",
                self.settings.cluster.bootstrap_servers
            )
        })?;
        let mut topics: Vec<(String, Vec<i32>)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && self.settings.cluster.topics.matches(t.name()))
            .map(|t| {
                let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                (t.name().to_string(), ids)
            })
            .collect();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(topics)
    }

    /// Low and high watermarks of every partition, by topic. Two ListOffsets calls (earliest,
    /// latest) per chunk of topics; librdkafka sends one request per leader broker for each.
    fn watermarks(
        &self,
        topics: &[(String, Vec<i32>)],
        timeout: Duration,
        errors: &mut Vec<StageError>,
    ) -> Result<HashMap<String, Vec<PartitionOffsets>>, String> {
        let mut out: HashMap<String, Vec<PartitionOffsets>> = HashMap::new();
        for chunk in topics.chunks(TOPICS_PER_LIST_OFFSETS) {
            let earliest = self.list_offsets(chunk, Offset::Beginning, timeout)?;
            let latest = self.list_offsets(chunk, Offset::End, timeout)?;
            for (topic, ids) in chunk {
                let mut partitions = Vec::with_capacity(ids.len());
                for &p in ids {
                    let key = (topic.clone(), p);
                    match (earliest.get(&key), latest.get(&key)) {
                        (Some(Ok(l)), Some(Ok(h))) => partitions.push(PartitionOffsets {
                            partition: p,
                            earliest: *l,
                            latest: (*h).max(*l),
                        }),
                        (Some(Err(e)), _) | (_, Some(Err(e))) => errors.push(StageError {
                            stage: Stage::ListOffsets,
                            message: format!("{topic}/{p}: {e}"),
                        }),
                        _ => errors.push(StageError {
                            stage: Stage::ListOffsets,
                            message: format!("{topic}/{p}: no offset in the answer"),
                        }),
                    }
                }
                if !partitions.is_empty() {
                    out.insert(topic.clone(), partitions);
                }
            }
        }
        Ok(out)
    }

    #[allow(clippy::type_complexity)]
    fn list_offsets(
        &self,
        topics: &[(String, Vec<i32>)],
        spec: Offset,
        timeout: Duration,
    ) -> Result<HashMap<(String, i32), Result<i64, String>>, String> {
        let mut tpl = TopicPartitionList::new();
        for (topic, ids) in topics {
            for &p in ids {
                tpl.add_partition_offset(topic, p, spec)
                    .map_err(|e| format!("{topic}/{p}: {e}"))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(HashMap::new());
        }
        let answer = self
            .consumer
            .offsets_for_times(tpl, timeout)
            .map_err(|e| format!("ListOffsets ({spec:?}): {e}"))?;
        Ok(answer
            .elements()
            .iter()
            .map(|e| {
                let value = match (e.error(), e.offset()) {
                    (Err(err), _) => Err(err.to_string()),
                    (Ok(()), Offset::Offset(o)) if o >= 0 => Ok(o),
                    (Ok(()), other) => Err(format!("unexpected offset {other:?}")),
                };
                ((e.topic().to_string(), e.partition()), value)
            })
            .collect())
    }

    /// Reads topic configs when the topic set changed or `config_refresh` passed; keeps the last
    /// good values on failure.
    fn refresh_configs(
        &mut self,
        topics: &[(String, Vec<i32>)],
        timeout: Duration,
        errors: &mut Vec<StageError>,
    ) {
        let names: Vec<String> = topics.iter().map(|(n, _)| n.clone()).collect();
        let due = match &self.configs_read {
            None => true,
            Some((at, read_for)) => {
                *read_for != names || at.elapsed() >= self.settings.config_refresh
            }
        };
        if !due || names.is_empty() {
            return;
        }
        match admin_sys::describe_topic_configs(
            self.consumer.client(),
            &names,
            &CONFIG_KEYS,
            timeout,
        ) {
            Ok((described, failed)) => {
                for message in failed {
                    errors.push(StageError {
                        stage: Stage::DescribeConfigs,
                        message,
                    });
                }
                self.configs = described
                    .into_iter()
                    .map(|t| (t.topic, topic_config(&t.entries)))
                    .collect();
                self.configs_read = Some((Instant::now(), names));
            }
            Err(e) => errors.push(StageError {
                stage: Stage::DescribeConfigs,
                message: e.to_string(),
            }),
        }
    }

    /// Lists, describes and fetches the committed offsets of every selected group.
    fn groups(
        &mut self,
        topics: &[TopicSnapshot],
        timeout: Duration,
        errors: &mut Vec<StageError>,
    ) -> Vec<GroupSnapshot> {
        let selector = &self.settings.cluster.groups;
        // Group id -> (state from the listing, protocol); a BTreeMap also deduplicates groups a
        // coordinator move lists twice.
        let mut listed: BTreeMap<String, (GroupState, GroupKind)> = BTreeMap::new();
        match admin_sys::list_consumer_groups(self.consumer.client(), timeout) {
            Ok(list) => {
                for message in list.errors {
                    errors.push(StageError {
                        stage: Stage::ListGroups,
                        message,
                    });
                }
                for g in list.groups {
                    if selector.matches(&g.group_id) && self.settings.shard.owns(&g.group_id) {
                        listed.insert(g.group_id, (GroupState::from_broker(g.state), g.kind));
                    }
                }
            }
            Err(e) => {
                errors.push(StageError {
                    stage: Stage::ListGroups,
                    message: e.to_string(),
                });
                // Without a listing, keep polling the groups seen last time.
                for (id, (g, _)) in &self.previous_groups {
                    listed.insert(id.clone(), (g.state, GroupKind::Unknown));
                }
            }
        }
        let described = self.describe_groups(&listed, timeout, errors);
        let ids: Vec<String> = listed.keys().cloned().collect();
        let fetched = admin_sys::list_consumer_group_offsets(
            self.consumer.client(),
            &ids,
            self.settings.offset_fetch_concurrency,
            timeout,
        );
        let topic_names: HashMap<&str, &Arc<str>> =
            topics.iter().map(|t| (t.name.as_ref(), &t.name)).collect();
        let mut groups = Vec::with_capacity(ids.len());
        let mut current: HashMap<String, (GroupSnapshot, bool)> = HashMap::new();
        for ((id, (listed_state, _)), result) in listed.into_iter().zip(fetched) {
            let (state, members) = described.get(&id).copied().unwrap_or((listed_state, None));
            match result {
                Ok(raw) => {
                    let mut offsets: Vec<CommittedOffset> = raw
                        .into_iter()
                        .filter_map(|o| {
                            Some(CommittedOffset {
                                topic: (*topic_names.get(o.topic.as_str())?).clone(),
                                partition: o.partition,
                                offset: o.offset,
                            })
                        })
                        .collect();
                    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                    let group = GroupSnapshot {
                        id: id.clone(),
                        state,
                        members,
                        offsets,
                    };
                    current.insert(id, (group.clone(), false));
                    groups.push(group);
                }
                Err(e) => {
                    errors.push(StageError {
                        stage: Stage::OffsetFetch,
                        message: format!("group {id}: {e}"),
                    });
                    // A group whose own request failed keeps its previous data for one poll.
                    if let Some((previous, false)) = self.previous_groups.get(&id) {
                        current.insert(id, (previous.clone(), true));
                        groups.push(previous.clone());
                    }
                }
            }
        }
        self.previous_groups = current;
        groups
    }

    /// State and member count per group: classic groups through the classic DescribeGroups
    /// (batched per coordinator), KIP-848 groups through DescribeConsumerGroups.
    fn describe_groups(
        &self,
        listed: &BTreeMap<String, (GroupState, GroupKind)>,
        timeout: Duration,
        errors: &mut Vec<StageError>,
    ) -> HashMap<String, (GroupState, Option<u32>)> {
        let mut out = HashMap::new();
        let of_kind = |consumer: bool| -> Vec<String> {
            listed
                .iter()
                .filter(|(_, (_, kind))| (*kind == GroupKind::Consumer) == consumer)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let (consumer_kind, classic) = (of_kind(true), of_kind(false));
        if !classic.is_empty() {
            match self.consumer.fetch_group_list(None, timeout) {
                Ok(list) => {
                    let wanted: HashSet<&str> = classic.iter().map(|s| s.as_str()).collect();
                    for g in list.groups() {
                        if wanted.contains(g.name()) {
                            let members = u32::try_from(g.members().len()).unwrap_or(u32::MAX);
                            out.insert(
                                g.name().to_string(),
                                (GroupState::from_broker(g.state()), Some(members)),
                            );
                        }
                    }
                }
                Err(e) => errors.push(StageError {
                    stage: Stage::DescribeGroups,
                    message: format!("DescribeGroups: {e}"),
                }),
            }
        }
        if !consumer_kind.is_empty() {
            match admin_sys::describe_consumer_groups(
                self.consumer.client(),
                &consumer_kind,
                timeout,
            ) {
                Ok(results) => {
                    for r in results {
                        match r {
                            Ok(d) => {
                                out.insert(
                                    d.group_id,
                                    (GroupState::from_broker(d.state), Some(d.members)),
                                );
                            }
                            Err(e) => errors.push(StageError {
                                stage: Stage::DescribeGroups,
                                message: e.to_string(),
                            }),
                        }
                    }
                }
                Err(e) => errors.push(StageError {
                    stage: Stage::DescribeGroups,
                    message: e.to_string(),
                }),
            }
        }
        out
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

/// Parses the config entries lagwatch reads; unparsable numbers count as unknown.
fn topic_config(entries: &[(String, String)]) -> TopicConfig {
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    TopicConfig {
        retention_ms: get("retention.ms").and_then(|v| v.trim().parse().ok()),
        retention_bytes: get("retention.bytes").and_then(|v| v.trim().parse().ok()),
        cleanup_policy: get("cleanup.policy").map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_config_parses_known_keys_and_leaves_the_rest_unknown() {
        let entries = vec![
            ("retention.ms".to_string(), "3600000".to_string()),
            ("cleanup.policy".to_string(), "compact,delete".to_string()),
            ("retention.bytes".to_string(), "lots".to_string()),
        ];
        let c = topic_config(&entries);
        assert_eq!(c.retention_ms, Some(3_600_000));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.cleanup_policy.as_deref(), Some("compact,delete"));
        assert_eq!(topic_config(&[]), TopicConfig::default());
    }
}
