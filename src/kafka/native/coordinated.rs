//! Requests a group's coordinator answers for many groups at once (OffsetFetch,
//! ConsumerGroupDescribe, ShareGroupDescribe, DescribeShareGroupOffsets, StreamsGroupDescribe): the groups are routed to their
//! coordinators with one batched FindCoordinator, then each coordinator is asked once per
//! chunk of groups. Results come back one per group, in the order asked. A group whose
//! coordinator moved or is loading is looked up and asked again, a bounded number of rounds.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::protocol::{Request as ProtocolRequest, VersionRange};

use kafka_protocol::messages::ShareGroupDescribeRequest;
use kafka_protocol::protocol::StrBytes;

use super::connection::broker_error;
use super::groups::{chunks, retriable, Key, MAX_REQUEST_BYTES, ROUNDS};
use super::messages::{DescribeShareGroupOffsetsRequest, StreamsGroupDescribeRequest};
use super::share::{DESCRIBE_SHARE_GROUP_OFFSETS, SHARE_GROUP_DESCRIBE};
use super::streams::STREAMS_GROUP_DESCRIBE;
use super::{Brokers, NativeClient, NativeError};
use crate::kafka::error::{KafkaCallError, Request};

/// One result per group, in the order asked.
pub type PerGroup<T> = Vec<Result<T, NativeError>>;

/// One group's part of an answer: its error code (and message) as a typed error, else what
/// `read` makes of it.
pub(super) fn group_answer<T>(
    request: Request,
    code: i16,
    message: Option<&str>,
    read: impl FnOnce() -> T,
) -> Result<T, KafkaCallError> {
    if code != 0 {
        let message = message.map(|m| StrBytes::from_string(m.to_string()));
        return Err(broker_error(request, code, message.as_ref()));
    }
    Ok(read())
}

impl NativeClient {
    /// The version of each Kafka 4 group request (ShareGroupDescribe,
    /// DescribeShareGroupOffsets, StreamsGroupDescribe) lagwatch would use with the cluster's
    /// brokers, None where a broker speaks none that lagwatch does (before Kafka 4.0 — or
    /// 4.1 for share groups —, or with the group type turned off). Asks one broker, as
    /// [`NativeClient::check_versions`] does: the cluster's brokers run one version.
    pub fn group_type_versions(&mut self) -> Result<BTreeMap<Request, Option<i16>>, NativeError> {
        let NativeClient { runtime, brokers } = self;
        runtime
            .block_on(async {
                let (_, connection) = brokers.any().await?;
                Ok(BTreeMap::from([
                    (
                        Request::ShareGroupDescribe,
                        connection
                            .version::<ShareGroupDescribeRequest>(
                                Request::ShareGroupDescribe,
                                SHARE_GROUP_DESCRIBE,
                            )
                            .ok(),
                    ),
                    (
                        Request::DescribeShareGroupOffsets,
                        connection
                            .version::<DescribeShareGroupOffsetsRequest>(
                                Request::DescribeShareGroupOffsets,
                                DESCRIBE_SHARE_GROUP_OFFSETS,
                            )
                            .ok(),
                    ),
                    (
                        Request::StreamsGroupDescribe,
                        connection
                            .version::<StreamsGroupDescribeRequest>(
                                Request::StreamsGroupDescribe,
                                STREAMS_GROUP_DESCRIBE,
                            )
                            .ok(),
                    ),
                ]))
            })
            .unwrap_or_else(|| Err(super::no_bootstrap()))
    }

    /// Runs [`Brokers::per_coordinator`] on the client's runtime within `budget`; no request
    /// for no groups.
    pub(super) fn per_group<R, T>(
        &mut self,
        request: Request,
        versions: VersionRange,
        groups: &[String],
        budget: Duration,
        body: impl Fn(&[&str]) -> R,
        split: impl Fn(R::Response) -> Vec<(String, Result<T, KafkaCallError>)>,
    ) -> PerGroup<T>
    where
        R: ProtocolRequest,
        T: Clone,
    {
        if groups.is_empty() {
            return Vec::new();
        }
        let NativeClient { runtime, brokers } = self;
        // The timer is made inside the runtime: it needs the runtime's clock.
        let step = async {
            let asked = brokers.per_coordinator(request, versions, groups, body, split);
            tokio::time::timeout(budget, asked).await
        };
        let outcome = runtime.block_on(step);
        self.timed_out(outcome, request, groups, budget)
    }
}

impl Brokers {
    /// Asks each coordinator about its groups: `body` builds the request for a chunk of group
    /// ids, `split` turns the answer into (group id, result) pairs. A group the answer does
    /// not mention is a malformed answer for that group.
    pub(super) async fn per_coordinator<R, T>(
        &mut self,
        request: Request,
        versions: VersionRange,
        groups: &[String],
        body: impl Fn(&[&str]) -> R,
        split: impl Fn(R::Response) -> Vec<(String, Result<T, KafkaCallError>)>,
    ) -> PerGroup<T>
    where
        R: ProtocolRequest,
        T: Clone,
    {
        let mut results: Vec<Option<Result<T, NativeError>>> = vec![None; groups.len()];
        let index: HashMap<&str, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.as_str(), i))
            .collect();
        let mut pending: Vec<&str> = groups.iter().map(String::as_str).collect();
        for round in 0..ROUNDS {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                // A coordinator that is loading answers within moments; a moved one at once.
                tokio::time::sleep(Duration::from_millis(200 * u64::from(round))).await;
            }
            // Until the last round, a group whose coordinator moved or is loading goes again.
            let last = round + 1 == ROUNDS;
            let mut again = Vec::new();
            let mut settle = |group: &'_ str, r: Result<T, NativeError>, again: &mut Vec<_>| match r
            {
                Err(e) if !last && retriable(&e) => again.push(index[group]),
                r => results[index[group]] = Some(r),
            };
            let mut by_coordinator: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
            for (group, found) in self.find_coordinators(&pending).await {
                match found {
                    Ok(c) => {
                        self.addresses.insert(c.id, c.address);
                        by_coordinator.entry(c.id).or_default().push(group);
                    }
                    Err(e) => settle(group, Err(e), &mut again),
                }
            }
            for (id, members) in by_coordinator {
                for chunk in chunks(&members, MAX_REQUEST_BYTES) {
                    match self.ask(id, request, versions, &body(&chunk)).await {
                        Ok((broker, answer)) => {
                            let mut answered: HashMap<String, Result<T, KafkaCallError>> =
                                split(answer).into_iter().collect();
                            for g in chunk {
                                let r = answered.remove(g).unwrap_or_else(|| {
                                    Err(KafkaCallError::Malformed {
                                        request,
                                        message: format!("no answer for group {g}"),
                                    })
                                });
                                let r = r.map_err(|error| NativeError {
                                    broker: Some(broker.clone()),
                                    error,
                                });
                                settle(g, r, &mut again);
                            }
                        }
                        Err(e) => {
                            for g in chunk {
                                settle(g, Err(e.clone()), &mut again);
                            }
                        }
                    }
                }
            }
            pending = again.into_iter().map(|i| groups[i].as_str()).collect();
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(NativeError {
                        broker: None,
                        error: KafkaCallError::Malformed {
                            request,
                            message: "no answer for the group".into(),
                        },
                    })
                })
            })
            .collect()
    }

    /// One request to node `id` at the highest version both sides speak; the connection is
    /// dropped when the exchange fails.
    async fn ask<R: ProtocolRequest>(
        &mut self,
        id: i32,
        request: Request,
        versions: VersionRange,
        body: &R,
    ) -> Result<(crate::kafka::error::BrokerRef, R::Response), NativeError> {
        let connection = self.node(id).await?;
        let broker = connection.broker().clone();
        let fail = |error| NativeError {
            broker: Some(broker.clone()),
            error,
        };
        let version = connection.version::<R>(request, versions).map_err(fail)?;
        match connection.send(request, body, version).await {
            Ok(answer) => Ok((broker, answer)),
            Err(e) => {
                self.forget(Key::Node(id));
                Err(fail(e))
            }
        }
    }
}
