//! Streams groups (KIP-1071): StreamsGroupDescribe (state, members, their tasks), batched per
//! coordinator. Their committed offsets are an ordinary OffsetFetch
//! ([`NativeClient::committed_offsets`]).

use std::time::Duration;

use kafka_protocol::protocol::VersionRange;

use super::coordinated::{group_answer, PerGroup};
use super::messages::{StreamsGroupDescribeRequest, StreamsGroupDescribeResponse};
use super::NativeClient;
use crate::kafka::error::{KafkaCallError, Request};

/// StreamsGroupDescribe: v1 (Kafka 4.3) only adds the topology description, which lagwatch
/// does not ask for.
pub(super) const STREAMS_GROUP_DESCRIBE: VersionRange = VersionRange { min: 0, max: 1 };

/// A streams group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupDescription {
    /// As the broker names it: `Empty`, `NotReady` (source topics missing), `Assigning`,
    /// `Reconciling`, `Stable`, `Dead`.
    pub state: String,
    pub group_epoch: i32,
    pub members: Vec<StreamsGroupMember>,
}

/// One member: a stream thread of a Kafka Streams process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupMember {
    pub member_id: String,
    pub process_id: String,
    pub client_id: String,
    pub client_host: String,
    /// Active tasks: (subtopology id, partitions).
    pub active_tasks: Vec<(String, Vec<i32>)>,
}

impl NativeClient {
    /// Describes each streams group: one FindCoordinator for all, then one StreamsGroupDescribe
    /// per coordinator (per chunk of groups), all within `budget`. One result per group, in
    /// the order given.
    pub fn describe_streams_groups(
        &mut self,
        groups: &[String],
        budget: Duration,
    ) -> PerGroup<StreamsGroupDescription> {
        let body = |chunk: &[&str]| StreamsGroupDescribeRequest {
            groups: chunk.iter().map(|g| g.to_string()).collect(),
        };
        let request = Request::StreamsGroupDescribe;
        self.per_group(
            request,
            STREAMS_GROUP_DESCRIBE,
            groups,
            budget,
            body,
            streams_descriptions,
        )
    }
}

/// Splits a StreamsGroupDescribe answer per group.
fn streams_descriptions(
    answer: StreamsGroupDescribeResponse,
) -> Vec<(String, Result<StreamsGroupDescription, KafkaCallError>)> {
    answer
        .groups
        .into_iter()
        .map(|g| {
            let message = g.error_message.as_deref();
            let r = group_answer(Request::StreamsGroupDescribe, g.error_code, message, || {
                StreamsGroupDescription {
                    state: g.state,
                    group_epoch: g.group_epoch,
                    members: g
                        .members
                        .into_iter()
                        .map(|m| StreamsGroupMember {
                            member_id: m.member_id,
                            process_id: m.process_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            active_tasks: m.active_tasks,
                        })
                        .collect(),
                }
            });
            (g.group_id, r)
        })
        .collect()
}
