//! The errors of collection, from one Kafka call up to a failed poll stage. A [`StageError`]
//! keeps which stage failed, which broker answered (or failed to) when that is known, and the
//! typed cause, down to librdkafka's error code.

use std::fmt;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::Stage;

/// A broker as far as an answer or the cluster metadata identified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerRef {
    /// A broker by node id, with its advertised `host:port` when metadata named it.
    Node { id: i32, address: Option<String> },
    /// The configured bootstrap servers: no broker of the cluster had answered yet.
    Bootstrap(String),
}

impl fmt::Display for BrokerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerRef::Node {
                id,
                address: Some(address),
            } => write!(f, "node {id} ({address})"),
            BrokerRef::Node { id, address: None } => write!(f, "node {id}"),
            BrokerRef::Bootstrap(servers) => write!(f, "bootstrap {servers}"),
        }
    }
}

/// The Kafka request (or librdkafka call) that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Request {
    Metadata,
    ListOffsetsEarliest,
    ListOffsetsLatest,
    ListConsumerGroups,
    /// The classic DescribeGroups, through `rd_kafka_list_groups`.
    DescribeGroups,
    DescribeConsumerGroups,
    ListConsumerGroupOffsets,
    DescribeConfigs,
    /// Assigning the partitions whose records the timestamp reader fetches.
    Assign,
    /// The timestamp reader's fetches of the assigned partitions.
    Fetch,
    /// The native path's TCP (and TLS) connection to a broker.
    Connect,
    ApiVersions,
    SaslHandshake,
    SaslAuthenticate,
    FindCoordinator,
    OffsetFetch,
    ListGroups,
    ConsumerGroupDescribe,
    ShareGroupDescribe,
    DescribeShareGroupOffsets,
    StreamsGroupDescribe,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Request::Metadata => "Metadata",
            Request::ListOffsetsEarliest => "ListOffsets (earliest)",
            Request::ListOffsetsLatest => "ListOffsets (latest)",
            Request::ListConsumerGroups => "ListConsumerGroups",
            Request::DescribeGroups => "DescribeGroups",
            Request::DescribeConsumerGroups => "DescribeConsumerGroups",
            Request::ListConsumerGroupOffsets => "ListConsumerGroupOffsets",
            Request::DescribeConfigs => "DescribeConfigs",
            Request::Assign => "assign",
            Request::Fetch => "Fetch",
            Request::Connect => "connect",
            Request::ApiVersions => "ApiVersions",
            Request::SaslHandshake => "SaslHandshake",
            Request::SaslAuthenticate => "SaslAuthenticate",
            Request::FindCoordinator => "FindCoordinator",
            Request::OffsetFetch => "OffsetFetch",
            Request::ListGroups => "ListGroups",
            Request::ConsumerGroupDescribe => "ConsumerGroupDescribe",
            Request::ShareGroupDescribe => "ShareGroupDescribe",
            Request::DescribeShareGroupOffsets => "DescribeShareGroupOffsets",
            Request::StreamsGroupDescribe => "StreamsGroupDescribe",
        })
    }
}

/// One Kafka call that failed as a whole, or for one partition, group or topic of its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaCallError {
    /// No answer within the call's timeout (librdkafka's local `__TIMED_OUT`, or our own wait).
    #[error("{request}: no answer within {timeout:?}")]
    Timeout { request: Request, timeout: Duration },
    /// librdkafka or the broker answered with an error code; `message` names the code too.
    #[error("{request}: {message}")]
    Kafka {
        request: Request,
        code: RDKafkaErrorCode,
        message: String,
    },
    /// rdkafka failed without an error code (e.g. a client-side conversion).
    #[error("{request}: {source}")]
    Client {
        request: Request,
        #[source]
        source: KafkaError,
    },
    /// The request could not be built: a name with a NUL byte, or an option librdkafka refused.
    #[error("{request}: invalid argument: {message}")]
    Argument { request: Request, message: String },
    /// A librdkafka constructor returned null (out of memory or an invalid argument).
    #[error("{request}: librdkafka could not create {object}")]
    Create {
        request: Request,
        object: &'static str,
    },
    /// The native path: the broker answered with a Kafka error code (`name` is Kafka's name
    /// for it, `message` the broker's own text when it sent one).
    #[error("{request}: {name} (error code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        request: Request,
        code: i16,
        name: String,
        message: Option<String>,
    },
    /// The native path: connecting, TLS, or reading and writing the socket failed.
    #[error("{request}: {message}")]
    Io { request: Request, message: String },
    /// The native path: SASL authentication failed.
    #[error("{request}: authentication failed: {message}")]
    Authentication { request: Request, message: String },
    /// The native path: an answer that does not decode, or does not fit its request.
    #[error("{request}: malformed answer: {message}")]
    Malformed { request: Request, message: String },
    /// The native path: the broker speaks no version of the request lagwatch can use.
    #[error("{request}: the broker supports versions {broker}, lagwatch needs {needed}")]
    Unsupported {
        request: Request,
        broker: String,
        needed: String,
    },
}

impl KafkaCallError {
    /// Classifies a librdkafka error code: its local timeout becomes [`KafkaCallError::Timeout`].
    pub fn from_code(
        request: Request,
        code: RDKafkaErrorCode,
        message: String,
        timeout: Duration,
    ) -> KafkaCallError {
        if code == RDKafkaErrorCode::OperationTimedOut {
            KafkaCallError::Timeout { request, timeout }
        } else {
            KafkaCallError::Kafka {
                request,
                code,
                message,
            }
        }
    }

    /// Classifies an error of rdkafka's safe API, keeping its code where it has one.
    pub fn from_rdkafka(request: Request, error: KafkaError, timeout: Duration) -> KafkaCallError {
        match error.rdkafka_error_code() {
            Some(code) => KafkaCallError::from_code(request, code, error.to_string(), timeout),
            None => KafkaCallError::Client {
                request,
                source: error,
            },
        }
    }

    /// The librdkafka error code, when the failure carried one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            KafkaCallError::Timeout { .. } => Some(RDKafkaErrorCode::OperationTimedOut),
            KafkaCallError::Kafka { code, .. } => Some(*code),
            KafkaCallError::Client { source, .. } => source.rdkafka_error_code(),
            KafkaCallError::Argument { .. }
            | KafkaCallError::Create { .. }
            | KafkaCallError::Broker { .. }
            | KafkaCallError::Io { .. }
            | KafkaCallError::Authentication { .. }
            | KafkaCallError::Malformed { .. }
            | KafkaCallError::Unsupported { .. } => None,
        }
    }

    /// The Kafka protocol error code the broker answered, whichever client asked: librdkafka
    /// passes broker codes through unchanged (its own local codes are negative).
    pub fn broker_code(&self) -> Option<i16> {
        match self {
            KafkaCallError::Broker { code, .. } => Some(*code),
            _ => self
                .code()
                .and_then(|c| i16::try_from(c as i32).ok())
                .filter(|c| *c > 0),
        }
    }
}

/// Why collection, or one part of it, failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectError {
    #[error("cluster {cluster}: cannot create the Kafka client: {source}")]
    Client {
        cluster: String,
        #[source]
        source: KafkaError,
    },
    /// A call failed as a whole.
    #[error(transparent)]
    Call(#[from] KafkaCallError),
    #[error("{topic}/{partition}: {source}")]
    Partition {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaCallError,
    },
    /// The metadata names no leader (its only replicas are down): nobody to ask. The stage error
    /// names the last leader seen, the broker whose loss took the partition offline.
    #[error("{topic}/{partition}: no leader")]
    NoLeader { topic: String, partition: i32 },
    #[error("{topic}/{partition}: {request} gave no offset")]
    NoOffset {
        request: Request,
        topic: String,
        partition: i32,
    },
    #[error("{topic}/{partition}: {request} gave the unexpected offset {offset}")]
    UnexpectedOffset {
        request: Request,
        topic: String,
        partition: i32,
        offset: String,
    },
    #[error("group {group}: {source}")]
    Group {
        group: String,
        #[source]
        source: KafkaCallError,
    },
    #[error("topic {topic}: {source}")]
    Topic {
        topic: String,
        #[source]
        source: KafkaCallError,
    },
    /// Kafka refused the reads (an authorization error), so waiting longer would not help.
    #[error("{unread} of {total} record timestamps not read (topics {topics}): {source}")]
    TimestampsRefused {
        unread: usize,
        total: usize,
        topics: String,
        /// Boxed: the largest variant otherwise, and every result of collection carries its size.
        #[source]
        source: Box<KafkaCallError>,
    },
    #[error("{unread} of {total} record timestamps not read within {timeout:?}")]
    TimestampsUnread {
        unread: usize,
        total: usize,
        timeout: Duration,
    },
    /// The poll's time ran out before the stage could start; what it would have read is left
    /// for the next poll.
    #[error("not started: the poll's {budget:?} (poll_timeout) ran out")]
    OutOfTime { budget: Duration },
}

/// A failed stage of a poll: counted once in `lagwatch_poll_errors_total{stage}` and logged
/// with the stage and broker as fields of their own, so the display is the cause alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source}")]
pub struct StageError {
    pub stage: Stage,
    /// The broker that answered or was asked, when the answer or the metadata named it.
    pub broker: Option<BrokerRef>,
    /// Boxed: the cause is large and failures are rare, so results stay small.
    #[source]
    pub source: Box<CollectError>,
}

impl StageError {
    pub fn new(stage: Stage, broker: Option<BrokerRef>, source: impl Into<CollectError>) -> Self {
        StageError {
            stage,
            broker,
            source: Box::new(source.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_display_as_logged() {
        let cases = [
            // 1. Metadata named the leader's address: both, so the log finds the host.
            (
                BrokerRef::Node {
                    id: 1,
                    address: Some("kafka-1:9092".into()),
                },
                "node 1 (kafka-1:9092)",
            ),
            // 2. A coordinator librdkafka reported without its address.
            (
                BrokerRef::Node {
                    id: 3,
                    address: None,
                },
                "node 3",
            ),
            // 3. Nothing answered yet: the servers that were asked.
            (
                BrokerRef::Bootstrap("a:9092,b:9092".into()),
                "bootstrap a:9092,b:9092",
            ),
        ];
        for (i, (broker, want)) in cases.iter().enumerate() {
            assert_eq!(broker.to_string(), *want, "case {}", i + 1);
        }
    }

    #[test]
    fn the_local_timeout_code_is_a_timeout_and_other_codes_keep_theirs() {
        let t = Duration::from_secs(5);
        let timed_out = KafkaCallError::from_code(
            Request::Metadata,
            RDKafkaErrorCode::OperationTimedOut,
            "Local: Timed out".into(),
            t,
        );
        assert_eq!(
            timed_out,
            KafkaCallError::Timeout {
                request: Request::Metadata,
                timeout: t
            }
        );
        assert_eq!(timed_out.to_string(), "Metadata: no answer within 5s");
        let refused = KafkaCallError::from_rdkafka(
            Request::ListOffsetsLatest,
            KafkaError::OffsetFetch(RDKafkaErrorCode::NotLeaderForPartition),
            t,
        );
        assert_eq!(
            refused.code(),
            Some(RDKafkaErrorCode::NotLeaderForPartition)
        );
        assert!(matches!(refused, KafkaCallError::Kafka { .. }));
    }
}
