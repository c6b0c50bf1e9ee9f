//! Committed offsets, batched: FindCoordinator with many keys, then OffsetFetch with many groups
//! per request to each coordinator, each request bounded in bytes. A group whose coordinator
//! moved or is still loading is looked up and asked again, a bounded number of rounds.

use std::collections::HashMap;

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseTopics;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::connection::broker_error;
use super::{Brokers, NativeError, FIND_COORDINATOR, OFFSET_FETCH};
use crate::kafka::admin_sys::GroupOffset;
use crate::kafka::error::{BrokerRef, KafkaCallError, Request};

/// Group-id bytes per FindCoordinator or OffsetFetch request: a few thousand groups each, far
/// below any broker's `socket.request.max.bytes`.
pub(super) const MAX_REQUEST_BYTES: usize = 256 << 10;

/// Rounds of lookups and fetches for groups whose coordinator moved or is loading.
pub(super) const ROUNDS: u32 = 3;

/// Per group asked for: its committed offsets, or why they could not be read.
pub type FetchedOffsets = Vec<Result<Vec<GroupOffset>, NativeError>>;

/// Bytes a group id adds to a request: the string, its length and the group's other fields.
fn group_bytes(group: &str) -> usize {
    group.len() + 16
}

/// Splits `groups` into chunks of at most `max_bytes` of group ids (at least one group each).
pub fn chunks<'a>(groups: &[&'a str], max_bytes: usize) -> Vec<Vec<&'a str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut size = 0;
    for g in groups {
        let bytes = group_bytes(g);
        match out.last_mut() {
            Some(chunk) if size + bytes <= max_bytes => {
                chunk.push(g);
                size += bytes;
            }
            _ => {
                out.push(vec![g]);
                size = bytes;
            }
        }
    }
    out
}

/// Whether asking again after a new lookup can help: the coordinator moved or is loading.
fn coordinator_moved(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
        )
    )
}

/// Where a group's coordinator is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Coordinator {
    pub(super) id: i32,
    pub(super) address: String,
}

impl Brokers {
    /// The committed offsets of every group in `groups`, one result per group in that order:
    /// OffsetFetch with many groups per request, routed to their coordinators by
    /// [`Brokers::per_coordinator`].
    pub(super) async fn committed_offsets(&mut self, groups: &[String]) -> FetchedOffsets {
        let request = Request::OffsetFetch;
        let body = |chunk: &[&str]| {
            OffsetFetchRequest::default().with_groups(
                chunk
                    .iter()
                    .map(|g| {
                        OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(StrBytes::from_string(g.to_string())))
                            .with_topics(None)
                    })
                    .collect(),
            )
        };
        let split = |answer: OffsetFetchResponse| {
            answer
                .groups
                .into_iter()
                .map(|g| {
                    let r = if g.error_code != 0 {
                        Err(broker_error(request, g.error_code, None))
                    } else {
                        Ok(committed(&g.topics))
                    };
                    (g.group_id.to_string(), r)
                })
                .collect()
        };
        self.per_coordinator(request, OFFSET_FETCH, groups, body, split)
            .await
    }

    /// Looks up the coordinator of every group: FindCoordinator with many keys, to any broker.
    pub(super) async fn find_coordinators<'g>(
        &mut self,
        groups: &[&'g str],
    ) -> Vec<(&'g str, Result<Coordinator, NativeError>)> {
        let mut out = Vec::with_capacity(groups.len());
        for chunk in chunks(groups, MAX_REQUEST_BYTES) {
            // Any broker can answer: one whose connection broke (a broker just lost) is
            // dropped, and the next is asked, once per known broker at most.
            let mut answer = self.find_chunk(&chunk).await;
            for _ in 0..self.addresses.len() {
                match &answer {
                    Err(e) if matches!(e.error, KafkaCallError::Io { .. }) => {
                        answer = self.find_chunk(&chunk).await;
                    }
                    _ => break,
                }
            }
            match answer {
                Ok((broker, found)) => {
                    let mut found: HashMap<String, Result<Coordinator, KafkaCallError>> = found;
                    for g in chunk {
                        let r = found.remove(g).unwrap_or_else(|| {
                            Err(KafkaCallError::Malformed {
                                request: Request::FindCoordinator,
                                message: format!("no coordinator named for group {g}"),
                            })
                        });
                        out.push((
                            g,
                            r.map_err(|error| NativeError {
                                broker: Some(broker.clone()),
                                error,
                            }),
                        ));
                    }
                }
                Err(e) => out.extend(chunk.into_iter().map(|g| (g, Err(e.clone())))),
            }
        }
        out
    }

    async fn find_chunk(
        &mut self,
        chunk: &[&str],
    ) -> Result<
        (
            BrokerRef,
            HashMap<String, Result<Coordinator, KafkaCallError>>,
        ),
        NativeError,
    > {
        let request = Request::FindCoordinator;
        let (key, connection) = self.any().await?;
        let broker = connection.broker().clone();
        let fail = |error| NativeError {
            broker: Some(broker.clone()),
            error,
        };
        let version = connection
            .version::<FindCoordinatorRequest>(request, FIND_COORDINATOR)
            .map_err(fail)?;
        let body = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(
                chunk
                    .iter()
                    .map(|g| StrBytes::from_string(g.to_string()))
                    .collect(),
            );
        let answer = match connection.send(request, &body, version).await {
            Ok(a) => a,
            Err(error) => {
                self.forget(key);
                return Err(fail(error));
            }
        };
        let found = answer
            .coordinators
            .into_iter()
            .map(|c| {
                let r = if c.error_code != 0 {
                    Err(broker_error(
                        request,
                        c.error_code,
                        c.error_message.as_ref(),
                    ))
                } else {
                    Ok(Coordinator {
                        id: c.node_id.0,
                        address: format!("{}:{}", c.host.as_str(), c.port),
                    })
                };
                (c.key.to_string(), r)
            })
            .collect();
        Ok((broker, found))
    }
}

/// A group's committed offsets from its OffsetFetch answer: partitions without a commit (-1)
/// or with an error of their own have none.
fn committed(topics: &[OffsetFetchResponseTopics]) -> Vec<GroupOffset> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.committed_offset >= 0 && p.error_code == 0)
                .map(|p| GroupOffset {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                })
        })
        .collect()
}

/// Whether the group's lookup or fetch is worth another round.
pub(super) fn retriable(e: &NativeError) -> bool {
    e.error.broker_code().is_some_and(coordinator_moved)
}

/// Which of [`Brokers`]' connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Node(i32),
    Bootstrap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_chunked_by_bytes_never_split_and_never_dropped() {
        let names: Vec<String> = (0..10).map(|i| format!("group-{i}")).collect();
        let groups: Vec<&str> = names.iter().map(String::as_str).collect();
        // Each costs 7 + 16 = 23 bytes.
        // 1. Room for all: one request.
        assert_eq!(chunks(&groups, 1 << 20).len(), 1);
        // 2. Room for 4 per request: 4, 4, 2, in order.
        let c = chunks(&groups, 4 * 23);
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(c.concat(), groups);
        // 3. A group larger than the bound still gets a request of its own.
        assert_eq!(chunks(&groups, 1).len(), 10);
        // 4. Nothing to ask: no request.
        assert!(chunks(&[], 100).is_empty());
    }

    #[test]
    fn only_a_moved_or_loading_coordinator_is_asked_again() {
        let e = |code| NativeError {
            broker: None,
            error: broker_error(Request::OffsetFetch, code, None),
        };
        // 14 loading, 15 not available, 16 not coordinator: a new lookup helps.
        assert!(retriable(&e(14)) && retriable(&e(15)) && retriable(&e(16)));
        // 30 group authorization failed: asking again changes nothing.
        assert!(!retriable(&e(30)));
    }
}
