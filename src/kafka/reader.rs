//! Record timestamps at given offsets, for time lag (PRODUCT.md §3, §4). One consumer per
//! cluster with `assign()`ed partitions, so librdkafka batches the reads into Fetch requests per
//! leader; it never commits. Offsets of one partition are read in rounds: a round starts at
//! the partition's lowest offset still unread and consumes forward, answering every offset it
//! passes, up to the last of a run of offsets each within [`SAME_PASS_GAP`] of the one before
//! (groups reading one partition usually sit close together); farther offsets get later rounds.
//!
//! A read may find no record before the head: between the offset and the head there are only
//! transaction markers (or, under `read_committed`, aborted records), which a consumer never
//! sees. Waiting for a record there would last until the timeout (under `read_committed` the
//! fetcher stops at the last stable offset), so each partition gets its own queue and the
//! partition's end-of-partition event, which names the partition, ends its read.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::error::{CollectError, KafkaCallError, Request, StageError};
use super::stats::{RequestCounter, StatsContext};
use super::watermarks::Leaders;
use super::{client_config, Stage};
use crate::config::ClusterConfig;
use crate::model::analytics::TimestampRead;

pub struct TimestampReader {
    /// In an `Arc` because per-partition queues borrow it that way.
    consumer: Arc<BaseConsumer<StatsContext>>,
}

/// What one `read` learnt.
#[derive(Debug, Default)]
pub struct TimestampsRead {
    /// Every read asked for, with the timestamp of the first record at or after its offset
    /// (`None`: not found, see `no_record_before_head`, or not read in time).
    pub timestamps: Vec<(TimestampRead, Option<i64>)>,
    /// Reads that reached the end of their partition without a record.
    pub no_record_before_head: Vec<TimestampRead>,
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
            // The end of a partition ends a read that finds no record (transaction markers only).
            .set("enable.partition.eof", "true")
            // One record per partition is all a read needs: keep fetches and the queue small.
            .set("fetch.wait.max.ms", "100")
            .set("max.partition.fetch.bytes", "65536")
            .set("queued.max.messages.kbytes", "4096");
        let consumer: BaseConsumer<StatsContext> = config
            .create_with_context(
                StatsContext::new(&cluster.name, "reader", requests)
                    .with_msk_iam(cluster.aws_msk_iam.as_ref()),
            )
            .map_err(|source| CollectError::Client {
                cluster: cluster.name.clone(),
                source,
            })?;
        // Serves the OAUTHBEARER token request librdkafka queued at creation.
        let _ = consumer.poll(Duration::ZERO);
        Ok(TimestampReader {
            consumer: Arc::new(consumer),
        })
    }

    /// Serves the events waiting on the reader's queue, which only its reads poll otherwise.
    pub fn serve_events(&self) {
        super::serve_events(&self.consumer);
    }

    /// Events waiting on the reader's queue.
    pub fn events_waiting(&self) -> usize {
        super::admin_sys::events_waiting(self.consumer.client())
    }

    /// Reads the timestamp of the first record at or after each offset. `leaders` names the
    /// broker of a failure when the partitions concerned share one leader.
    pub fn read(
        &self,
        reads: &[TimestampRead],
        leaders: &Leaders,
        timeout: Duration,
        errors: &mut Vec<StageError>,
    ) -> TimestampsRead {
        // Offsets to read per partition, in order, each once.
        let mut by_partition: BTreeMap<(Arc<str>, i32), Vec<i64>> = BTreeMap::new();
        for r in reads {
            by_partition
                .entry((r.topic.clone(), r.partition))
                .or_default()
                .push(r.offset);
        }
        for offsets in by_partition.values_mut() {
            offsets.sort_unstable();
            offsets.dedup();
        }
        // Per partition, how many of its offsets earlier rounds covered.
        let mut done: Vec<usize> = vec![0; by_partition.len()];
        let mut found: HashMap<(Arc<str>, i32, i64), Found> = HashMap::new();
        // A Fetch Kafka refused (no Read ACL on a topic): the records never come, so the unread
        // reads are reported with that refusal rather than as a timeout.
        let mut refused: Option<KafkaCallError> = None;
        let deadline = Instant::now() + timeout;
        loop {
            let wanted: HashMap<(&str, i32), &[i64]> = by_partition
                .iter()
                .zip(done.iter_mut())
                .filter_map(|(((t, p), offsets), done)| {
                    let run = same_pass(offsets.get(*done..)?);
                    *done += run.len();
                    (!run.is_empty()).then_some(((t.as_ref(), *p), run))
                })
                .collect();
            if wanted.is_empty() {
                break;
            }
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
        let mut out = TimestampsRead::default();
        for r in reads {
            let key = (r.topic.clone(), r.partition, r.offset);
            let ts = match found.get(&key) {
                Some(Found::Timestamp(ms)) => Some(*ms),
                Some(Found::NoRecord) => {
                    out.no_record_before_head.push(r.clone());
                    None
                }
                None => None,
            };
            out.timestamps.push((r.clone(), ts));
        }
        out
    }

    fn read_round(
        &self,
        wanted: &HashMap<(&str, i32), &[i64]>,
        deadline: Instant,
        timeout: Duration,
        found: &mut HashMap<(Arc<str>, i32, i64), Found>,
        refused: &mut Option<KafkaCallError>,
    ) -> Result<(), CollectError> {
        // The offset goes on the element just added: rdkafka's `add_partition_offset` finds it
        // again by a linear scan of string compares, O(n²) over the list.
        let mut tpl = TopicPartitionList::with_capacity(wanted.len());
        for ((topic, partition), offsets) in wanted {
            let Some(&first) = offsets.first() else {
                continue;
            };
            tpl.add_partition(topic, *partition)
                .set_offset(Offset::Offset(first))
                .map_err(|e| CollectError::Partition {
                    topic: topic.to_string(),
                    partition: *partition,
                    source: KafkaCallError::from_rdkafka(Request::Assign, e, timeout),
                })?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| KafkaCallError::from_rdkafka(Request::Assign, e, timeout))?;
        // The offsets of each partition still unanswered, in order.
        let mut pending: HashMap<(String, i32), VecDeque<i64>> = wanted
            .iter()
            .filter(|(_, offsets)| !offsets.is_empty())
            .map(|((t, p), offsets)| ((t.to_string(), *p), offsets.iter().copied().collect()))
            .collect();
        // After assign() (which undoes earlier splits): one queue per partition, so that an
        // end-of-partition event, which carries only the partition id, is known by its topic.
        let queues: Vec<_> = pending
            .keys()
            .filter_map(|(t, p)| {
                let queue = self.consumer.split_partition_queue(t, *p)?;
                Some(((t.clone(), *p), queue))
            })
            .collect();
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Serves callbacks and delivers what was fetched before the split; the partition
            // queues are drained below, so the wait is short.
            match self.consumer.poll(left.min(Duration::from_millis(20))) {
                Some(Ok(message)) => take_record(&message, &mut pending, found),
                // librdkafka names no partition with a consumer error; the reads still unread at
                // the end are the ones it concerns. Other errors are transient: librdkafka retries.
                Some(Err(e)) if e.rdkafka_error_code().is_some_and(is_authorization) => {
                    refused.get_or_insert(KafkaCallError::from_rdkafka(Request::Fetch, e, timeout));
                }
                // An end of partition here could be any topic's: the partition queue says which.
                Some(Err(e)) => tracing::debug!(error = %e, "timestamp read"),
                None => {}
            }
            for (key, queue) in &queues {
                while pending.contains_key(key) {
                    match queue.poll(Duration::ZERO) {
                        Some(Ok(message)) => take_record(&message, &mut pending, found),
                        // No record before the head: none for any offset left of the partition.
                        Some(Err(KafkaError::PartitionEOF(_))) => {
                            for target in pending.remove(key).unwrap_or_default() {
                                found.insert(
                                    (Arc::from(key.0.as_str()), key.1, target),
                                    Found::NoRecord,
                                );
                            }
                        }
                        Some(Err(e)) if e.rdkafka_error_code().is_some_and(is_authorization) => {
                            refused.get_or_insert(KafkaCallError::from_rdkafka(
                                Request::Fetch,
                                e,
                                timeout,
                            ));
                        }
                        Some(Err(e)) => tracing::debug!(error = %e, "timestamp read"),
                        None => break,
                    }
                }
            }
        }
        Ok(())
    }
}

/// Offsets farther than this past the previous offset of their partition wait for a round of
/// their own rather than have the records between them consumed.
const SAME_PASS_GAP: i64 = 256;

/// The first offsets of `offsets` (sorted) that one round reads in a single pass: each within
/// [`SAME_PASS_GAP`] of the one before.
fn same_pass(offsets: &[i64]) -> &[i64] {
    let len = offsets
        .windows(2)
        .position(|w| w[1] - w[0] > SAME_PASS_GAP)
        .map_or(offsets.len(), |i| i + 1);
    &offsets[..len]
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

/// What a read found.
#[derive(Debug, Clone, Copy)]
enum Found {
    /// Timestamp (ms since the epoch) of the first record at or after the offset.
    Timestamp(i64),
    /// The partition ended before any record at or after the offset.
    NoRecord,
}

/// Takes `message` as the answer of every pending read of its partition at or before its offset:
/// records arrive in offset order, so it is the first record at or after each of them (earlier
/// records are the rest of a batch the fetch started in).
fn take_record(
    message: &BorrowedMessage<'_>,
    pending: &mut HashMap<(String, i32), VecDeque<i64>>,
    found: &mut HashMap<(Arc<str>, i32, i64), Found>,
) {
    let key = (message.topic().to_string(), message.partition());
    let Some(targets) = pending.get_mut(&key) else {
        return;
    };
    let timestamp = message.timestamp().to_millis();
    while let Some(&target) = targets.front() {
        if message.offset() < target {
            break;
        }
        targets.pop_front();
        if let Some(ts) = timestamp {
            found.insert(
                (Arc::from(key.0.as_str()), key.1, target),
                Found::Timestamp(ts),
            );
        }
    }
    if targets.is_empty() {
        pending.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_reads_a_run_of_close_offsets_and_leaves_far_ones_for_later() {
        // (sorted offsets, the run of the first round, why)
        let cases: [(&[i64], &[i64], &str); 5] = [
            (&[], &[], "1: nothing to read"),
            (&[7], &[7], "2: one offset"),
            (
                &[10, 40, 296],
                &[10, 40, 296],
                "3: each within the gap of the one before",
            ),
            (
                &[10, 267, 300],
                &[10],
                "4: the second is past the gap: it waits",
            ),
            (
                &[0, 256, 512, 10_000],
                &[0, 256, 512],
                "5: a chain; the far one waits",
            ),
        ];
        for (offsets, run, why) in cases {
            assert_eq!(same_pass(offsets), run, "{why}");
        }
    }
}
