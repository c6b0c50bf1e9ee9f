//! ListConsumerGroupOffsets (OffsetFetch): librdkafka takes one group per call, so many run
//! at once on one queue.

use std::collections::VecDeque;
use std::ffi::CString;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka_sys as sys;
use sys::types::RDKafkaRespErr;

use super::{Event, Handle, Options, Queue, RESULT_GRACE};
use crate::kafka::error::{KafkaCallError, Request};

/// A committed offset: the next offset the group will read. Partitions without a commit are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

const REQUEST: Request = Request::ListConsumerGroupOffsets;

/// Fetches the committed offsets of each group: one ListConsumerGroupOffsets (OffsetFetch) per
/// group, since librdkafka takes exactly one group per call, with at most `concurrency` in flight
/// on one queue. Returns one result per group, in the order given; `timeout` applies per group.
pub fn list_consumer_group_offsets<C: ClientContext>(
    client: &Client<C>,
    groups: &[String],
    concurrency: usize,
    timeout: Duration,
) -> Vec<Result<Vec<GroupOffset>, KafkaCallError>> {
    let timed_out = || KafkaCallError::Timeout {
        request: REQUEST,
        timeout,
    };
    let mut results: Vec<Option<Result<Vec<GroupOffset>, KafkaCallError>>> =
        vec![None; groups.len()];
    let handle = Handle::of(client);
    let queue = match Queue::new(handle, REQUEST) {
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
            match submit(handle, &queue, &groups[i], i, timeout) {
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
                let index = event.opaque();
                let Some(pos) = in_flight.iter().position(|(i, _)| *i == index) else {
                    continue;
                };
                in_flight.swap_remove(pos);
                results[index] = Some(offsets_from_event(&event, timeout));
            }
            None => {
                // The earliest request timed out; later answers for it are ignored.
                let now = Instant::now();
                in_flight.retain(|&(i, deadline)| {
                    if deadline <= now {
                        results[i] = Some(Err(timed_out()));
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
        .map(|r| r.unwrap_or_else(|| Err(timed_out())))
        .collect()
}

/// One group's request object, destroyed on drop (librdkafka copies it into the call).
struct GroupRequest(NonNull<sys::rd_kafka_ListConsumerGroupOffsets_t>);

impl Drop for GroupRequest {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_ListConsumerGroupOffsets_new, destroyed once.
        unsafe { sys::rd_kafka_ListConsumerGroupOffsets_destroy(self.0.as_ptr()) }
    }
}

fn submit(
    handle: Handle<'_>,
    queue: &Queue<'_>,
    group: &str,
    index: usize,
    timeout: Duration,
) -> Result<(), KafkaCallError> {
    let name = CString::new(group).map_err(|_| KafkaCallError::Argument {
        request: REQUEST,
        message: format!("group id {group:?} contains a NUL byte"),
    })?;
    let options = Options::new(handle, REQUEST, timeout)?;
    options.set_opaque(index);
    // SAFETY: `name` is NUL-terminated and copied; NULL partitions ask for every committed
    // partition of the group.
    let raw = unsafe { sys::rd_kafka_ListConsumerGroupOffsets_new(name.as_ptr(), ptr::null()) };
    let request = GroupRequest(NonNull::new(raw).ok_or(KafkaCallError::Create {
        request: REQUEST,
        object: "a ListConsumerGroupOffsets request",
    })?);
    let mut requests = [request.0.as_ptr()];
    // SAFETY: the request, options, queue and handle are live; librdkafka copies the request
    // and options, and the queue holds its own reference while the answer is in flight.
    unsafe {
        sys::rd_kafka_ListConsumerGroupOffsets(
            handle.rk,
            requests.as_mut_ptr(),
            requests.len(),
            options.as_ptr(),
            queue.as_ptr(),
        )
    };
    Ok(())
}

fn offsets_from_event(
    event: &Event<'_>,
    timeout: Duration,
) -> Result<Vec<GroupOffset>, KafkaCallError> {
    event.check(REQUEST, timeout)?;
    if event.kind() != sys::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT {
        return Err(KafkaCallError::Argument {
            request: REQUEST,
            message: format!("unexpected event type {}", event.kind()),
        });
    }
    // SAFETY: the event has the type checked above.
    let result = unsafe { sys::rd_kafka_event_ListConsumerGroupOffsets_result(event.as_ptr()) };
    let mut n = 0usize;
    // SAFETY: `result` belongs to the event; librdkafka writes the array length to `n`.
    let groups = unsafe { sys::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut n) };
    let mut out = Vec::new();
    // SAFETY: `n` group results owned by the event.
    for group in unsafe { event.items(groups, n) } {
        // SAFETY: the group result is owned by the event.
        let error = unsafe { sys::rd_kafka_group_result_error(group.ptr()) };
        // SAFETY: the error, if any, is owned by the event.
        if let Some(e) = unsafe { event.error(error, REQUEST, timeout) } {
            return Err(e);
        }
        // SAFETY: the group result is owned by the event.
        let list = unsafe { sys::rd_kafka_group_result_partitions(group.ptr()) };
        // SAFETY: a non-null list is owned by the event, which outlives this borrow.
        let Some(list) = (unsafe { list.as_ref() }) else {
            continue;
        };
        let len = usize::try_from(list.cnt).unwrap_or(0);
        // SAFETY: `elems` holds `cnt` partitions owned by the event.
        for tp in unsafe { event.slice(list.elems.cast_const(), len) } {
            // A negative offset (-1001, INVALID) means no commit; per-partition errors count as none.
            if tp.offset < 0 || tp.err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                continue;
            }
            out.push(GroupOffset {
                // SAFETY: the topic name is owned by the event.
                topic: unsafe { event.text(tp.topic) },
                partition: tp.partition,
                offset: tp.offset,
            });
        }
    }
    Ok(out)
}
