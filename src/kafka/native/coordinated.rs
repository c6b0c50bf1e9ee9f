//! Requests a group's coordinator answers for many groups at once (ShareGroupDescribe,
//! DescribeShareGroupOffsets, StreamsGroupDescribe): the groups are routed to their
//! coordinators with one batched FindCoordinator, then each coordinator is asked once per
//! chunk of groups. Results come back one per group, in the order asked.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::protocol::{Request as ProtocolRequest, VersionRange};

use kafka_protocol::protocol::StrBytes;

use super::connection::broker_error;
use super::groups::{chunks, Key};
use super::{Brokers, NativeClient, NativeError};
use crate::kafka::error::{KafkaCallError, Request};

/// Group-id bytes per request, as for OffsetFetch: far below `socket.request.max.bytes`.
const MAX_REQUEST_BYTES: usize = 256 << 10;

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
    /// Runs [`Brokers::per_coordinator`] on the client's runtime; no request for no groups.
    pub(super) fn per_group<R, T>(
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
        if groups.is_empty() {
            return Vec::new();
        }
        let NativeClient { runtime, brokers } = self;
        runtime.block_on(brokers.per_coordinator(request, versions, groups, body, split))
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
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let mut by_coordinator: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
        for (group, found) in self.find_coordinators(&names).await {
            match found {
                Ok(c) => {
                    self.addresses.insert(c.id, c.address);
                    by_coordinator.entry(c.id).or_default().push(group);
                }
                Err(e) => results[index[group]] = Some(Err(e)),
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
                            results[index[g]] = Some(r.map_err(|error| NativeError {
                                broker: Some(broker.clone()),
                                error,
                            }));
                        }
                    }
                    Err(e) => {
                        for g in chunk {
                            results[index[g]] = Some(Err(e.clone()));
                        }
                    }
                }
            }
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
