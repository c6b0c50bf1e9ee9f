//! Share groups (KIP-932): ShareGroupDescribe (state, members, assignment) and
//! DescribeShareGroupOffsets (per partition, the share-partition start offset and, from v1 —
//! Kafka 4.2, KIP-1226 — the lag the broker computes), both batched per coordinator.

use std::time::Duration;

use kafka_protocol::messages::share_group_describe_response::Member;
use kafka_protocol::messages::{GroupId, ShareGroupDescribeRequest};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::coordinated::{group_answer, PerGroup};
use super::messages::{DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse};
use super::NativeClient;
use crate::kafka::error::{KafkaCallError, Request};

/// ShareGroupDescribe: v1 is the only version Kafka 4.x keeps (v0 was the early-access one).
pub(super) const SHARE_GROUP_DESCRIBE: VersionRange = VersionRange { min: 1, max: 1 };
/// DescribeShareGroupOffsets: v0 has start offsets only, v1 adds the lag.
pub(super) const DESCRIBE_SHARE_GROUP_OFFSETS: VersionRange = VersionRange { min: 0, max: 1 };

/// A share group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    /// As the broker names it: `Empty`, `Stable`, `Dead` (`GroupState::from_broker` maps it).
    pub state: String,
    pub group_epoch: i32,
    pub members: Vec<ShareGroupMember>,
}

/// One live member of a share group. Members share partitions, so several may list the same
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    /// (topic, partitions) the member may fetch from.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// One topic-partition a share group has state for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareOffsetEntry {
    /// The share-partition start offset: every record before it is delivered for good
    /// (acknowledged, rejected or out of delivery attempts).
    pub start_offset: i64,
    /// Records of the partition not yet delivered for good, as the broker counts them; None
    /// from a broker that speaks only v0 (before Kafka 4.2) or does not know it (-1).
    pub lag: Option<i64>,
}

/// A share group's offsets: (topic, partition, entry), sorted.
pub type ShareOffsets = Vec<(String, i32, ShareOffsetEntry)>;

impl NativeClient {
    /// Describes each share group: one FindCoordinator for all, then one ShareGroupDescribe per
    /// coordinator (per chunk of groups), all within `budget`. One result per group, in the
    /// order given.
    pub fn describe_share_groups(
        &mut self,
        groups: &[String],
        budget: Duration,
    ) -> PerGroup<ShareGroupDescription> {
        let body = |chunk: &[&str]| {
            ShareGroupDescribeRequest::default().with_group_ids(
                chunk
                    .iter()
                    .map(|g| GroupId(StrBytes::from_string(g.to_string())))
                    .collect(),
            )
        };
        let request = Request::ShareGroupDescribe;
        self.per_group(
            request,
            SHARE_GROUP_DESCRIBE,
            groups,
            budget,
            body,
            |answer| {
                answer
                    .groups
                    .into_iter()
                    .map(|g| {
                        let message = g.error_message.as_deref();
                        let r = group_answer(request, g.error_code, message, || {
                            share_description(g.group_state.to_string(), g.group_epoch, g.members)
                        });
                        (g.group_id.to_string(), r)
                    })
                    .collect()
            },
        )
    }

    /// Every topic-partition each share group has state for: one FindCoordinator for all, then
    /// one DescribeShareGroupOffsets per coordinator (per chunk of groups), all within
    /// `budget`. One result per group, in the order given.
    pub fn share_group_offsets(
        &mut self,
        groups: &[String],
        budget: Duration,
    ) -> PerGroup<ShareOffsets> {
        let body = |chunk: &[&str]| DescribeShareGroupOffsetsRequest {
            groups: chunk.iter().map(|g| g.to_string()).collect(),
        };
        let request = Request::DescribeShareGroupOffsets;
        self.per_group(
            request,
            DESCRIBE_SHARE_GROUP_OFFSETS,
            groups,
            budget,
            body,
            share_offsets,
        )
    }
}

/// A described share group.
fn share_description(
    state: String,
    group_epoch: i32,
    members: Vec<Member>,
) -> ShareGroupDescription {
    ShareGroupDescription {
        state,
        group_epoch,
        members: members
            .into_iter()
            .map(|m| ShareGroupMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                subscribed_topics: m
                    .subscribed_topic_names
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
                assignment: m
                    .assignment
                    .topic_partitions
                    .into_iter()
                    .map(|t| (t.topic_name.to_string(), t.partitions))
                    .collect(),
            })
            .collect(),
    }
}

/// Splits a DescribeShareGroupOffsets answer per group. A partition with its own error is left
/// out (the group's other partitions stand); a group-level error fails the group.
fn share_offsets(
    answer: DescribeShareGroupOffsetsResponse,
) -> Vec<(String, Result<ShareOffsets, KafkaCallError>)> {
    let request = Request::DescribeShareGroupOffsets;
    answer
        .groups
        .into_iter()
        .map(|g| {
            let message = g.error_message.as_deref();
            let r = group_answer(request, g.error_code, message, || {
                let mut offsets: ShareOffsets = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            // -1: the group has no state for the partition yet.
                            .filter(|p| p.error_code == 0 && p.start_offset >= 0)
                            .map(|p| {
                                let entry = ShareOffsetEntry {
                                    start_offset: p.start_offset,
                                    lag: (p.lag >= 0).then_some(p.lag),
                                };
                                (t.name.clone(), p.partition, entry)
                            })
                    })
                    .collect();
                offsets.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                offsets
            });
            (g.group_id, r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::ShareGroupDescribeResponse;
    use kafka_protocol::protocol::Decodable;

    use super::*;
    use crate::kafka::native::messages::tests::share_offsets_v1_answer;

    #[test]
    fn a_share_group_describe_v1_answer_gives_state_members_and_their_partitions() {
        // Written field by field from ShareGroupDescribeResponse.json (v1, flexible).
        let answer = [
            &[0, 0, 0, 0][..],                        // ThrottleTimeMs
            &[2],                                     // Groups: 1
            &[0, 0],                                  // ErrorCode
            &[0],                                     // ErrorMessage: null
            &[2, b'g'],                               // GroupId
            &[7, b'S', b't', b'a', b'b', b'l', b'e'], // GroupState
            &[0, 0, 0, 4],                            // GroupEpoch
            &[0, 0, 0, 4],                            // AssignmentEpoch
            &[7, b's', b'i', b'm', b'p', b'l', b'e'], // AssignorName
            &[2],                                     // Members: 1
            &[2, b'm'],                               // MemberId
            &[0],                                     // RackId: null
            &[0, 0, 0, 4],                            // MemberEpoch
            &[2, b'c'],                               // ClientId
            &[3, b'/', b'h'],                         // ClientHost
            &[2, 2, b't'],                            // SubscribedTopicNames: ["t"]
            &[2],                                     // Assignment.TopicPartitions: 1
            &[0x22; 16],                              // TopicId
            &[2, b't'],                               // TopicName
            &[3, 0, 0, 0, 0, 0, 0, 0, 1],             // Partitions: [0, 1]
            &[0],                                     // topic-partitions tagged fields
            &[0],                                     // assignment tagged fields
            &[0],                                     // member tagged fields
            &[0x80, 0, 0, 0],                         // AuthorizedOperations
            &[0],                                     // group tagged fields
            &[0],                                     // tagged fields
        ]
        .concat();
        let mut answer = Bytes::from(answer);
        let decoded = ShareGroupDescribeResponse::decode(&mut answer, 1).expect("decodes");
        assert!(answer.is_empty());
        let g = decoded.groups.into_iter().next().expect("one group");
        let described = share_description(g.group_state.to_string(), g.group_epoch, g.members);
        assert_eq!(
            described,
            ShareGroupDescription {
                state: "Stable".into(),
                group_epoch: 4,
                members: vec![ShareGroupMember {
                    member_id: "m".into(),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    subscribed_topics: vec!["t".into()],
                    assignment: vec![("t".into(), vec![0, 1])],
                }],
            }
        );
    }

    #[test]
    fn partitions_without_state_are_left_out_and_a_group_error_fails_only_its_group() {
        let answer = DescribeShareGroupOffsetsResponse::decode(
            &mut Bytes::from(share_offsets_v1_answer()),
            1,
        )
        .expect("decodes");
        let split = share_offsets(answer);
        // g1: partition 1 has no state yet (-1) and is left out; partition 0 is read whole.
        let entry = ShareOffsetEntry {
            start_offset: 70,
            lag: Some(12),
        };
        assert_eq!(
            split[0],
            ("g1".to_string(), Ok(vec![("t".to_string(), 0, entry)]))
        );
        // g2: GROUP_ID_NOT_FOUND, with the broker's message.
        let (group, result) = &split[1];
        let error = result.clone().expect_err("group error");
        assert_eq!(group, "g2");
        assert_eq!(error.broker_code(), Some(69));
        assert!(error.to_string().contains("gone"), "{error}");
    }
}
