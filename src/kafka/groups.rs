//! The group stages: list groups, describe them, fetch their committed offsets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use super::admin_sys::{self, GroupKind, GroupOffset};
use super::error::{BrokerRef, CollectError, KafkaCallError, Request, StageError};
use super::native::{
    Described, NativeClient, NativeError, ShareGroupDescription, StreamsGroupDescription,
};
use super::{stage_timeout, ClusterCollector, Deadline, Stage, StatsContext};
use crate::model::{CommittedOffset, GroupSnapshot, GroupState, GroupType, TopicSnapshot};

impl ClusterCollector {
    /// Lists, describes and fetches the committed offsets of every selected group. Selected
    /// groups Kafka refuses to describe (listed ones whose OffsetFetch it refused, and exactly
    /// named ones the listing left out) go to `unauthorized`.
    pub(super) fn groups(
        &mut self,
        topics: &[TopicSnapshot],
        deadline: &Deadline,
        errors: &mut Vec<StageError>,
        unauthorized: &mut Vec<String>,
    ) -> Vec<GroupSnapshot> {
        // Group id -> (state from the listing, type); a BTreeMap also deduplicates groups a
        // coordinator move lists twice.
        let (mut listed, listing_complete) = self.list_groups(deadline, errors);
        let selector = &self.settings.cluster.groups;
        listed.retain(|id, _| selector.matches(id) && self.settings.shard.owns(id));
        // ListGroups leaves out the groups this principal may not Describe (unless it may
        // Describe the cluster). An exactly named group it left out is asked about by name: its
        // description says GROUP_AUTHORIZATION_FAILED when it is hidden, and dead or not found
        // when it does not exist. DescribeConsumerGroups, not OffsetFetch: librdkafka's answer
        // to an OffsetFetch its coordinator is not ready for (NOT_COORDINATOR, as for a group
        // whose coordinator is still loading) crashes a handle without a group of its own. Only
        // after a complete listing: otherwise a group on an unanswering coordinator would be
        // asked about every poll.
        let probe_timeout = deadline.timeout(Stage::ListGroups);
        if let (true, Some(timeout)) = (listing_complete, probe_timeout) {
            let shard = &self.settings.shard;
            let missing: Vec<String> = selector
                .literal_names()
                .into_iter()
                .filter(|g| !listed.contains_key(g) && shard.owns(g))
                .collect();
            // A failed probe counts as not refused: the listing already answered for the cluster.
            if let Ok(probed) =
                admin_sys::describe_consumer_groups(self.consumer.client(), &missing, timeout)
            {
                for failure in probed.into_iter().filter_map(Result::err) {
                    if is_group_refusal(&failure.error) && missing.contains(&failure.group_id) {
                        unauthorized.push(failure.group_id);
                    }
                }
            }
        }
        // Without a coordinator handle of its own, the main handle serves (with its cache).
        let coordinator = match self.coordinator_client() {
            Ok(c) => c,
            Err(e) => {
                errors.push(StageError::new(Stage::OffsetFetch, None, e));
                self.consumer.clone()
            }
        };
        let (described, describe_timed_out) =
            self.describe_groups(&coordinator, &listed, deadline, errors);
        // Share groups commit nothing for OffsetFetch to read: their start offsets come from
        // DescribeShareGroupOffsets; every other type commits offsets.
        let (share_ids, ids): (Vec<String>, Vec<String>) = listed
            .keys()
            .cloned()
            .partition(|id| listed.get(id).is_some_and(|(_, k)| *k == GroupType::Share));
        let (fetched, fetch_timed_out) = match stage_timeout(deadline, Stage::OffsetFetch, errors) {
            Some(timeout) => self.committed_offsets(&coordinator, &ids, timeout),
            None => (Vec::new(), false),
        };
        let shared = self.share_offsets(&share_ids, deadline, errors);
        self.coordinator_done(describe_timed_out || fetch_timed_out);
        let topic_names: HashMap<&str, &Arc<str>> =
            topics.iter().map(|t| (t.name.as_ref(), &t.name)).collect();
        let mut groups = Vec::with_capacity(listed.len());
        let mut current: HashMap<String, (GroupSnapshot, bool)> = HashMap::new();
        // Groups the poll had no time left to fetch get no result and no error of their own.
        let mut results: HashMap<String, FetchResult> = ids
            .into_iter()
            .zip(fetched)
            .chain(share_ids.into_iter().zip(shared))
            .collect();
        for (id, (listed_state, group_type)) in listed {
            let result = results.remove(&id);
            let (state, members) = described.get(&id).copied().unwrap_or((listed_state, None));
            if let Some(Err((broker, source))) = &result {
                if is_group_refusal(source) {
                    unauthorized.push(id.clone());
                }
                errors.push(StageError::new(
                    Stage::OffsetFetch,
                    broker.clone(),
                    CollectError::Group {
                        group: id.clone(),
                        source: source.clone(),
                    },
                ));
            }
            match result {
                Some(Ok(raw)) => {
                    let mut offsets: Vec<CommittedOffset> = raw
                        .into_iter()
                        .filter_map(|(o, broker_lag)| {
                            Some(CommittedOffset {
                                topic: (*topic_names.get(o.topic.as_str())?).clone(),
                                partition: o.partition,
                                offset: o.offset,
                                broker_lag,
                            })
                        })
                        .collect();
                    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                    let group = GroupSnapshot {
                        id: id.clone(),
                        group_type,
                        state,
                        members,
                        offsets,
                    };
                    current.insert(id, (group.clone(), false));
                    groups.push(group);
                }
                Some(Err(_)) | None => {
                    // A group whose own request failed keeps its previous data for one poll.
                    if let Some((previous, false)) = self.previous_groups.get(&id) {
                        current.insert(id, (previous.clone(), true));
                        groups.push(previous.clone());
                    }
                }
            }
        }
        self.previous_groups = current;
        unauthorized.sort();
        groups
    }

    /// The native client, once its request versions were checked against a broker; `None`
    /// (from now on, logged once) when a broker lacks one, or when the cluster needs librdkafka.
    fn native_ready(&mut self) -> Option<&mut NativeClient> {
        let native = self.native.as_mut()?;
        native.set_brokers(self.leaders.addresses());
        if !self.native_checked {
            match native.check_versions() {
                Ok(_) => self.native_checked = true,
                // A broker too old for batched requests: librdkafka from now on.
                Err(e) if matches!(e.error, KafkaCallError::Unsupported { .. }) => {
                    super::native_refused(&self.settings.cluster.name, &e.error.to_string());
                    self.native = None;
                }
                // Unreachable now: the requests report it, and the next poll checks again.
                Err(_) => {}
            }
        }
        // Which Kafka 4 group requests the brokers speak: read off the versions a connection
        // already knows, once.
        if let (true, None, Some(native)) = (
            self.native_checked,
            &self.group_versions,
            self.native.as_mut(),
        ) {
            self.group_versions = native.group_type_versions().ok();
        }
        self.native.as_mut()
    }

    /// Every group of the polled types with its listed state and type, and whether every broker
    /// answered: ListGroups v5 per broker over the native path, else librdkafka's
    /// ListConsumerGroups. Without any listing, the groups of the last poll.
    fn list_groups(
        &mut self,
        deadline: &Deadline,
        errors: &mut Vec<StageError>,
    ) -> (BTreeMap<String, (GroupState, GroupType)>, bool) {
        let mut listed = BTreeMap::new();
        let brokers = self.leaders.brokers().to_vec();
        let timeout = stage_timeout(deadline, Stage::ListGroups, errors);
        let native = match timeout {
            Some(_) => self.native_ready(),
            None => None,
        };
        let listing = match (timeout, native) {
            (None, _) => None,
            (Some(timeout), Some(native)) => {
                let list = native.list_groups(&brokers, timeout);
                let complete = list.errors.is_empty();
                let failed = list.groups.is_empty() && !complete;
                for e in list.errors {
                    errors.push(StageError::new(Stage::ListGroups, e.broker, e.error));
                }
                for g in list.groups {
                    let kind = GroupType::from_broker(&g.group_type).unwrap_or_default();
                    listed.insert(g.group_id, (GroupState::from_broker(&g.state), kind));
                }
                (!failed).then_some(complete)
            }
            // librdkafka reports a broker's listing error without the broker: no broker field.
            (Some(timeout), None) => {
                match admin_sys::list_consumer_groups(self.consumer.client(), timeout) {
                    Ok(list) => {
                        let complete = list.errors.is_empty();
                        for e in list.errors {
                            errors.push(StageError::new(Stage::ListGroups, None, e));
                        }
                        for g in list.groups {
                            let kind = match g.kind {
                                GroupKind::Consumer => GroupType::Consumer,
                                GroupKind::Classic | GroupKind::Unknown => GroupType::Classic,
                            };
                            listed.insert(g.group_id, (GroupState::from_broker(g.state), kind));
                        }
                        Some(complete)
                    }
                    Err(e) => {
                        errors.push(StageError::new(Stage::ListGroups, None, e));
                        None
                    }
                }
            }
        };
        match listing {
            Some(complete) => (listed, complete),
            None => {
                // Without a listing, keep polling the groups seen last time.
                for (id, (g, _)) in &self.previous_groups {
                    listed.insert(id.clone(), (g.state, g.group_type));
                }
                (listed, false)
            }
        }
    }

    /// The committed offsets of each group, one result per group in order, a failure with the
    /// broker it went to when known: over the native path, batched per coordinator, unless the
    /// cluster needs librdkafka (one group per call on `coordinator`). Also says whether a
    /// librdkafka call timed out (`coordinator`'s cache may be stale).
    fn committed_offsets(
        &mut self,
        coordinator: &BaseConsumer<StatsContext>,
        ids: &[String],
        timeout: Duration,
    ) -> (Vec<FetchResult>, bool) {
        if let Some(native) = self.native_ready() {
            let fetched = native
                .committed_offsets(ids, timeout)
                .into_iter()
                .map(|r| r.map(without_broker_lag).map_err(|e| (e.broker, e.error)))
                .collect();
            return (fetched, false);
        }
        let fetched = admin_sys::list_consumer_group_offsets(
            coordinator.client(),
            ids,
            self.settings.offset_fetch_concurrency,
            timeout,
        );
        let timed_out = fetched
            .iter()
            .any(|r| matches!(r, Err(KafkaCallError::Timeout { .. })));
        let fetched = fetched
            .into_iter()
            .map(|r| r.map(without_broker_lag).map_err(|e| (None, e)))
            .collect();
        (fetched, timed_out)
    }

    /// The share-partition start offset and the broker's lag of every partition of each share
    /// group, one result per group in order (DescribeShareGroupOffsets, batched per
    /// coordinator, within the OffsetFetch stage's time). Share groups are listed only over the
    /// native path; a broker without DescribeShareGroupOffsets gives them no partitions.
    fn share_offsets(
        &mut self,
        ids: &[String],
        deadline: &Deadline,
        errors: &mut Vec<StageError>,
    ) -> Vec<FetchResult> {
        if ids.is_empty() {
            return Vec::new();
        }
        let Some(timeout) = stage_timeout(deadline, Stage::OffsetFetch, errors) else {
            return Vec::new();
        };
        let speaks = self.speaks(Request::DescribeShareGroupOffsets);
        let Some(native) = self.native_ready() else {
            return Vec::new();
        };
        if !speaks {
            return ids.iter().map(|_| Ok(Vec::new())).collect();
        }
        native
            .share_group_offsets(ids, timeout)
            .into_iter()
            .map(|r| {
                r.map(|offsets| {
                    offsets
                        .into_iter()
                        .map(|(topic, partition, entry)| {
                            let offset = GroupOffset {
                                topic,
                                partition,
                                offset: entry.start_offset,
                            };
                            (offset, entry.lag)
                        })
                        .collect()
                })
                .map_err(|e| (e.broker, e.error))
            })
            .collect()
    }

    /// Whether the cluster's brokers speak a Kafka 4 group request (as checked once, with the
    /// native path's versions); false while that is not known.
    fn speaks(&self, request: Request) -> bool {
        self.group_versions
            .as_ref()
            .and_then(|v| v.get(&request).copied().flatten())
            .is_some()
    }

    /// State and member count per group: classic groups through the classic DescribeGroups
    /// (batched per coordinator); over the native path KIP-848 groups through
    /// ConsumerGroupDescribe, share groups through ShareGroupDescribe and streams groups through
    /// StreamsGroupDescribe (the broker's own state names), else KIP-848 groups through
    /// librdkafka's DescribeConsumerGroups. Also says whether a DescribeConsumerGroups call
    /// timed out (`coordinator`'s cache may be stale).
    fn describe_groups(
        &mut self,
        coordinator: &BaseConsumer<StatsContext>,
        listed: &BTreeMap<String, (GroupState, GroupType)>,
        deadline: &Deadline,
        errors: &mut Vec<StageError>,
    ) -> (HashMap<String, (GroupState, Option<u32>)>, bool) {
        let mut out = HashMap::new();
        let mut timed_out = false;
        let of_kind = |kind: GroupType| -> Vec<String> {
            listed
                .iter()
                .filter(|(_, (_, k))| *k == kind)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let classic = of_kind(GroupType::Classic);
        let timeout = describe_timeout(&classic, deadline, errors);
        if let Some(timeout) = timeout {
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
                // rd_kafka_list_groups asks every broker; its error names none of them.
                Err(e) => errors.push(StageError::new(
                    Stage::DescribeGroups,
                    None,
                    KafkaCallError::from_rdkafka(Request::DescribeGroups, e, timeout),
                )),
            }
        }
        timed_out |= self.describe_consumer_kind(
            coordinator,
            &of_kind(GroupType::Consumer),
            deadline,
            errors,
            &mut out,
        );
        // Share and streams groups are listed only over the native path.
        let share = of_kind(GroupType::Share);
        let streams = of_kind(GroupType::Streams);
        let share = match self.speaks(Request::ShareGroupDescribe) {
            true => share,
            false => Vec::new(),
        };
        let timeout = describe_timeout(&share, deadline, errors);
        if let (Some(timeout), Some(native)) = (timeout, self.native_ready()) {
            let described = native.describe_share_groups(&share, timeout);
            let read = |d: ShareGroupDescription| (d.state, d.members.len());
            described_into(&share, described, read, errors, &mut out);
        }
        if !self.speaks(Request::StreamsGroupDescribe) {
            // A broker that lists streams groups but does not describe them (the request
            // turned off, or a version lagwatch does not speak): no state lagwatch can vouch
            // for, and no member count.
            for id in streams {
                out.insert(id, (GroupState::Unknown, None));
            }
            return (out, timed_out);
        }
        let timeout = describe_timeout(&streams, deadline, errors);
        if let (Some(timeout), Some(native)) = (timeout, self.native_ready()) {
            let described = native.describe_streams_groups(&streams, timeout);
            let read = |d: StreamsGroupDescription| (d.state, d.members.len());
            described_into(&streams, described, read, errors, &mut out);
        }
        (out, timed_out)
    }

    /// KIP-848 groups' states and member counts: ConsumerGroupDescribe over the native path,
    /// else librdkafka's DescribeConsumerGroups; true when a DescribeConsumerGroups call timed
    /// out.
    fn describe_consumer_kind(
        &mut self,
        coordinator: &BaseConsumer<StatsContext>,
        consumer_kind: &[String],
        deadline: &Deadline,
        errors: &mut Vec<StageError>,
        out: &mut HashMap<String, (GroupState, Option<u32>)>,
    ) -> bool {
        let mut timed_out = false;
        let Some(timeout) = describe_timeout(consumer_kind, deadline, errors) else {
            return timed_out;
        };
        if let Some(native) = self.native_ready() {
            let described = native.describe_consumer_groups(consumer_kind, timeout);
            let read = |d: Described| (d.state, d.members);
            described_into(consumer_kind, described, read, errors, out);
        } else {
            match admin_sys::describe_consumer_groups(coordinator.client(), consumer_kind, timeout)
            {
                Ok(results) => {
                    for r in results {
                        timed_out |= matches!(
                            &r,
                            Err(f) if matches!(f.error, KafkaCallError::Timeout { .. })
                        );
                        match r {
                            Ok(d) => {
                                out.insert(
                                    d.group_id,
                                    (GroupState::from_broker(d.state), Some(d.members)),
                                );
                            }
                            Err(f) => errors.push(StageError::new(
                                Stage::DescribeGroups,
                                f.coordinator,
                                CollectError::Group {
                                    group: f.group_id,
                                    source: f.error,
                                },
                            )),
                        }
                    }
                }
                Err(e) => {
                    timed_out |= matches!(e, KafkaCallError::Timeout { .. });
                    errors.push(StageError::new(Stage::DescribeGroups, None, e));
                }
            }
        }
        timed_out
    }
}

/// One group's committed offsets (for a share group, its start offsets), each with the broker's
/// lag when it counts one, or the failure and the broker it came from when known.
type FetchResult = Result<Vec<(GroupOffset, Option<i64>)>, (Option<BrokerRef>, KafkaCallError)>;

/// Puts each group's state and member count, as `read` takes them from its description, into
/// `out`; a group that could not be described is a DescribeGroups error of its own.
fn described_into<T, N>(
    ids: &[String],
    described: Vec<Result<T, NativeError>>,
    read: impl Fn(T) -> (String, N),
    errors: &mut Vec<StageError>,
    out: &mut HashMap<String, (GroupState, Option<u32>)>,
) where
    u32: TryFrom<N>,
{
    for (id, r) in ids.iter().zip(described) {
        match r {
            Ok(d) => {
                let (state, members) = read(d);
                let members = u32::try_from(members).unwrap_or(u32::MAX);
                out.insert(id.clone(), (GroupState::from_broker(&state), Some(members)));
            }
            Err(e) => errors.push(StageError::new(
                Stage::DescribeGroups,
                e.broker,
                CollectError::Group {
                    group: id.clone(),
                    source: e.error,
                },
            )),
        }
    }
}

/// The time left for describing `ids`; none asked for when there are none.
fn describe_timeout(
    ids: &[String],
    deadline: &Deadline,
    errors: &mut Vec<StageError>,
) -> Option<Duration> {
    match ids.is_empty() {
        true => None,
        false => stage_timeout(deadline, Stage::DescribeGroups, errors),
    }
}

/// Committed offsets, for which no broker counts a lag.
fn without_broker_lag(offsets: Vec<GroupOffset>) -> Vec<(GroupOffset, Option<i64>)> {
    offsets.into_iter().map(|o| (o, None)).collect()
}

/// Whether Kafka refused a group's request for want of a Describe ACL on the group.
fn is_group_refusal(error: &KafkaCallError) -> bool {
    error.broker_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed as i16)
}
