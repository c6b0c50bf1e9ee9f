//! ListConsumerGroups and DescribeConsumerGroups.

use std::os::raw::c_char;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka_sys as sys;

use super::{c_strings, Call};
use crate::kafka::error::{BrokerRef, KafkaCallError, Request};

/// One group as ListConsumerGroups reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// librdkafka's state name (`Stable`, `Empty`, ..., `Unknown`).
    pub state: &'static str,
    pub kind: GroupKind,
}

/// The group protocol: classic (JoinGroup/SyncGroup) or KIP-848 `consumer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Classic,
    Consumer,
    Unknown,
}

/// ListConsumerGroups: the groups found, and the errors of brokers that could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupList {
    pub groups: Vec<GroupListing>,
    pub errors: Vec<KafkaCallError>,
}

/// One group as DescribeConsumerGroups reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub members: u32,
}

/// A group DescribeConsumerGroups could not describe, and the coordinator that said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFailure {
    pub group_id: String,
    pub coordinator: Option<BrokerRef>,
    pub error: KafkaCallError,
}

/// Lists every consumer group of the cluster, one ListGroups request per broker.
pub fn list_consumer_groups<C: ClientContext>(
    client: &Client<C>,
    timeout: Duration,
) -> Result<GroupList, KafkaCallError> {
    let request = Request::ListConsumerGroups;
    let call = Call::new(client, request, timeout)?;
    // SAFETY: handle, options and queue are live for the borrow of `call`.
    unsafe {
        sys::rd_kafka_ListConsumerGroups(call.handle.rk, call.options.as_ptr(), call.queue.as_ptr())
    };
    let event = call.wait(sys::RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT)?;
    // SAFETY: the event has the type waited for.
    let result = unsafe { sys::rd_kafka_event_ListConsumerGroups_result(event.as_ptr()) };
    let mut out = GroupList::default();
    let mut n = 0usize;
    // SAFETY: `result` belongs to the event; librdkafka writes the array length to `n`.
    let valid = unsafe { sys::rd_kafka_ListConsumerGroups_result_valid(result, &mut n) };
    // SAFETY: `n` listings owned by the event.
    for listing in unsafe { event.items(valid, n) } {
        let listing = listing.ptr();
        // SAFETY: the listing and its strings are owned by the event.
        let group_id = unsafe { event.text(sys::rd_kafka_ConsumerGroupListing_group_id(listing)) };
        // SAFETY: as above.
        let state = unsafe { sys::rd_kafka_ConsumerGroupListing_state(listing) };
        // SAFETY: as above.
        let kind = unsafe { sys::rd_kafka_ConsumerGroupListing_type(listing) };
        out.groups.push(GroupListing {
            group_id,
            state: state_name(state),
            kind: group_kind(kind),
        });
    }
    let mut n = 0usize;
    // SAFETY: `result` belongs to the event; librdkafka writes the array length to `n`.
    let errors = unsafe { sys::rd_kafka_ListConsumerGroups_result_errors(result, &mut n) };
    // SAFETY: `n` errors owned by the event.
    for error in unsafe { event.items(errors, n) } {
        // SAFETY: the error is owned by the event.
        if let Some(e) = unsafe { event.error(error.ptr(), request, timeout) } {
            out.errors.push(e);
        }
    }
    Ok(out)
}

/// Describes groups with DescribeConsumerGroups (ConsumerGroupDescribe for KIP-848 groups).
/// Returns one result per group asked for, in the broker's order.
pub fn describe_consumer_groups<C: ClientContext>(
    client: &Client<C>,
    groups: &[String],
    timeout: Duration,
) -> Result<Vec<Result<GroupDescription, GroupFailure>>, KafkaCallError> {
    let request = Request::DescribeConsumerGroups;
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let names = c_strings(request, groups)?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|s| s.as_ptr()).collect();
    let call = Call::new(client, request, timeout)?;
    // SAFETY: `pointers` and `names` outlive the call, which copies the group names; handle,
    // options and queue are live for the borrow of `call`.
    unsafe {
        sys::rd_kafka_DescribeConsumerGroups(
            call.handle.rk,
            pointers.as_mut_ptr(),
            pointers.len(),
            call.options.as_ptr(),
            call.queue.as_ptr(),
        )
    };
    let event = call.wait(sys::RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT)?;
    // SAFETY: the event has the type waited for.
    let result = unsafe { sys::rd_kafka_event_DescribeConsumerGroups_result(event.as_ptr()) };
    let mut n = 0usize;
    // SAFETY: `result` belongs to the event; librdkafka writes the array length to `n`.
    let descriptions =
        unsafe { sys::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut n) };
    let mut out = Vec::with_capacity(groups.len());
    // SAFETY: `n` descriptions owned by the event.
    for desc in unsafe { event.items(descriptions, n) } {
        let desc = desc.ptr();
        // SAFETY: the description and its strings are owned by the event.
        let group_id = unsafe { event.text(sys::rd_kafka_ConsumerGroupDescription_group_id(desc)) };
        // SAFETY: as above.
        let error = unsafe { sys::rd_kafka_ConsumerGroupDescription_error(desc) };
        // SAFETY: the error, if any, is owned by the event.
        if let Some(error) = unsafe { event.error(error, request, timeout) } {
            // SAFETY: the description is owned by the event.
            let node = unsafe { sys::rd_kafka_ConsumerGroupDescription_coordinator(desc) };
            out.push(Err(GroupFailure {
                group_id,
                // SAFETY: the coordinator node, if any, is owned by the event.
                coordinator: unsafe { event.node(node) },
                error,
            }));
            continue;
        }
        // SAFETY: the description is owned by the event.
        let state = unsafe { sys::rd_kafka_ConsumerGroupDescription_state(desc) };
        // SAFETY: as above.
        let members = unsafe { sys::rd_kafka_ConsumerGroupDescription_member_count(desc) };
        out.push(Ok(GroupDescription {
            group_id,
            state: state_name(state),
            members: u32::try_from(members).unwrap_or(u32::MAX),
        }));
    }
    Ok(out)
}

fn state_name(state: sys::rd_kafka_consumer_group_state_t) -> &'static str {
    use sys::rd_kafka_consumer_group_state_t as S;
    match state {
        S::RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE => "PreparingRebalance",
        S::RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE => "CompletingRebalance",
        S::RD_KAFKA_CONSUMER_GROUP_STATE_STABLE => "Stable",
        S::RD_KAFKA_CONSUMER_GROUP_STATE_DEAD => "Dead",
        S::RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY => "Empty",
        _ => "Unknown",
    }
}

fn group_kind(kind: sys::rd_kafka_consumer_group_type_t) -> GroupKind {
    use sys::rd_kafka_consumer_group_type_t as T;
    match kind {
        T::RD_KAFKA_CONSUMER_GROUP_TYPE_CLASSIC => GroupKind::Classic,
        T::RD_KAFKA_CONSUMER_GROUP_TYPE_CONSUMER => GroupKind::Consumer,
        _ => GroupKind::Unknown,
    }
}
