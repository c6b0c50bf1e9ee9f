//! The metadata and offsets stages: which partitions exist, who leads them, and their low and
//! high watermarks through batched ListOffsets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::error::{BrokerRef, CollectError, KafkaCallError, Request, StageError};
use super::{ClusterCollector, Stage, StatsContext};
use crate::model::PartitionOffsets;

/// Topics per ListOffsets call: brokers get slow on huge requests (PRODUCT.md §10, §11).
const TOPICS_PER_LIST_OFFSETS: usize = 50;

/// Selected topics with their partition ids, sorted by name.
pub(super) type TopicPartitions = Vec<(String, Vec<i32>)>;

/// Partition leaders and broker addresses of the last metadata, to name the broker a failed
/// request went to.
#[derive(Debug, Clone, Default)]
pub struct Leaders {
    leaders: HashMap<(String, i32), i32>,
    addresses: HashMap<i32, String>,
    /// The last leader metadata named for each partition now without one: the broker whose
    /// loss took the partition offline, which is what its error should name.
    previous: HashMap<(String, i32), i32>,
    /// The brokers of the latest metadata, by node id.
    brokers: Vec<i32>,
}

impl Leaders {
    /// Takes the leaders of the latest metadata. Broker addresses are merged, not replaced: a
    /// broker that just went down drops out of the metadata's broker list while it still leads
    /// partitions, and that is when its address matters.
    fn update(&mut self, metadata: &Metadata) {
        let leaders: HashMap<(String, i32), i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .map(move |p| ((t.name().to_string(), p.id()), p.leader()))
            })
            .collect();
        self.take_leaders(leaders);
        self.brokers = metadata.brokers().iter().map(|b| b.id()).collect();
        self.remember(
            metadata
                .brokers()
                .iter()
                .map(|b| (b.id(), format!("{}:{}", b.host(), b.port()))),
        );
    }

    /// Replaces the leaders, keeping the last known leader of each partition left without one.
    fn take_leaders(&mut self, leaders: HashMap<(String, i32), i32>) {
        let previous: HashMap<(String, i32), i32> = leaders
            .iter()
            .filter(|(_, &id)| id < 0)
            .filter_map(|(key, _)| {
                let last = match self.leaders.get(key) {
                    Some(&id) if id >= 0 => id,
                    _ => *self.previous.get(key)?,
                };
                Some((key.clone(), last))
            })
            .collect();
        self.previous = previous;
        self.leaders = leaders;
    }

    /// The last leader of a partition that has none now, when one was seen.
    pub fn previous_of(&self, topic: &str, partition: i32) -> Option<BrokerRef> {
        let id = *self.previous.get(&(topic.to_string(), partition))?;
        Some(BrokerRef::Node {
            id,
            address: self.addresses.get(&id).cloned(),
        })
    }

    /// The node ids of the latest metadata's brokers.
    pub fn brokers(&self) -> &[i32] {
        &self.brokers
    }

    /// Every broker address metadata named, by node id (the native path connects by them).
    pub fn addresses(&self) -> impl Iterator<Item = (i32, String)> + '_ {
        self.addresses.iter().map(|(id, a)| (*id, a.clone()))
    }

    fn remember(&mut self, addresses: impl Iterator<Item = (i32, String)>) {
        self.addresses.extend(addresses);
    }

    /// The leader of a partition, when the metadata named one (-1 is "no leader").
    pub fn of(&self, topic: &str, partition: i32) -> Option<BrokerRef> {
        let id = self.id_of(topic, partition)?;
        Some(BrokerRef::Node {
            id,
            address: self.addresses.get(&id).cloned(),
        })
    }

    /// The node id of a partition's leader, when the metadata named one.
    fn id_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let id = *self.leaders.get(&(topic.to_string(), partition))?;
        (id >= 0).then_some(id)
    }

    /// The one broker leading all the given partitions; `None` when they have several or none.
    pub fn common<'a>(
        &self,
        mut partitions: impl Iterator<Item = (&'a str, i32)>,
    ) -> Option<BrokerRef> {
        let (topic, partition) = partitions.next()?;
        let first = self.of(topic, partition)?;
        partitions
            .all(|(t, p)| self.of(t, p).as_ref() == Some(&first))
            .then_some(first)
    }
}

impl ClusterCollector {
    /// Selected topics with their partition ids, sorted by name; records the leaders. Topics the
    /// selector names exactly that the metadata left out and that Kafka refuses to describe by
    /// name go to `unauthorized`.
    pub(super) fn topic_partitions(
        &mut self,
        timeout: Duration,
        unauthorized: &mut Vec<String>,
    ) -> Result<TopicPartitions, StageError> {
        let metadata = self.consumer.fetch_metadata(None, timeout).map_err(|e| {
            StageError::new(
                Stage::Metadata,
                Some(BrokerRef::Bootstrap(
                    self.settings.cluster.bootstrap_servers.clone(),
                )),
                KafkaCallError::from_rdkafka(Request::Metadata, e, timeout),
            )
        })?;
        self.leaders.update(&metadata);
        let mut topics: TopicPartitions = metadata
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
        let listed: HashSet<&str> = metadata.topics().iter().map(|t| t.name()).collect();
        for name in self.settings.cluster.topics.literal_names() {
            if !listed.contains(name.as_str()) && self.topic_refused(&name, timeout) {
                unauthorized.push(name);
            }
        }
        Ok(topics)
    }

    /// Whether Kafka refuses to describe `topic` to this principal. A Metadata request for all
    /// topics leaves out the ones it may not Describe; one naming the topic says
    /// TOPIC_AUTHORIZATION_FAILED instead (a deleted topic: UNKNOWN_TOPIC_OR_PART). Only topics
    /// the metadata left out are asked about, one request each: the cost stays with the few
    /// names a selector spells out, and only while they are missing. A failed probe counts as
    /// not refused: the metadata stage already answers for the cluster being unreachable.
    fn topic_refused(&self, topic: &str, timeout: Duration) -> bool {
        self.consumer
            .fetch_metadata(Some(topic), timeout)
            .is_ok_and(|m| {
                m.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error()
                            == Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
                })
            })
    }

    /// Low and high watermarks of every partition, by topic. Each leader of the last metadata
    /// gets its own two ListOffsets calls (earliest, latest) per chunk of topics, on a thread of
    /// its own: a leader that died since the metadata was read costs its partitions and one
    /// call timeout, while the other leaders' partitions are read as usual. A partition
    /// without a leader is not asked for. Partition errors, a failed leader and a leaderless
    /// partition are pushed to `errors`; the stage fails when no leader answered.
    pub(super) fn watermarks(
        &self,
        topics: &[(String, Vec<i32>)],
        timeout: Duration,
        errors: &mut Vec<StageError>,
    ) -> Result<HashMap<String, Vec<PartitionOffsets>>, StageError> {
        let mut by_leader: BTreeMap<i32, TopicPartitions> = BTreeMap::new();
        let mut leaderless: Vec<StageError> = Vec::new();
        for (topic, ids) in topics {
            for &p in ids {
                let Some(leader) = self.leaders.id_of(topic, p) else {
                    leaderless.push(StageError::new(
                        Stage::ListOffsets,
                        self.leaders.previous_of(topic, p),
                        CollectError::NoLeader {
                            topic: topic.clone(),
                            partition: p,
                        },
                    ));
                    continue;
                };
                let list = by_leader.entry(leader).or_default();
                match list.last_mut() {
                    Some((t, ps)) if t == topic => ps.push(p),
                    _ => list.push((topic.clone(), vec![p])),
                }
            }
        }
        let (consumer, leaders) = (&*self.consumer, &self.leaders);
        let answers: Vec<(i32, Result<Watermarks, StageError>)> = std::thread::scope(|s| {
            let running: Vec<_> = by_leader
                .iter()
                .map(|(&id, partitions)| {
                    let call = move || leader_watermarks(consumer, leaders, partitions, timeout);
                    (id, s.spawn(call))
                })
                .collect();
            running
                .into_iter()
                .map(|(id, thread)| {
                    let answer = thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (id, answer)
                })
                .collect()
        });
        let mut offsets = Watermarks::new();
        let mut failed_leaders: Vec<i32> = Vec::new();
        let mut failures: Vec<StageError> = Vec::new();
        for (id, answer) in answers {
            match answer {
                Ok(o) => offsets.extend(o),
                Err(e) => {
                    failed_leaders.push(id);
                    failures.push(e);
                }
            }
        }
        let nobody_answered = if by_leader.is_empty() {
            !leaderless.is_empty()
        } else {
            failed_leaders.len() == by_leader.len()
        };
        failures.append(&mut leaderless);
        if nobody_answered && !failures.is_empty() {
            let first = failures.remove(0);
            errors.append(&mut failures);
            return Err(first);
        }
        errors.append(&mut failures);
        let mut out: HashMap<String, Vec<PartitionOffsets>> = HashMap::new();
        for (topic, ids) in topics {
            let mut partitions = Vec::with_capacity(ids.len());
            for &p in ids {
                // Already reported: by its leader's failure, or as leaderless.
                let leader = self.leaders.id_of(topic, p);
                if leader.is_none_or(|id| failed_leaders.contains(&id)) {
                    continue;
                }
                let failure = match offsets.get(&(topic.clone(), p)) {
                    Some((Ok(l), Ok(h))) => {
                        partitions.push(PartitionOffsets {
                            partition: p,
                            earliest: *l,
                            latest: (*h).max(*l),
                        });
                        continue;
                    }
                    Some((Err(e), _)) | Some((_, Err(e))) => e.clone(),
                    None => CollectError::NoOffset {
                        request: Request::ListOffsetsLatest,
                        topic: topic.clone(),
                        partition: p,
                    },
                };
                errors.push(StageError::new(
                    Stage::ListOffsets,
                    self.leaders.of(topic, p),
                    failure,
                ));
            }
            if !partitions.is_empty() {
                out.insert(topic.clone(), partitions);
            }
        }
        Ok(out)
    }
}

/// Earliest and latest offset (or the partition's error) by partition.
type Watermarks = HashMap<(String, i32), (Result<i64, CollectError>, Result<i64, CollectError>)>;

/// The watermarks of the partitions one broker leads: earliest and latest per chunk of topics.
/// The first failed call ends it: the leader is not answering, its other calls would only wait.
fn leader_watermarks(
    consumer: &BaseConsumer<StatsContext>,
    leaders: &Leaders,
    topics: &[(String, Vec<i32>)],
    timeout: Duration,
) -> Result<Watermarks, StageError> {
    let mut out = Watermarks::new();
    for chunk in topics.chunks(TOPICS_PER_LIST_OFFSETS) {
        let earliest = list_offsets(
            consumer,
            leaders,
            chunk,
            Request::ListOffsetsEarliest,
            timeout,
        )?;
        let latest = list_offsets(
            consumer,
            leaders,
            chunk,
            Request::ListOffsetsLatest,
            timeout,
        )?;
        let partitions = chunk
            .iter()
            .flat_map(|(t, ids)| ids.iter().map(move |&p| (t, p)));
        for (((topic, p), low), high) in partitions.zip(earliest).zip(latest) {
            out.insert((topic.clone(), p), (low, high));
        }
    }
    Ok(out)
}

/// One ListOffsets call for every partition of `topics`: the offset or error of each partition,
/// in the order of `topics` and their partition ids.
///
/// The list is built by setting the offset on the element just added and read back by index:
/// rdkafka's `add_partition_offset` and `find_partition` find an element by a linear scan of
/// string compares, which makes a list of n partitions cost O(n²).
fn list_offsets(
    consumer: &BaseConsumer<StatsContext>,
    leaders: &Leaders,
    topics: &[(String, Vec<i32>)],
    request: Request,
    timeout: Duration,
) -> Result<Vec<Result<i64, CollectError>>, StageError> {
    let spec = match request {
        Request::ListOffsetsEarliest => Offset::Beginning,
        _ => Offset::End,
    };
    let partitions = || {
        topics
            .iter()
            .flat_map(|(t, ids)| ids.iter().map(move |&p| (t.as_str(), p)))
    };
    let mut tpl = TopicPartitionList::with_capacity(partitions().count());
    for (topic, p) in partitions() {
        tpl.add_partition(topic, p).set_offset(spec).map_err(|e| {
            StageError::new(
                Stage::ListOffsets,
                leaders.of(topic, p),
                CollectError::Partition {
                    topic: topic.to_string(),
                    partition: p,
                    source: KafkaCallError::from_rdkafka(request, e, timeout),
                },
            )
        })?;
    }
    if tpl.count() == 0 {
        return Ok(Vec::new());
    }
    let answer = consumer.offsets_for_times(tpl, timeout).map_err(|e| {
        StageError::new(
            Stage::ListOffsets,
            leaders.common(partitions()),
            KafkaCallError::from_rdkafka(request, e, timeout),
        )
    })?;
    // librdkafka answers in the list it was given: same elements, same order.
    let elements = answer.elements();
    Ok(partitions()
        .enumerate()
        .map(|(i, (topic, partition))| {
            let Some(e) = elements
                .get(i)
                .filter(|e| e.partition() == partition && e.topic() == topic)
            else {
                return Err(CollectError::NoOffset {
                    request,
                    topic: topic.to_string(),
                    partition,
                });
            };
            match (e.error(), e.offset()) {
                (Err(err), _) => Err(CollectError::Partition {
                    topic: topic.to_string(),
                    partition,
                    source: KafkaCallError::from_rdkafka(request, err, timeout),
                }),
                (Ok(()), Offset::Offset(o)) if o >= 0 => Ok(o),
                (Ok(()), other) => Err(CollectError::UnexpectedOffset {
                    request,
                    topic: topic.to_string(),
                    partition,
                    offset: format!("{other:?}"),
                }),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaders() -> Leaders {
        Leaders {
            leaders: HashMap::from([
                (("a".to_string(), 0), 1),
                (("a".to_string(), 1), 2),
                (("b".to_string(), 0), 1),
                (("c".to_string(), 0), -1),
            ]),
            addresses: HashMap::from([(1, "k1:9092".to_string())]),
            previous: HashMap::new(),
            brokers: vec![1],
        }
    }

    #[test]
    fn a_partition_that_lost_its_leader_names_the_last_one_until_it_has_one_again() {
        let mut l = leaders();
        let key = |p: i32| ("a".to_string(), p);
        // 1. Node 1 lost: a/0 has no leader, and its error names node 1.
        l.take_leaders(HashMap::from([(key(0), -1), (key(1), 2)]));
        let node1 = Some(BrokerRef::Node {
            id: 1,
            address: Some("k1:9092".into()),
        });
        assert_eq!(l.of("a", 0), None);
        assert_eq!(l.previous_of("a", 0), node1);
        // 2. Still without a leader a poll later: still node 1.
        l.take_leaders(HashMap::from([(key(0), -1), (key(1), 2)]));
        assert_eq!(l.previous_of("a", 0), node1);
        // 3. Led again: no previous leader kept.
        l.take_leaders(HashMap::from([(key(0), 3), (key(1), 2)]));
        assert_eq!(l.previous_of("a", 0), None);
        assert_eq!(l.previous_of("a", 1), None);
    }

    #[test]
    fn a_failure_names_the_leader_only_when_there_is_exactly_one() {
        let l = leaders();
        let node1 = Some(BrokerRef::Node {
            id: 1,
            address: Some("k1:9092".into()),
        });
        // 1. A partition led by a broker metadata listed: id and address.
        assert_eq!(l.of("a", 0), node1);
        // 2. A leader missing from the broker list: its id alone.
        assert_eq!(
            l.of("a", 1),
            Some(BrokerRef::Node {
                id: 2,
                address: None
            })
        );
        // 3. No leader (-1) or an unknown partition: no broker to name.
        assert_eq!(l.of("c", 0), None);
        assert_eq!(l.of("z", 0), None);
        // 4. A call over partitions of one leader names it; over two leaders, neither.
        assert_eq!(l.common([("a", 0), ("b", 0)].into_iter()), node1);
        assert_eq!(l.common([("a", 0), ("a", 1)].into_iter()), None);
        assert_eq!(l.common(std::iter::empty()), None);
    }

    #[test]
    fn a_broker_missing_from_newer_metadata_keeps_its_address() {
        let mut l = leaders();
        // Broker 1 went down (no longer listed); broker 2 appeared, then moved.
        l.remember([(2, "k2:9092".to_string())].into_iter());
        l.remember([(2, "k2b:9092".to_string())].into_iter());
        assert_eq!(
            l.of("a", 0),
            Some(BrokerRef::Node {
                id: 1,
                address: Some("k1:9092".into())
            })
        );
        assert_eq!(
            l.of("a", 1),
            Some(BrokerRef::Node {
                id: 2,
                address: Some("k2b:9092".into())
            })
        );
    }
}
