//! Group discovery and KIP-848 descriptions: ListGroups v5 with the type filter, one request
//! per broker, and ConsumerGroupDescribe batched per coordinator, which reports the broker's own
//! state names (`assigning`, `reconciling`, ...) that librdkafka's state enum lacks.

use std::collections::BTreeMap;

use kafka_protocol::messages::{ConsumerGroupDescribeRequest, GroupId, ListGroupsRequest};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::connection::broker_error;
use super::groups::{chunks, MAX_REQUEST_BYTES};
use super::{Brokers, NativeError};
use crate::kafka::error::{KafkaCallError, Request};

/// ListGroups v5 is the first with the type filter.
pub(super) const LIST_GROUPS: VersionRange = VersionRange { min: 5, max: 5 };
pub(super) const CONSUMER_GROUP_DESCRIBE: VersionRange = VersionRange { min: 0, max: 1 };

/// The group types listed: all four, as librdkafka's ListConsumerGroups listed them (without a
/// filter), so no group drops out of the metrics; now each with its type. `streams` groups
/// commit offsets like consumer groups; `share` groups have none for OffsetFetch to read.
pub const GROUP_TYPES: [&str; 4] = ["classic", "consumer", "share", "streams"];

/// One group as a broker listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub group_id: String,
    /// The broker's state name (`Stable`, `Empty`, `Reconciling`, ...).
    pub state: String,
    /// `classic`, `consumer`, `share` or `streams`.
    pub group_type: String,
}

/// Every broker's listing, and the brokers that could not answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub groups: Vec<Listed>,
    pub errors: Vec<NativeError>,
}

/// A KIP-848 group as its coordinator described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub state: String,
    pub members: u32,
}

impl Brokers {
    /// ListGroups of the [`GROUP_TYPES`] on each of `brokers` (node ids).
    pub(super) async fn list_groups(&mut self, brokers: &[i32]) -> Listing {
        let request = Request::ListGroups;
        let mut out = Listing::default();
        for &id in brokers {
            let connection = match self.node(id).await {
                Ok(c) => c,
                Err(e) => {
                    out.errors.push(e);
                    continue;
                }
            };
            let broker = Some(connection.broker().clone());
            let fail = |error| NativeError {
                broker: broker.clone(),
                error,
            };
            let version = match connection.version::<ListGroupsRequest>(request, LIST_GROUPS) {
                Ok(v) => v,
                Err(e) => {
                    out.errors.push(fail(e));
                    continue;
                }
            };
            let body = ListGroupsRequest::default().with_types_filter(
                GROUP_TYPES
                    .iter()
                    .map(|t| StrBytes::from_static_str(t))
                    .collect(),
            );
            match connection.send(request, &body, version).await {
                Ok(answer) if answer.error_code != 0 => {
                    out.errors
                        .push(fail(broker_error(request, answer.error_code, None)));
                }
                Ok(answer) => out.groups.extend(answer.groups.into_iter().map(|g| Listed {
                    group_id: g.group_id.to_string(),
                    state: g.group_state.to_string(),
                    group_type: g.group_type.to_string(),
                })),
                Err(e) => {
                    self.forget(super::Key::Node(id));
                    out.errors.push(fail(e));
                }
            }
        }
        out
    }

    /// ConsumerGroupDescribe of `groups`, batched per coordinator; one result per group in order.
    pub(super) async fn describe_consumer_groups(
        &mut self,
        groups: &[String],
    ) -> Vec<Result<Described, NativeError>> {
        let request = Request::ConsumerGroupDescribe;
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let mut results: BTreeMap<&str, Result<Described, NativeError>> = BTreeMap::new();
        let mut by_coordinator: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
        for (group, found) in self.find_coordinators(&names).await {
            match found {
                Ok(c) => {
                    self.addresses.insert(c.id, c.address);
                    by_coordinator.entry(c.id).or_default().push(group);
                }
                Err(e) => {
                    results.insert(group, Err(e));
                }
            }
        }
        for (id, members) in by_coordinator {
            for chunk in chunks(&members, MAX_REQUEST_BYTES) {
                let answer = self.describe_chunk(id, &chunk).await;
                for g in chunk {
                    let r = match &answer {
                        Ok(found) => found.get(g).cloned().unwrap_or_else(|| {
                            Err(NativeError {
                                broker: None,
                                error: KafkaCallError::Malformed {
                                    request,
                                    message: format!("no answer for group {g}"),
                                },
                            })
                        }),
                        Err(e) => Err(e.clone()),
                    };
                    results.insert(g, r);
                }
            }
        }
        names
            .iter()
            .map(|g| {
                results.remove(g).unwrap_or_else(|| {
                    Err(NativeError {
                        broker: None,
                        error: KafkaCallError::Malformed {
                            request,
                            message: format!("no answer for group {g}"),
                        },
                    })
                })
            })
            .collect()
    }

    async fn describe_chunk(
        &mut self,
        id: i32,
        chunk: &[&str],
    ) -> Result<BTreeMap<String, Result<Described, NativeError>>, NativeError> {
        let request = Request::ConsumerGroupDescribe;
        let connection = self.node(id).await?;
        let broker = Some(connection.broker().clone());
        let fail = |error| NativeError {
            broker: broker.clone(),
            error,
        };
        let version = connection
            .version::<ConsumerGroupDescribeRequest>(request, CONSUMER_GROUP_DESCRIBE)
            .map_err(fail)?;
        let body = ConsumerGroupDescribeRequest::default().with_group_ids(
            chunk
                .iter()
                .map(|g| GroupId(StrBytes::from_string(g.to_string())))
                .collect(),
        );
        let answer = match connection.send(request, &body, version).await {
            Ok(a) => a,
            Err(e) => {
                self.forget(super::Key::Node(id));
                return Err(fail(e));
            }
        };
        Ok(answer
            .groups
            .into_iter()
            .map(|g| {
                let r = if g.error_code != 0 {
                    Err(fail(broker_error(
                        request,
                        g.error_code,
                        g.error_message.as_ref(),
                    )))
                } else {
                    Ok(Described {
                        state: g.group_state.to_string(),
                        members: u32::try_from(g.members.len()).unwrap_or(u32::MAX),
                    })
                };
                (g.group_id.to_string(), r)
            })
            .collect())
    }
}
