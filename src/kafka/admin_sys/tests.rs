use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::*;

/// A handle pointed at a port nothing listens on: calls must time out cleanly, never hang or crash.
fn unreachable_client() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("log_level", "0")
        .create()
        .expect("client config is valid")
}

#[test]
fn calls_without_a_broker_time_out_never_hang() {
    let consumer = unreachable_client();
    let client = consumer.client();
    let t = Duration::from_millis(300);
    let started = Instant::now();
    // No broker is known, so none can be asked: librdkafka completes the listing with no
    // groups and reports, per broker it could not ask, a timeout; the call itself succeeded.
    assert_eq!(
        list_consumer_groups(client, t),
        Ok(GroupList {
            groups: vec![],
            errors: vec![KafkaCallError::Timeout {
                request: Request::ListConsumerGroups,
                timeout: t
            }],
        })
    );
    let offsets = list_consumer_group_offsets(client, &["a".into(), "b".into(), "c".into()], 2, t);
    let timed_out = KafkaCallError::Timeout {
        request: Request::ListConsumerGroupOffsets,
        timeout: t,
    };
    assert_eq!(
        offsets,
        vec![
            Err(timed_out.clone()),
            Err(timed_out.clone()),
            Err(timed_out)
        ]
    );
    assert_eq!(
        describe_topic_configs(client, &["t".into()], &["retention.ms"], t),
        Err(KafkaCallError::Timeout {
            request: Request::DescribeConfigs,
            timeout: t
        })
    );
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
        Ok(TopicConfigs::default())
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
        Err(KafkaCallError::Argument { .. })
    ));
    let r = list_consumer_group_offsets(consumer.client(), &bad, 1, t);
    assert!(matches!(r[0], Err(KafkaCallError::Argument { .. })));
}

#[test]
fn error_buffers_are_read_up_to_their_nul() {
    let mut buffer = [0 as std::os::raw::c_char; 8];
    for (i, b) in b"bad".iter().enumerate() {
        buffer[i] = *b as std::os::raw::c_char;
    }
    assert_eq!(c_buffer_text(&buffer), "bad");
    assert_eq!(c_buffer_text(&[]), "");
}
