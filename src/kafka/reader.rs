//! Record timestamps at given offsets, for time lag (PRODUCT.md §3, §4). One consumer per
//! cluster with `assign()`ed partitions, so librdkafka batches the reads into Fetch requests per
//! leader; it never commits. Offsets of one partition are read in rounds, one offset per
//! partition per round.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::error::{CollectError, KafkaCallError, Request, StageError};
use super::stats::{RequestCounter, StatsContext};
use super::watermarks::Leaders;
use super::{client_config, Stage};
use crate::config::ClusterConfig;
use crate::model::analytics::TimestampRead;

pub struct TimestampReader {
    consumer: BaseConsumer<StatsContext>,
}

impl TimestampReader {
    pub fn new(
        cluster: &ClusterConfig,
        requests: Arc<Mutex<RequestCounter>>,
    ) -> Result<TimestampReader, CollectError> {
        let mut config = client_config(cluster);
        config
            // assign() needs a group id; lagwatch never commits or joins with it.
            .set("group.id", format!("lagwatch-timestamps-{}", cluster.name))
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // One record per partition is all a read needs: keep fetches and the queue small.
            .set("fetch.wait.max.ms", "100")
            .set("max.partition.fetch.bytes", "65536")
            .set("queued.max.messages.kbytes", "4096");
        let consumer = config
            .create_with_context(StatsContext::new(&cluster.name, "reader", requests))
            .map_err(|source| CollectError::Client {
                cluster: cluster.name.clone(),
                source,
            })?;
        Ok(TimestampReader { consumer })
    }

    /// Reads the timestamp of the first record at or after each offset. `leaders` names the
    /// broker of a failure when the partitions concerned share one leader.
    pub fn read(
        &self,
        reads: &[TimestampRead],
        leaders: &Leaders,
        timeout: Duration,
        errors: &mut Vec<StageError>,
    ) -> Vec<(TimestampRead, Option<i64>)> {
        // Offsets to read per partition, in order.
        let mut by_partition: BTreeMap<(Arc<str>, i32), Vec<i64>> = BTreeMap::new();
        for r in reads {
            by_partition
                .entry((r.topic.clone(), r.partition))
                .or_default()
                .push(r.offset);
        }
        let rounds = by_partition.values().map(Vec::len).max().unwrap_or(0);
        let mut found: HashMap<(Arc<str>, i32, i64), i64> = HashMap::new();
        // A Fetch Kafka refused (no Read ACL on a topic): the records never come, so the unread
        // reads are reported with that refusal rather than as a timeout.
        let mut refused: Option<KafkaCallError> = None;
        let deadline = Instant::now() + timeout;
        for round in 0..rounds {
            let wanted: HashMap<(&str, i32), i64> = by_partition
                .iter()
                .filter_map(|((t, p), offsets)| Some(((t.as_ref(), *p), *offsets.get(round)?)))
                .collect();
            if let Err(e) = self.read_round(&wanted, deadline, timeout, &mut found, &mut refused) {
                let broker = leaders.common(wanted.keys().copied());
                errors.push(StageError::new(Stage::ReadTimestamps, broker, e));
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let _ = self.consumer.unassign();
        let unread: Vec<&TimestampRead> = reads
            .iter()
            .filter(|r| !found.contains_key(&(r.topic.clone(), r.partition, r.offset)))
            .collect();
        if !unread.is_empty() {
            let broker = leaders.common(unread.iter().map(|r| (r.topic.as_ref(), r.partition)));
            let cause = match refused {
                Some(source) => {
                    let topics: BTreeSet<&str> = unread.iter().map(|r| r.topic.as_ref()).collect();
                    CollectError::TimestampsRefused {
                        unread: unread.len(),
                        total: reads.len(),
                        topics: topics.into_iter().collect::<Vec<_>>().join(", "),
                        source: Box::new(source),
                    }
                }
                None => CollectError::TimestampsUnread {
                    unread: unread.len(),
                    total: reads.len(),
                    timeout,
                },
            };
            errors.push(StageError::new(Stage::ReadTimestamps, broker, cause));
        }
        reads
            .iter()
            .map(|r| {
                let ts = found
                    .get(&(r.topic.clone(), r.partition, r.offset))
                    .copied();
                (r.clone(), ts)
            })
            .collect()
    }

    fn read_round(
        &self,
        wanted: &HashMap<(&str, i32), i64>,
        deadline: Instant,
        timeout: Duration,
        found: &mut HashMap<(Arc<str>, i32, i64), i64>,
        refused: &mut Option<KafkaCallError>,
    ) -> Result<(), CollectError> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in wanted {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| CollectError::Partition {
                    topic: topic.to_string(),
                    partition: *partition,
                    source: KafkaCallError::from_rdkafka(Request::Assign, e, timeout),
                })?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| KafkaCallError::from_rdkafka(Request::Assign, e, timeout))?;
        let mut pending: HashMap<(String, i32), i64> = wanted
            .iter()
            .map(|((t, p), o)| ((t.to_string(), *p), *o))
            .collect();
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left.min(Duration::from_millis(200))) {
                Some(Ok(message)) => {
                    let key = (message.topic().to_string(), message.partition());
                    let Some(&target) = pending.get(&key) else {
                        continue;
                    };
                    if message.offset() < target {
                        continue;
                    }
                    if let Some(ts) = message.timestamp().to_millis() {
                        found.insert((Arc::from(key.0.as_str()), key.1, target), ts);
                    }
                    pending.remove(&key);
                }
                // librdkafka names no partition with a consumer error; the reads still unread at
                // the end are the ones it concerns. Other errors are transient: librdkafka retries.
                Some(Err(e)) if e.rdkafka_error_code().is_some_and(is_authorization) => {
                    refused.get_or_insert(KafkaCallError::from_rdkafka(Request::Fetch, e, timeout));
                }
                Some(Err(e)) => tracing::debug!(error = %e, "timestamp read"),
                None => {}
            }
        }
        Ok(())
    }
}

/// Codes of a request Kafka refused for want of an ACL: retrying cannot help.
fn is_authorization(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
    )
}
