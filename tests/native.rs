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
    let results = native.committed_offsets(&asked, Duration::from_secs(30));
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
    let again = native.committed_offsets(&asked, Duration::from_secs(30));
    assert_eq!(again, results);
    assert_eq!(counted(&requests) - first, 2);
}

/// Cumulative figures at one moment: the broker side (the proxy) and lagwatch's own.
struct Counts {
    proxy: std::collections::BTreeMap<i16, u64>,
    /// `lagwatch_kafka_requests_total` summed over brokers, as last rendered.
    lagwatch: f64,
    polls: f64,
}

fn proxy_total(c: &Counts) -> f64 {
    c.proxy.values().sum::<u64>() as f64
}

/// Waits for the next poll's render, then for lagwatch to go quiet (polls every 4 s; librdkafka
/// reports its requests within a second), then reads both sides: every request of the polls
/// so far has reached the proxy, and lagwatch's render of that poll is `lagwatch`. A poll that
/// ran during the wait (the first polls can follow each other closely) starts the wait again.
fn after_next_poll(lw: &common::Lagwatch, cluster: &KafkaCluster) -> Counts {
    loop {
        let now = lw.metrics().polls();
        let m = lw.wait_for(Duration::from_secs(60), "the next poll", |m| {
            m.polls() > now
        });
        std::thread::sleep(Duration::from_millis(2500));
        let proxy = cluster.requests.snapshot();
        if lw.metrics().polls() == m.polls() {
            return Counts {
                proxy,
                lagwatch: m.sum("lagwatch_kafka_requests_total", &[("cluster", "test")]),
                polls: m.polls(),
            };
        }
    }
}

/// Requests per poll of a lagwatch polling every 4 s, by API key as the broker received them,
/// after checking over four polls that `lagwatch_kafka_requests_total` counted exactly those.
fn requests_per_poll(lw: &common::Lagwatch, cluster: &KafkaCluster, what: &str) -> Vec<(i16, f64)> {
    // Five quiet points, after five consecutive polls. The broker also saw the set-up, so both
    // sides are compared from the first quiet point on. The render of poll k counts everything
    // lagwatch sent up to its end but librdkafka requests not yet reported (`rendered ≤ sent`);
    // by the next render they are (`sent ≤ next rendered`). So what the broker saw since the
    // first point lies between the two renders' figures: lagwatch counted each request the
    // broker received, and no other.
    let c: Vec<Counts> = (0..5).map(|_| after_next_poll(lw, cluster)).collect();
    for k in 1..4 {
        let broker = proxy_total(&c[k]) - proxy_total(&c[0]);
        let low = c[k].lagwatch - c[1].lagwatch;
        let high = c[k + 1].lagwatch - c[0].lagwatch;
        assert!(
            low <= broker && broker <= high,
            "{what}: after {k} polls the broker saw {broker} requests, lagwatch counted between {low} and {high}"
        );
    }
    let (first, last) = (&c[0], &c[4]);
    let polls = last.polls - first.polls;
    let per_poll = |key: &i16| {
        (last.proxy.get(key).copied().unwrap_or(0) - first.proxy.get(key).copied().unwrap_or(0))
            as f64
            / polls
    };
    let by_key: Vec<(i16, f64)> = last
        .proxy
        .keys()
        .map(|k| (*k, per_poll(k)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    eprintln!(
        "{what}, {polls} polls: {:.2} requests per poll at the broker, {:.2} counted by lagwatch; per poll by API key {by_key:?}",
        (proxy_total(last) - proxy_total(first)) / polls,
        (last.lagwatch - first.lagwatch) / polls,
    );
    by_key
}

fn of(by_key: &[(i16, f64)], key: i16) -> f64 {
    by_key
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(0.0, |(_, n)| *n)
}

#[test]
fn a_poll_of_50_groups_sends_one_find_coordinator_and_one_offset_fetch_as_the_broker_counts() {
    use common::kafka_cluster::proxy::{FIND_COORDINATOR, OFFSET_FETCH};
    let cluster = KafkaCluster::start(common::ClusterSpec {
        counted: true,
        ..common::ClusterSpec::default()
    });
    let topic = unique("counted");
    let prefix = unique("counted-group");
    cluster.create_topic(&topic, 1, &[]);
    cluster.produce(&topic, 0, 60, None);
    for i in 0..50 {
        cluster.commit(&format!("{prefix}-{i}"), &[(&topic, 0, i)]);
    }
    // Σ (60 − i) for i in 0..50.
    let truth: f64 = (0..50).map(|i| 60.0 - f64::from(i)).sum();
    let yaml = common::one_cluster_config(&cluster, &topic, &format!("{prefix}-.*"), "")
        .replace("poll_interval: 1s", "poll_interval: 4s");
    let run = |yaml: &str, what: &str| {
        let lw = common::Lagwatch::start(yaml);
        lw.wait_for(Duration::from_secs(90), "every group's lag", |m| {
            m.sum("kafka_consumergroup_lag_messages", &[("cluster", "test")]) == truth
        });
        requests_per_poll(&lw, &cluster, what)
    };

    let native = run(&yaml, "50 groups, native path");
    // 50 groups on one coordinator: one FindCoordinator and one OffsetFetch per poll.
    assert_eq!(of(&native, FIND_COORDINATOR), 1.0);
    assert_eq!(of(&native, OFFSET_FETCH), 1.0);
    // Metadata, 2 ListOffsets, ListGroups (native), ListGroups + DescribeGroups (librdkafka's
    // classic description), the two above.
    let total: f64 = native.iter().map(|(_, n)| n).sum();
    assert!(total <= 10.0, "{total} requests per poll");

    // A property the native path does not read sends the cluster to librdkafka: the same lag,
    // with one OffsetFetch (and a coordinator lookup) per group.
    let fallback = yaml.replace(
        "    groups:",
        "    kafka: { ssl.cipher.suites: \"ECDHE-RSA-AES256-GCM-SHA384\" }\n    groups:",
    );
    assert_ne!(fallback, yaml);
    let librdkafka = run(&fallback, "50 groups, librdkafka");
    assert_eq!(of(&librdkafka, OFFSET_FETCH), 50.0);
    assert!(of(&librdkafka, FIND_COORDINATOR) >= 1.0);

    // `group_requests: librdkafka` sends a cluster the native path could serve to librdkafka.
    let forced = yaml.replace("    groups:", "    group_requests: librdkafka\n    groups:");
    assert_ne!(forced, yaml);
    let forced = run(&forced, "50 groups, group_requests: librdkafka");
    assert_eq!(of(&forced, OFFSET_FETCH), 50.0);
    assert!(of(&forced, FIND_COORDINATOR) >= 1.0);
}

#[test]
fn a_gssapi_cluster_falls_back_to_librdkafka_and_says_why() {
    let broker = kafka();
    let lw = common::LagwatchProcess::start(&format!(
        "poll_interval: 1s\nclusters:\n  - name: kerberos\n    bootstrap_servers: \"{}\"\n    kafka:\n      security.protocol: SASL_PLAINTEXT\n      sasl.mechanism: GSSAPI\n      sasl.kerberos.kinit.cmd: \"true\"\n",
        broker.bootstrap()
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = lw.log_text();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("committed offsets through librdkafka"))
        {
            assert!(line.contains("GSSAPI"), "{line}");
            assert!(line.contains("\"cluster\":\"kerberos\""), "{line}");
            assert_eq!(
                log.matches("committed offsets through librdkafka").count(),
                1,
                "one line: {log}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fallback line in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
