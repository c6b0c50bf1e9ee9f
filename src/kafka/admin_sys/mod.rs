//! Admin calls that rdkafka's safe API lacks, wrapped over `rdkafka-sys`. This module and its
//! children own all of lagwatch's `unsafe` code; one file per admin call family
//! ([`groups`], [`offsets`], [`configs`]), the shared plumbing here.
//!
//! Every call runs on the caller's librdkafka handle, sends its result to a private queue
//! created for the call, and blocks until the result arrives or the timeout passes. Run them
//! on a blocking thread. Lifetimes carry the ownership librdkafka documents: options and queues
//! borrow the client's handle, events borrow their queue, and everything read out of an event
//! (arrays, list entries) borrows the event, so no pointer outlives what frees it.

mod configs;
mod groups;
mod offsets;

use std::ffi::{c_void, CStr, CString};
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka_sys as sys;
use sys::types::RDKafkaRespErr;

use super::error::{BrokerRef, KafkaCallError, Request};

pub use configs::{describe_topic_configs, TopicConfigEntries, TopicConfigs};
pub use groups::{
    describe_consumer_groups, list_consumer_groups, GroupDescription, GroupFailure, GroupKind,
    GroupList, GroupListing,
};
pub use offsets::{list_consumer_group_offsets, GroupOffset};

/// Extra time beyond the request timeout to wait for librdkafka's own timeout result.
const RESULT_GRACE: Duration = Duration::from_millis(500);

/// Events waiting on a client's main queue for the application to serve (statistics, logs,
/// errors, token refreshes); a consumer with a group id forwards it to its consumer queue,
/// whose length this then is.
pub fn events_waiting<C: ClientContext>(client: &Client<C>) -> usize {
    let handle = Handle::of(client);
    // SAFETY: `rk` is a live handle for the borrow of `client`; the queue reference
    // rd_kafka_queue_get_main returns is ours and destroyed before returning.
    unsafe {
        let queue = sys::rd_kafka_queue_get_main(handle.rk);
        if queue.is_null() {
            return 0;
        }
        let length = sys::rd_kafka_queue_length(queue);
        sys::rd_kafka_queue_destroy(queue);
        length
    }
}

/// The client's native handle, borrowed for `'c`: everything created on it borrows it too.
#[derive(Clone, Copy)]
struct Handle<'c> {
    rk: *mut sys::RDKafka,
    _client: PhantomData<&'c ()>,
}

impl<'c> Handle<'c> {
    fn of<C: ClientContext>(client: &'c Client<C>) -> Handle<'c> {
        Handle {
            rk: client.native_ptr(),
            _client: PhantomData,
        }
    }
}

/// Admin options with the request timeout set; destroyed on drop.
struct Options<'c> {
    ptr: NonNull<sys::rd_kafka_AdminOptions_t>,
    _handle: PhantomData<Handle<'c>>,
}

impl<'c> Options<'c> {
    fn new(
        handle: Handle<'c>,
        request: Request,
        timeout: Duration,
    ) -> Result<Options<'c>, KafkaCallError> {
        // SAFETY: `handle.rk` is a live client handle for `'c`.
        let raw = unsafe {
            sys::rd_kafka_AdminOptions_new(
                handle.rk,
                sys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ANY,
            )
        };
        let ptr = NonNull::new(raw).ok_or(KafkaCallError::Create {
            request,
            object: "admin options",
        })?;
        let options = Options {
            ptr,
            _handle: PhantomData,
        };
        let ms = i32::try_from(timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let mut errstr = [0 as c_char; 256];
        // SAFETY: the options are live; errstr is a writable buffer of the length passed.
        let err = unsafe {
            sys::rd_kafka_AdminOptions_set_request_timeout(
                options.ptr.as_ptr(),
                ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(KafkaCallError::Argument {
                request,
                message: c_buffer_text(&errstr),
            });
        }
        Ok(options)
    }

    /// Sets the value librdkafka hands back on the result event, to match answers to requests.
    fn set_opaque(&self, value: usize) {
        // SAFETY: the options are live; the opaque is an integer, never dereferenced.
        unsafe { sys::rd_kafka_AdminOptions_set_opaque(self.ptr.as_ptr(), value as *mut c_void) }
    }

    fn as_ptr(&self) -> *mut sys::rd_kafka_AdminOptions_t {
        self.ptr.as_ptr()
    }
}

impl Drop for Options<'_> {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_AdminOptions_new, destroyed once; librdkafka copies the
        // options into each request, so requests in flight do not need them.
        unsafe { sys::rd_kafka_AdminOptions_destroy(self.ptr.as_ptr()) }
    }
}

/// A private result queue on the handle; destroyed on drop.
struct Queue<'c> {
    ptr: NonNull<sys::rd_kafka_queue_t>,
    _handle: PhantomData<Handle<'c>>,
}

impl<'c> Queue<'c> {
    fn new(handle: Handle<'c>, request: Request) -> Result<Queue<'c>, KafkaCallError> {
        // SAFETY: `handle.rk` is a live client handle for `'c`.
        let raw = unsafe { sys::rd_kafka_queue_new(handle.rk) };
        let ptr = NonNull::new(raw).ok_or(KafkaCallError::Create {
            request,
            object: "a result queue",
        })?;
        Ok(Queue {
            ptr,
            _handle: PhantomData,
        })
    }

    /// The next event, or `None` when `timeout` passed first.
    fn poll(&self, timeout: Duration) -> Option<Event<'_>> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the queue is live; a returned event is owned by the caller.
        let raw = unsafe { sys::rd_kafka_queue_poll(self.ptr.as_ptr(), ms) };
        NonNull::new(raw).map(|ptr| Event {
            ptr,
            _queue: PhantomData,
        })
    }

    fn as_ptr(&self) -> *mut sys::rd_kafka_queue_t {
        self.ptr.as_ptr()
    }
}

impl Drop for Queue<'_> {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new, destroyed once; results still in flight hold
        // their own reference to it.
        unsafe { sys::rd_kafka_queue_destroy(self.ptr.as_ptr()) }
    }
}

/// An event polled from a queue, owned and destroyed on drop. What is read out of it borrows it.
struct Event<'q> {
    ptr: NonNull<sys::rd_kafka_event_t>,
    _queue: PhantomData<&'q ()>,
}

impl<'q> Event<'q> {
    fn as_ptr(&self) -> *mut sys::rd_kafka_event_t {
        self.ptr.as_ptr()
    }

    fn kind(&self) -> sys::rd_kafka_event_type_t {
        // SAFETY: the event is live for the borrow.
        unsafe { sys::rd_kafka_event_type(self.as_ptr()) }
    }

    /// The value set with [`Options::set_opaque`] on the request this answers.
    fn opaque(&self) -> usize {
        // SAFETY: the event is live for the borrow; the opaque is an integer, not a pointer.
        unsafe { sys::rd_kafka_event_opaque(self.as_ptr()) as usize }
    }

    /// The request-level error of an admin result, if any; librdkafka's local timeout is a
    /// [`KafkaCallError::Timeout`].
    fn check(&self, request: Request, timeout: Duration) -> Result<(), KafkaCallError> {
        // SAFETY: the event is live for the borrow.
        let code = unsafe { sys::rd_kafka_event_error(self.as_ptr()) };
        if code == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(());
        }
        // SAFETY: the event is live; the string it returns lives as long as the event.
        let message = unsafe { self.text(sys::rd_kafka_event_error_string(self.as_ptr())) };
        Err(librdkafka_error(request, code, &message, timeout))
    }

    /// The elements of an array owned by this event, as borrows of the event.
    ///
    /// # Safety
    /// `array` must be null or point to `len` pointers owned by this event.
    unsafe fn items<'e, T: 'e>(
        &'e self,
        array: *const *const T,
        len: usize,
    ) -> impl Iterator<Item = Item<'e, T>> + 'e {
        let slice: &'e [*const T] = if array.is_null() || len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `len` pointers at `array`, alive as long as `self`.
            unsafe { std::slice::from_raw_parts(array, len) }
        };
        slice.iter().filter_map(|&p| {
            NonNull::new(p.cast_mut()).map(|ptr| Item {
                ptr,
                _event: PhantomData,
            })
        })
    }

    /// A slice of values owned by this event.
    ///
    /// # Safety
    /// `array` must be null or point to `len` values owned by this event.
    unsafe fn slice<'e, T: 'e>(&'e self, array: *const T, len: usize) -> &'e [T] {
        if array.is_null() || len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `len` values at `array`, alive as long as `self`.
            unsafe { std::slice::from_raw_parts(array, len) }
        }
    }

    /// Copies a string owned by this event (or null, read as empty).
    ///
    /// # Safety
    /// `s` must be null or a NUL-terminated string alive as long as `self`.
    unsafe fn text(&self, s: *const c_char) -> String {
        if s.is_null() {
            String::new()
        } else {
            // SAFETY: the caller guarantees a NUL-terminated string.
            unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
        }
    }

    /// The error of an `rd_kafka_error_t` owned by this event; `None` for null or no error.
    ///
    /// # Safety
    /// `error` must be null or owned by this event.
    unsafe fn error(
        &self,
        error: *const sys::rd_kafka_error_t,
        request: Request,
        timeout: Duration,
    ) -> Option<KafkaCallError> {
        if error.is_null() {
            return None;
        }
        // SAFETY: a non-null error owned by the event, per the caller.
        let code = unsafe { sys::rd_kafka_error_code(error) };
        if code == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        // SAFETY: as above; the string lives as long as the error.
        let message = unsafe { self.text(sys::rd_kafka_error_string(error)) };
        Some(librdkafka_error(request, code, &message, timeout))
    }

    /// A broker node owned by this event (a group coordinator), with its address.
    ///
    /// # Safety
    /// `node` must be null or owned by this event.
    unsafe fn node(&self, node: *const sys::rd_kafka_Node_t) -> Option<BrokerRef> {
        if node.is_null() {
            return None;
        }
        // SAFETY: a non-null node owned by the event, per the caller.
        let id = unsafe { sys::rd_kafka_Node_id(node) };
        // SAFETY: as above.
        let host = unsafe { self.text(sys::rd_kafka_Node_host(node)) };
        // SAFETY: as above.
        let port = unsafe { sys::rd_kafka_Node_port(node) };
        Some(BrokerRef::Node {
            id,
            address: (!host.is_empty()).then(|| format!("{host}:{port}")),
        })
    }
}

impl Drop for Event<'_> {
    fn drop(&mut self) {
        // SAFETY: events polled from a queue are owned here and destroyed once.
        unsafe { sys::rd_kafka_event_destroy(self.as_ptr()) }
    }
}

/// A non-null pointer into an event's result, valid while the event is borrowed.
#[derive(Clone, Copy)]
struct Item<'e, T> {
    ptr: NonNull<T>,
    _event: PhantomData<&'e T>,
}

impl<T> Item<'_, T> {
    fn ptr(self) -> *const T {
        self.ptr.as_ptr()
    }
}

/// One admin request: its options and private result queue.
struct Call<'c> {
    handle: Handle<'c>,
    options: Options<'c>,
    queue: Queue<'c>,
    request: Request,
    timeout: Duration,
}

impl<'c> Call<'c> {
    fn new<C: ClientContext>(
        client: &'c Client<C>,
        request: Request,
        timeout: Duration,
    ) -> Result<Call<'c>, KafkaCallError> {
        let handle = Handle::of(client);
        Ok(Call {
            handle,
            options: Options::new(handle, request, timeout)?,
            queue: Queue::new(handle, request)?,
            request,
            timeout,
        })
    }

    /// Waits for the result event of type `expected`, then checks its request-level error.
    fn wait(&self, expected: sys::rd_kafka_event_type_t) -> Result<Event<'_>, KafkaCallError> {
        let deadline = Instant::now() + self.timeout + RESULT_GRACE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.queue.poll(left) else {
                return Err(KafkaCallError::Timeout {
                    request: self.request,
                    timeout: self.timeout,
                });
            };
            if event.kind() == expected {
                event.check(self.request, self.timeout)?;
                return Ok(event);
            }
        }
    }
}

/// An error code and text from librdkafka, shown the way rdkafka shows its errors:
/// `NotCoordinator (Broker: Not coordinator)`.
fn librdkafka_error(
    request: Request,
    code: RDKafkaRespErr,
    text: &str,
    timeout: Duration,
) -> KafkaCallError {
    let code = RDKafkaErrorCode::from(code);
    KafkaCallError::from_code(request, code, format!("{code:?} ({text})"), timeout)
}

fn c_strings(request: Request, names: &[String]) -> Result<Vec<CString>, KafkaCallError> {
    names
        .iter()
        .map(|n| {
            CString::new(n.as_str()).map_err(|_| KafkaCallError::Argument {
                request,
                message: format!("name {n:?} contains a NUL byte"),
            })
        })
        .collect()
}

/// The text librdkafka wrote into an error buffer, up to its NUL.
fn c_buffer_text(buffer: &[c_char]) -> String {
    let bytes: Vec<u8> = buffer
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests;
