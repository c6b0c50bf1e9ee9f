//! DescribeConfigs of topics.

use std::ffi::CString;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka_sys as sys;
use sys::types::RDKafkaRespErr;

use super::{c_strings, librdkafka_error, Call};
use crate::kafka::error::{KafkaCallError, Request};

/// The configuration entries of one topic (only the keys asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigEntries {
    pub topic: String,
    pub entries: Vec<(String, String)>,
}

/// DescribeConfigs: the topics described, and per topic the error of those that were not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicConfigs {
    pub described: Vec<TopicConfigEntries>,
    pub failed: Vec<(String, KafkaCallError)>,
}

/// Config resources built for one request, destroyed on drop (librdkafka copies them).
struct Resources(Vec<NonNull<sys::rd_kafka_ConfigResource_t>>);

impl Resources {
    fn topics(names: &[CString], request: Request) -> Result<Resources, KafkaCallError> {
        let mut resources = Resources(Vec::with_capacity(names.len()));
        for name in names {
            // SAFETY: `name` is NUL-terminated; librdkafka copies it.
            let raw = unsafe {
                sys::rd_kafka_ConfigResource_new(
                    sys::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                    name.as_ptr(),
                )
            };
            // On failure, the resources built so far are destroyed by drop.
            let ptr = NonNull::new(raw).ok_or(KafkaCallError::Create {
                request,
                object: "a config resource",
            })?;
            resources.0.push(ptr);
        }
        Ok(resources)
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        for resource in &self.0 {
            // SAFETY: created by rd_kafka_ConfigResource_new, destroyed once.
            unsafe { sys::rd_kafka_ConfigResource_destroy(resource.as_ptr()) }
        }
    }
}

/// Describes the given topics' configurations in one DescribeConfigs request, keeping only `keys`.
/// Topics the broker could not describe are left out and listed with their errors.
pub fn describe_topic_configs<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    keys: &[&str],
    timeout: Duration,
) -> Result<TopicConfigs, KafkaCallError> {
    let request = Request::DescribeConfigs;
    if topics.is_empty() {
        return Ok(TopicConfigs::default());
    }
    let names = c_strings(request, topics)?;
    let call = Call::new(client, request, timeout)?;
    let resources = Resources::topics(&names, request)?;
    let mut pointers: Vec<*mut sys::rd_kafka_ConfigResource_t> =
        resources.0.iter().map(|r| r.as_ptr()).collect();
    // SAFETY: the resources are live (owned by `resources`) and copied by the call; handle,
    // options and queue are live for the borrow of `call`.
    unsafe {
        sys::rd_kafka_DescribeConfigs(
            call.handle.rk,
            pointers.as_mut_ptr(),
            pointers.len(),
            call.options.as_ptr(),
            call.queue.as_ptr(),
        )
    };
    drop(resources);
    let event = call.wait(sys::RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT)?;
    // SAFETY: the event has the type waited for.
    let result = unsafe { sys::rd_kafka_event_DescribeConfigs_result(event.as_ptr()) };
    let mut out = TopicConfigs::default();
    let mut n = 0usize;
    // SAFETY: `result` belongs to the event; librdkafka writes the array length to `n`.
    let described = unsafe { sys::rd_kafka_DescribeConfigs_result_resources(result, &mut n) };
    // SAFETY: `n` resources owned by the event.
    for resource in unsafe { event.items(described, n) } {
        let resource = resource.ptr();
        // SAFETY: the resource and its strings are owned by the event.
        let topic = unsafe { event.text(sys::rd_kafka_ConfigResource_name(resource)) };
        // SAFETY: as above.
        let code = unsafe { sys::rd_kafka_ConfigResource_error(resource) };
        if code != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: as above.
            let message =
                unsafe { event.text(sys::rd_kafka_ConfigResource_error_string(resource)) };
            let error = librdkafka_error(request, code, &message, timeout);
            out.failed.push((topic, error));
            continue;
        }
        let mut m = 0usize;
        // SAFETY: the resource is owned by the event; librdkafka writes the length to `m`.
        let entries = unsafe { sys::rd_kafka_ConfigResource_configs(resource, &mut m) };
        let mut kept = Vec::new();
        // SAFETY: `m` entries owned by the event.
        for entry in unsafe { event.items(entries, m) } {
            // SAFETY: the entry and its strings are owned by the event.
            let name = unsafe { event.text(sys::rd_kafka_ConfigEntry_name(entry.ptr())) };
            if !keys.contains(&name.as_str()) {
                continue;
            }
            // SAFETY: as above.
            let value = unsafe { sys::rd_kafka_ConfigEntry_value(entry.ptr()) };
            if !value.is_null() {
                // SAFETY: a non-null string owned by the event.
                kept.push((name, unsafe { event.text(value) }));
            }
        }
        out.described.push(TopicConfigEntries {
            topic,
            entries: kept,
        });
    }
    Ok(out)
}
