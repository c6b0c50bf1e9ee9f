//! lagwatch's own Kafka protocol path against Apache Kafka: it connects over every listener of
//! the test cluster (PLAINTEXT, SSL with a client certificate, SASL_SSL with SCRAM-SHA-512),
//! negotiates the group request versions from ApiVersions, counts every request it writes, and
//! reads committed offsets batched per coordinator exactly as they were committed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lagwatch::config::{ClusterConfig, Config};
use lagwatch::kafka::native::NativeClient;
use lagwatch::kafka::stats::RequestCounter;
use lagwatch::kafka::{KafkaCallError, Request};

use common::{kafka, unique, KafkaCluster, Listener};

/// The cluster configuration lagwatch would read for `listener`, with `extra` properties.
fn cluster(broker: &KafkaCluster, listener: Listener, extra: &[(&str, &str)]) -> ClusterConfig {
    let mut properties: Vec<(String, String)> = broker
        .client_properties(listener)
        .into_iter()
        .filter(|(k, _)| k != "bootstrap.servers")
        .collect();
    for (k, v) in extra {
        properties.retain(|(key, _)| key != k);
        properties.push((k.to_string(), v.to_string()));
    }
    let kafka: String = properties
        .iter()
        .map(|(k, v)| format!("      {k}: \"{v}\"\n"))
        .collect();
    let kafka = if kafka.is_empty() {
        String::new()
    } else {
        format!("    kafka:\n{kafka}")
    };
    let yaml = format!(
        "clusters:\n  - name: native\n    bootstrap_servers: \"{}\"\n{kafka}",
        broker.bootstrap_for(listener)
    );
    Config::from_yaml(&yaml)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
        .clusters
        .remove(0)
}

fn client(cluster: &ClusterConfig) -> (NativeClient, Arc<Mutex<RequestCounter>>) {
    let requests = Arc::new(Mutex::new(RequestCounter::default()));
    let client = NativeClient::new(cluster, requests.clone(), Duration::from_secs(15))
        .expect("the native path serves this cluster");
    (client, requests)
}

fn counted(requests: &Arc<Mutex<RequestCounter>>) -> u64 {
    requests.lock().expect("counter").totals().values().sum()
}

#[test]
fn the_native_path_connects_over_every_listener_and_counts_each_request() {
    let broker = kafka();
    // (listener, requests to get ready: ApiVersions, plus SaslHandshake and two
    // SaslAuthenticate rounds for SCRAM).
    for (listener, set_up) in [
        (Listener::Plaintext, 1),
        (Listener::Ssl, 1),
        (Listener::SaslSsl, 4),
    ] {
        let (mut native, requests) = client(&cluster(broker, listener, &[]));
        let versions = native
            .check_versions()
            .unwrap_or_else(|e| panic!("{listener:?}: {e:?}"));
        // Kafka 4 speaks FindCoordinator up to v6 and OffsetFetch up to v10; lagwatch stops
        // at v9, the last that names topics.
        assert_eq!(
            versions.get(&Request::FindCoordinator),
            Some(&6),
            "{listener:?}"
        );
        assert_eq!(
            versions.get(&Request::OffsetFetch),
            Some(&9),
            "{listener:?}"
        );
        let totals = requests.lock().expect("counter").totals();
        assert_eq!(
            totals.get("bootstrap"),
            Some(&set_up),
            "{listener:?}: {totals:?}"
        );
        assert_eq!(totals.len(), 1, "{listener:?}: {totals:?}");
    }
}

#[test]
fn a_wrong_password_or_a_refused_client_is_a_typed_error() {
    let broker = kafka();
    let (mut native, _) = client(&cluster(
        broker,
        Listener::SaslSsl,
        &[("sasl.password", "not-the-password")],
    ));
    let e = native.check_versions().expect_err("wrong password");
    assert!(
        matches!(
            e.error,
            KafkaCallError::Authentication {
                request: Request::SaslAuthenticate,
                ..
            }
        ),
        "{e:?}"
    );
    // The SSL listener requires a client certificate: without one the broker hangs up.
    let no_certificate = cluster(broker, Listener::Ssl, &[])
        .kafka
        .into_iter()
        .filter(|(k, _)| !k.starts_with("ssl.certificate") && !k.starts_with("ssl.key"))
        .collect();
    let mut config = cluster(broker, Listener::Ssl, &[]);
    config.kafka = no_certificate;
    let (mut native, _) = client(&config);
    let e = native.check_versions().expect_err("no client certificate");
    assert!(e.broker.is_some(), "{e:?}");
    // GSSAPI is librdkafka's: the native path says so instead of connecting.
    let gssapi = cluster(
        broker,
        Listener::Plaintext,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "GSSAPI"),
        ],
    );
    let requests = Arc::new(Mutex::new(RequestCounter::default()));
    let reason = NativeClient::new(&gssapi, requests, Duration::from_secs(5))
        .err()
        .expect("GSSAPI falls back");
    assert!(reason.contains("GSSAPI"), "{reason}");
}

#[test]
fn committed_offsets_are_read_batched_and_exact_over_scram() {
    let broker = kafka();
    let topic = unique("native-offsets");
    broker.create_topic(&topic, 3, &[]);
    // 30 groups, each with its own commits (group i commits i, i+1 on partitions 0 and 2).
    let groups: Vec<String> = (0..30).map(|i| unique(&format!("native-{i}"))).collect();
    for (i, g) in groups.iter().enumerate() {
        let i = i as i64;
        broker.commit(g, &[(&topic, 0, i), (&topic, 2, i + 1)]);
    }
    let mut asked = groups.clone();
    let never_committed = unique("native-none");
    asked.push(never_committed.clone());

    let (mut native, requests) = client(&cluster(broker, Listener::SaslSsl, &[]));
    let results = native.committed_offsets(&asked);
    assert_eq!(results.len(), asked.len());
    for (i, r) in results.iter().take(groups.len()).enumerate() {
        let mut offsets: Vec<(String, i32, i64)> = r
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e:?}", groups[i]))
            .iter()
            .map(|o| (o.topic.clone(), o.partition, o.offset))
            .collect();
        offsets.sort();
        let i = i as i64;
        assert_eq!(
            offsets,
            [(topic.clone(), 0, i), (topic.clone(), 2, i + 1)],
            "{}",
            groups[i as usize]
        );
    }
    // A group without commits has no offsets and no error, as librdkafka reports it.
    assert_eq!(results.last().cloned(), Some(Ok(Vec::new())));
    // Set-up (4 on a bootstrap connection: ApiVersions, SaslHandshake, 2 SaslAuthenticate),
    // one FindCoordinator for all 31 groups, then per coordinator (the only node) a connection
    // (4 more) and one OffsetFetch.
    let first = counted(&requests);
    assert_eq!(
        first,
        4 + 1 + 4 + 1,
        "{:?}",
        requests.lock().map(|c| c.totals())
    );
    // Connections are kept: the next poll costs two requests, not one per group.
    let again = native.committed_offsets(&asked);
    assert_eq!(again, results);
    assert_eq!(counted(&requests) - first, 2);
}
