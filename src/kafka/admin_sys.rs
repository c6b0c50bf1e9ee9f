//! Admin calls that rdkafka's safe API lacks, wrapped over `rdkafka-sys`. This module owns all
//! of lagwatch's `unsafe` code.
//!
//! Every call runs on the caller's librdkafka handle (borrowed for the call, so it outlives every
//! pointer used here), sends its result to a private queue created for the call, and blocks until
//! the result arrives or the timeout passes. Run them on a blocking thread.

use std::collections::VecDeque;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::ptr;
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka_sys as sys;
use sys::types::RDKafkaRespErr;

/// An admin call that failed as a whole, or for one group or topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("{call}: no answer within {timeout:?}")]
    Timeout {
        call: &'static str,
        timeout: Duration,
    },
    #[error("{call}: {message}")]
    Broker { call: &'static str, message: String },
    #[error("{call}: invalid argument: {message}")]
    Argument { call: &'static str, message: String },
}

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

/// ListConsumerGroups: the groups found, and the brokers that could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupList {
    pub groups: Vec<GroupListing>,
    pub errors: Vec<String>,
}

/// One group as DescribeConsumerGroups reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub members: u32,
}

/// A committed offset: the next offset the group will read. Partitions without a commit are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The configuration entries of one topic (only the keys asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigEntries {
    pub topic: String,
    pub entries: Vec<(String, String)>,
}

/// Lists every consumer group of the cluster, one ListGroups request per broker.
pub fn list_consumer_groups<C: ClientContext>(
    client: &Client<C>,
    timeout: Duration,
) -> Result<GroupList, AdminError> {
    const CALL: &str = "ListConsumerGroups";
    let call = Call::new(client, CALL, timeout)?;
    // SAFETY: the handle is alive for the borrow of `client`; options and queue are owned by `call`.
    unsafe { sys::rd_kafka_ListConsumerGroups(call.rk, call.options.0, call.queue.0) };
    let event = call.wait(sys::RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT)?;
    event.check(CALL)?;
    let mut out = GroupList::default();
    // SAFETY: the event has the type checked above; the arrays live as long as the event.
    unsafe {
        let result = sys::rd_kafka_event_ListConsumerGroups_result(event.0);
        let mut n = 0usize;
        let valid = sys::rd_kafka_ListConsumerGroups_result_valid(result, &mut n);
        for &listing in raw_slice(valid, n) {
            out.groups.push(GroupListing {
                group_id: owned(sys::rd_kafka_ConsumerGroupListing_group_id(listing)),
                state: state_name(sys::rd_kafka_ConsumerGroupListing_state(listing)),
                kind: group_kind(sys::rd_kafka_ConsumerGroupListing_type(listing)),
            });
        }
        let mut n = 0usize;
        let errors = sys::rd_kafka_ListConsumerGroups_result_errors(result, &mut n);
        for &error in raw_slice(errors, n) {
            out.errors.push(owned(sys::rd_kafka_error_string(error)));
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
) -> Result<Vec<Result<GroupDescription, AdminError>>, AdminError> {
    const CALL: &str = "DescribeConsumerGroups";
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let names = c_strings(CALL, groups)?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|s| s.as_ptr()).collect();
    let call = Call::new(client, CALL, timeout)?;
    // SAFETY: `pointers` and `names` outlive the call, which copies the group names.
    unsafe {
        sys::rd_kafka_DescribeConsumerGroups(
            call.rk,
            pointers.as_mut_ptr(),
            pointers.len(),
            call.options.0,
            call.queue.0,
        )
    };
    let event = call.wait(sys::RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT)?;
    event.check(CALL)?;
    let mut out = Vec::with_capacity(groups.len());
    // SAFETY: the event has the type checked above; descriptions live as long as the event.
    unsafe {
        let result = sys::rd_kafka_event_DescribeConsumerGroups_result(event.0);
        let mut n = 0usize;
        let descriptions = sys::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut n);
        for &desc in raw_slice(descriptions, n) {
            let group_id = owned(sys::rd_kafka_ConsumerGroupDescription_group_id(desc));
            let error = sys::rd_kafka_ConsumerGroupDescription_error(desc);
            if !error.is_null()
                && sys::rd_kafka_error_code(error) != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                out.push(Err(AdminError::Broker {
                    call: CALL,
                    message: format!(
                        "group {group_id}: {}",
                        owned(sys::rd_kafka_error_string(error))
                    ),
                }));
                continue;
            }
            out.push(Ok(GroupDescription {
                group_id,
                state: state_name(sys::rd_kafka_ConsumerGroupDescription_state(desc)),
                members: u32::try_from(sys::rd_kafka_ConsumerGroupDescription_member_count(desc))
                    .unwrap_or(u32::MAX),
            }));
        }
    }
    Ok(out)
}

/// Fetches the committed offsets of each group: one ListConsumerGroupOffsets (OffsetFetch) per
/// group, since librdkafka takes exactly one group per call, with at most `concurrency` in flight
/// on one queue. Returns one result per group, in the order given; `timeout` applies per group.
pub fn list_consumer_group_offsets<C: ClientContext>(
    client: &Client<C>,
    groups: &[String],
    concurrency: usize,
    timeout: Duration,
) -> Vec<Result<Vec<GroupOffset>, AdminError>> {
    const CALL: &str = "ListConsumerGroupOffsets";
    let mut results: Vec<Option<Result<Vec<GroupOffset>, AdminError>>> = vec![None; groups.len()];
    let queue = match Queue::new(client.native_ptr(), CALL) {
        Ok(q) => q,
        Err(e) => return groups.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut pending: VecDeque<usize> = (0..groups.len()).collect();
    // Deadline of each request in flight, by group index.
    let mut in_flight: Vec<(usize, Instant)> = Vec::new();
    let concurrency = concurrency.max(1);
    loop {
        while in_flight.len() < concurrency {
            let Some(i) = pending.pop_front() else { break };
            match submit_offset_fetch(client.native_ptr(), &queue, &groups[i], i, timeout) {
                Ok(()) => in_flight.push((i, Instant::now() + timeout + RESULT_GRACE)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let Some(&(_, first_deadline)) = in_flight.iter().min_by_key(|(_, d)| *d) else {
            break;
        };
        let wait = first_deadline.saturating_duration_since(Instant::now());
        match queue.poll(wait) {
            Some(event) => {
                // SAFETY: the opaque was set to the group index when the request was submitted.
                let index = unsafe { sys::rd_kafka_event_opaque(event.0) } as usize;
                let Some(pos) = in_flight.iter().position(|(i, _)| *i == index) else {
                    continue;
                };
                in_flight.swap_remove(pos);
                results[index] = Some(offsets_from_event(&event, CALL));
            }
            None => {
                // The earliest request timed out; later answers for it are ignored.
                let now = Instant::now();
                in_flight.retain(|&(i, deadline)| {
                    if deadline <= now {
                        results[i] = Some(Err(AdminError::Timeout {
                            call: CALL,
                            timeout,
                        }));
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Err(AdminError::Timeout {
                call: CALL,
                timeout,
            }))
        })
        .collect()
}

fn submit_offset_fetch(
    rk: *mut sys::RDKafka,
    queue: &Queue,
    group: &str,
    index: usize,
    timeout: Duration,
) -> Result<(), AdminError> {
    const CALL: &str = "ListConsumerGroupOffsets";
    let name = CString::new(group).map_err(|_| AdminError::Argument {
        call: CALL,
        message: format!("group id {group:?} contains a NUL byte"),
    })?;
    let options = Options::new(rk, CALL, timeout)?;
    // SAFETY: `options` is valid; the opaque is an integer carried back on the result event.
    unsafe {
        sys::rd_kafka_AdminOptions_set_opaque(options.0, index as *mut c_void);
        // NULL partitions: every committed partition of the group.
        let mut request = sys::rd_kafka_ListConsumerGroupOffsets_new(name.as_ptr(), ptr::null());
        sys::rd_kafka_ListConsumerGroupOffsets(rk, &mut request, 1, options.0, queue.0);
        sys::rd_kafka_ListConsumerGroupOffsets_destroy_array(&mut request, 1);
    }
    Ok(())
}

fn offsets_from_event(event: &Event, call: &'static str) -> Result<Vec<GroupOffset>, AdminError> {
    event.check(call)?;
    // SAFETY: the event is a ListConsumerGroupOffsets result (the only kind sent to this queue).
    unsafe {
        if sys::rd_kafka_event_type(event.0) != sys::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT
        {
            return Err(AdminError::Broker {
                call,
                message: "unexpected event type".into(),
            });
        }
        let result = sys::rd_kafka_event_ListConsumerGroupOffsets_result(event.0);
        let mut n = 0usize;
        let groups = sys::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut n);
        let mut out = Vec::new();
        for &group in raw_slice(groups, n) {
            let error = sys::rd_kafka_group_result_error(group);
            if !error.is_null()
                && sys::rd_kafka_error_code(error) != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                return Err(AdminError::Broker {
                    call,
                    message: format!(
                        "group {}: {}",
                        owned(sys::rd_kafka_group_result_name(group)),
                        owned(sys::rd_kafka_error_string(error))
                    ),
                });
            }
            let list = sys::rd_kafka_group_result_partitions(group);
            if list.is_null() {
                continue;
            }
            let list = &*list;
            for tp in raw_slice(
                list.elems as *const sys::rd_kafka_topic_partition_t,
                list.cnt as usize,
            ) {
                // A negative offset (-1001, INVALID) means no commit; per-partition errors count as none.
                if tp.offset < 0 || tp.err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                    continue;
                }
                out.push(GroupOffset {
                    topic: owned(tp.topic),
                    partition: tp.partition,
                    offset: tp.offset,
                });
            }
        }
        Ok(out)
    }
}

/// Describes the given topics' configurations in one DescribeConfigs request, keeping only `keys`.
/// Topics the broker could not describe are left out and named in the error list.
pub fn describe_topic_configs<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    keys: &[&str],
    timeout: Duration,
) -> Result<(Vec<TopicConfigEntries>, Vec<String>), AdminError> {
    const CALL: &str = "DescribeConfigs";
    if topics.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let names = c_strings(CALL, topics)?;
    let call = Call::new(client, CALL, timeout)?;
    // SAFETY: resources are created, handed to the call (which copies them) and destroyed here.
    unsafe {
        let mut resources: Vec<*mut sys::rd_kafka_ConfigResource_t> = names
            .iter()
            .map(|n| {
                sys::rd_kafka_ConfigResource_new(
                    sys::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                    n.as_ptr(),
                )
            })
            .collect();
        sys::rd_kafka_DescribeConfigs(
            call.rk,
            resources.as_mut_ptr(),
            resources.len(),
            call.options.0,
            call.queue.0,
        );
        sys::rd_kafka_ConfigResource_destroy_array(resources.as_mut_ptr(), resources.len());
    }
    let event = call.wait(sys::RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT)?;
    event.check(CALL)?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    // SAFETY: the event has the type checked above; resources and entries live as long as it.
    unsafe {
        let result = sys::rd_kafka_event_DescribeConfigs_result(event.0);
        let mut n = 0usize;
        let resources = sys::rd_kafka_DescribeConfigs_result_resources(result, &mut n);
        for &resource in raw_slice(resources, n) {
            let topic = owned(sys::rd_kafka_ConfigResource_name(resource));
            if sys::rd_kafka_ConfigResource_error(resource)
                != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                errors.push(format!(
                    "topic {topic}: {}",
                    owned(sys::rd_kafka_ConfigResource_error_string(resource))
                ));
                continue;
            }
            let mut m = 0usize;
            let entries = sys::rd_kafka_ConfigResource_configs(resource, &mut m);
            let mut kept = Vec::new();
            for &entry in raw_slice(entries, m) {
                let name = owned(sys::rd_kafka_ConfigEntry_name(entry));
                if keys.contains(&name.as_str()) {
                    let value = sys::rd_kafka_ConfigEntry_value(entry);
                    if !value.is_null() {
                        kept.push((name, owned(value)));
                    }
                }
            }
            out.push(TopicConfigEntries {
                topic,
                entries: kept,
            });
        }
    }
    Ok((out, errors))
}

/// Extra time beyond the request timeout to wait for librdkafka's own timeout result.
const RESULT_GRACE: Duration = Duration::from_millis(500);

/// One admin request: its options and private result queue.
struct Call {
    rk: *mut sys::RDKafka,
    options: Options,
    queue: Queue,
    call: &'static str,
    timeout: Duration,
}

impl Call {
    fn new<C: ClientContext>(
        client: &Client<C>,
        call: &'static str,
        timeout: Duration,
    ) -> Result<Call, AdminError> {
        let rk = client.native_ptr();
        Ok(Call {
            rk,
            options: Options::new(rk, call, timeout)?,
            queue: Queue::new(rk, call)?,
            call,
            timeout,
        })
    }

    fn wait(&self, expected: i32) -> Result<Event, AdminError> {
        let deadline = Instant::now() + self.timeout + RESULT_GRACE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.queue.poll(left) else {
                return Err(AdminError::Timeout {
                    call: self.call,
                    timeout: self.timeout,
                });
            };
            // SAFETY: a non-null event from our queue.
            if unsafe { sys::rd_kafka_event_type(event.0) } == expected {
                return Ok(event);
            }
        }
    }
}

struct Options(*mut sys::rd_kafka_AdminOptions_t);

impl Options {
    fn new(
        rk: *mut sys::RDKafka,
        call: &'static str,
        timeout: Duration,
    ) -> Result<Options, AdminError> {
        // SAFETY: `rk` is a live handle; the options are destroyed on drop.
        let options = unsafe {
            sys::rd_kafka_AdminOptions_new(rk, sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ANY)
        };
        if options.is_null() {
            return Err(AdminError::Argument {
                call,
                message: "could not create admin options".into(),
            });
        }
        let options = Options(options);
        let ms = i32::try_from(timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let mut errstr = [0 as c_char; 256];
        // SAFETY: errstr is a writable buffer of the size given.
        let err = unsafe {
            sys::rd_kafka_AdminOptions_set_request_timeout(
                options.0,
                ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(AdminError::Argument {
                call,
                // SAFETY: librdkafka NUL-terminates errstr.
                message: unsafe { owned(errstr.as_ptr()) },
            });
        }
        Ok(options)
    }
}

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_AdminOptions_new, destroyed once.
        unsafe { sys::rd_kafka_AdminOptions_destroy(self.0) }
    }
}

struct Queue(*mut sys::rd_kafka_queue_t);

impl Queue {
    fn new(rk: *mut sys::RDKafka, call: &'static str) -> Result<Queue, AdminError> {
        // SAFETY: `rk` is a live handle.
        let q = unsafe { sys::rd_kafka_queue_new(rk) };
        if q.is_null() {
            return Err(AdminError::Argument {
                call,
                message: "could not create a result queue".into(),
            });
        }
        Ok(Queue(q))
    }

    fn poll(&self, timeout: Duration) -> Option<Event> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the queue is live; a returned event is owned by the caller.
        let ev = unsafe { sys::rd_kafka_queue_poll(self.0, ms) };
        (!ev.is_null()).then_some(Event(ev))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new; results still in flight hold their own reference.
        unsafe { sys::rd_kafka_queue_destroy(self.0) }
    }
}

struct Event(*mut sys::rd_kafka_event_t);

impl Event {
    /// The request-level error of an admin result, if any.
    fn check(&self, call: &'static str) -> Result<(), AdminError> {
        // SAFETY: the event is live for the borrow.
        unsafe {
            if sys::rd_kafka_event_error(self.0) == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Ok(());
            }
            let message = owned(sys::rd_kafka_event_error_string(self.0));
            if sys::rd_kafka_event_error(self.0) == RDKafkaRespErr::RD_KAFKA_RESP_ERR__TIMED_OUT {
                return Err(AdminError::Broker {
                    call,
                    message: format!("timed out: {message}"),
                });
            }
            Err(AdminError::Broker { call, message })
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: events polled from a queue are owned here and destroyed once.
        unsafe { sys::rd_kafka_event_destroy(self.0) }
    }
}

fn c_strings(call: &'static str, names: &[String]) -> Result<Vec<CString>, AdminError> {
    names
        .iter()
        .map(|n| {
            CString::new(n.as_str()).map_err(|_| AdminError::Argument {
                call,
                message: format!("name {n:?} contains a NUL byte"),
            })
        })
        .collect()
}

/// # Safety
/// `ptr` must point to `len` valid elements (or be null, then `len` is ignored), alive for `'a`.
unsafe fn raw_slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

/// # Safety
/// `s` must be null or a NUL-terminated string.
unsafe fn owned(s: *const c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    /// A handle pointed at a port nothing listens on: calls must time out cleanly, never hang or crash.
    fn unreachable_client() -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("log_level", "0")
            .create()
            .expect("client config is valid")
    }

    #[test]
    fn calls_without_a_broker_fail_with_errors_not_hangs() {
        let consumer = unreachable_client();
        let client = consumer.client();
        let t = Duration::from_millis(300);
        let started = Instant::now();
        let listed = list_consumer_groups(client, t);
        assert!(
            listed.as_ref().map_or(true, |l| l.groups.is_empty()),
            "{listed:?}"
        );
        let offsets =
            list_consumer_group_offsets(client, &["a".into(), "b".into(), "c".into()], 2, t);
        assert_eq!(offsets.len(), 3);
        assert!(offsets.iter().all(|r| r.is_err()), "{offsets:?}");
        assert!(describe_topic_configs(client, &["t".into()], &["retention.ms"], t).is_err());
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn empty_requests_send_nothing() {
        let consumer = unreachable_client();
        let t = Duration::from_millis(100);
        assert_eq!(
            describe_consumer_groups(consumer.client(), &[], t),
            Ok(vec![])
        );
        assert_eq!(
            describe_topic_configs(consumer.client(), &[], &[], t),
            Ok((vec![], vec![]))
        );
        assert!(list_consumer_group_offsets(consumer.client(), &[], 4, t).is_empty());
    }

    #[test]
    fn names_with_nul_bytes_are_rejected_before_any_call() {
        let consumer = unreachable_client();
        let t = Duration::from_millis(100);
        let bad = vec!["a\0b".to_string()];
        assert!(matches!(
            describe_consumer_groups(consumer.client(), &bad, t),
            Err(AdminError::Argument { .. })
        ));
        let r = list_consumer_group_offsets(consumer.client(), &bad, 1, t);
        assert!(matches!(r[0], Err(AdminError::Argument { .. })));
    }
}
