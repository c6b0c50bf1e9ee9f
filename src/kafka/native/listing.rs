//! Group discovery and KIP-848 descriptions: ListGroups v5 with the type filter, one request
//! per broker, and ConsumerGroupDescribe batched per coordinator (through the loop of
//! `coordinated`), which reports the broker's own
//! state names (`assigning`, `reconciling`, ...) that librdkafka's state enum lacks.

use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, ListGroupsRequest,
};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::connection::broker_error;
use super::coordinated::{group_answer, PerGroup};
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

    /// ConsumerGroupDescribe of `groups`, one result per group in order: many groups per
    /// request, routed to their coordinators by [`Brokers::per_coordinator`] (a group whose
    /// coordinator moved or is loading is looked up and asked again).
    pub(super) async fn describe_consumer_groups(
        &mut self,
        groups: &[String],
    ) -> PerGroup<Described> {
        let request = Request::ConsumerGroupDescribe;
        let body = |chunk: &[&str]| {
            ConsumerGroupDescribeRequest::default().with_group_ids(
                chunk
                    .iter()
                    .map(|g| GroupId(StrBytes::from_string(g.to_string())))
                    .collect(),
            )
        };
        self.per_coordinator(request, CONSUMER_GROUP_DESCRIBE, groups, body, described)
            .await
    }
}

/// Each group of a ConsumerGroupDescribe answer: its state and member count, or its error.
fn described(
    answer: ConsumerGroupDescribeResponse,
) -> Vec<(String, Result<Described, KafkaCallError>)> {
    answer
        .groups
        .into_iter()
        .map(|g| {
            let r = group_answer(
                Request::ConsumerGroupDescribe,
                g.error_code,
                g.error_message.as_deref(),
                || Described {
                    state: g.group_state.to_string(),
                    members: u32::try_from(g.members.len()).unwrap_or(u32::MAX),
                },
            );
            (g.group_id.to_string(), r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::consumer_group_describe_response::{DescribedGroup, Member};

    use super::*;
    use crate::kafka::native::groups::retriable;

    #[test]
    fn a_group_whose_coordinator_moved_is_asked_again_and_the_others_stand() {
        let group = |id: &str, code: i16, state: &str, members: usize| {
            DescribedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id.into())))
                .with_error_code(code)
                .with_group_state(StrBytes::from_string(state.into()))
                .with_members(vec![Member::default(); members])
        };
        let answer = ConsumerGroupDescribeResponse::default().with_groups(vec![
            group("moved", 16, "", 0),
            group("loading", 14, "", 0),
            group("stable", 0, "Stable", 2),
            group("denied", 30, "", 0),
        ]);
        let results = described(answer);
        let retried: Vec<bool> = results
            .iter()
            .map(|(_, r)| {
                r.as_ref().is_err_and(|error| {
                    retriable(&NativeError {
                        broker: None,
                        error: error.clone(),
                    })
                })
            })
            .collect();
        // NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS go to another round of
        // `per_coordinator`; an authorization failure is final.
        assert_eq!(retried, [true, true, false, false]);
        assert_eq!(
            results[2],
            (
                "stable".to_string(),
                Ok(Described {
                    state: "Stable".into(),
                    members: 2
                })
            )
        );
        assert!(results[3].1.is_err());
    }
}
