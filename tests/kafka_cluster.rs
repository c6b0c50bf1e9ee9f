//! The test cluster library itself: a 3-node KRaft cluster serves on every listener, survives
//! the loss of a node and takes it back; the shared 1-node cluster serves SSL with client
//! certificates and SASL_SSL with SCRAM. Start-up times are printed for the record.

mod common;

use std::time::Duration;

use common::{kafka, unique, ClusterSpec, KafkaCluster, Listener};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn client(cluster: &KafkaCluster, listener: Listener) -> BaseConsumer {
    let mut c = ClientConfig::new();
    for (k, v) in cluster.client_properties(listener) {
        c.set(k, v);
    }
    c.set("log_level", "3").create().expect("client")
}

/// Brokers the cluster lists, and the high watermark of `topic`'s partition 0, over `listener`.
fn brokers_and_head(cluster: &KafkaCluster, listener: Listener, topic: &str) -> (usize, i64) {
    let consumer = client(cluster, listener);
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("metadata over {listener:?}: {e}"));
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("watermarks over {listener:?}: {e}"));
    (metadata.brokers().len(), high)
}

#[test]
fn every_listener_serves_the_shared_cluster() {
    let cluster = kafka();
    let topic = unique("listeners");
    cluster.create_topic(&topic, 1, &[]);
    cluster.produce(&topic, 0, 25, None);
    for listener in [Listener::Plaintext, Listener::Ssl, Listener::SaslSsl] {
        assert_eq!(
            brokers_and_head(cluster, listener, &topic),
            (1, 25),
            "{listener:?}"
        );
    }
}

#[test]
fn the_ssl_listener_refuses_a_client_without_a_certificate() {
    let cluster = kafka();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_for(Listener::Ssl))
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", cluster.tls.ca.display().to_string())
        .set("log_level", "0")
        .create()
        .expect("client");
    assert!(consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .is_err());
}

#[test]
fn a_three_node_cluster_loses_a_node_and_takes_it_back() {
    let mut cluster = KafkaCluster::start(ClusterSpec {
        nodes: 3,
        ..ClusterSpec::default()
    });
    eprintln!(
        "3-node cluster start-up: {:.1} s",
        cluster.startup.as_secs_f64()
    );
    let topic = unique("replicated");
    cluster.create_topic(&topic, 3, &[]);
    cluster.produce(&topic, 0, 40, None);
    assert_eq!(
        brokers_and_head(&cluster, Listener::Plaintext, &topic),
        (3, 40)
    );

    cluster.kill(2);
    // The killed broker leaves the metadata once its session expires; the topic stays readable
    // from the replicas.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        // While partition leadership moves off the dead node, reads may time out.
        let consumer = client(&cluster, Listener::Plaintext);
        let brokers = consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|m| m.brokers().len())
            .unwrap_or(0);
        let head = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(5))
            .map(|(_, high)| high)
            .unwrap_or(-1);
        if brokers == 2 && head == 40 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 still listed or partition 0 unreadable after 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.start_node(2);
    assert_eq!(
        brokers_and_head(&cluster, Listener::Plaintext, &topic),
        (3, 40)
    );

    cluster.stop(3);
    cluster.produce(&topic, 0, 2, None);
    cluster.start_node(3);
    assert_eq!(
        brokers_and_head(&cluster, Listener::Plaintext, &topic),
        (3, 42)
    );
}

#[test]
fn with_acls_on_only_what_acls_grant_is_visible_to_an_ordinary_user() {
    let cluster = KafkaCluster::start(ClusterSpec {
        acls: true,
        ..ClusterSpec::default()
    });
    let topic = unique("guarded");
    // PLAINTEXT clients are super users: the helpers work as usual.
    cluster.create_topic(&topic, 1, &[]);
    cluster.produce(&topic, 0, 3, None);
    let as_user = |(user, password): (&str, &str)| {
        let mut c = ClientConfig::new();
        for (k, v) in cluster.client_properties(Listener::SaslSsl) {
            c.set(k, v);
        }
        c.set("sasl.username", user)
            .set("sasl.password", password)
            .set("log_level", "0")
            .create::<BaseConsumer>()
            .expect("client")
    };
    let topics_seen = |consumer: &BaseConsumer| {
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .count()
    };
    assert_eq!(topics_seen(&as_user(common::kafka_cluster::ADMIN_USER)), 1);
    // Without a Describe ACL the topic is hidden from the ordinary user.
    assert_eq!(topics_seen(&as_user(common::kafka_cluster::CLIENT_USER)), 0);
    // Kafka's own ACL tool grants it.
    cluster.run_tool(
        "org.apache.kafka.tools.AclCommand",
        &[
            "--bootstrap-server",
            "{bootstrap}",
            "--add",
            "--allow-principal",
            "User:lagwatch",
            "--operation",
            "Describe",
            "--topic",
            &topic,
        ],
    );
    // The broker applies the new ACL once it has the metadata record.
    let user = as_user(common::kafka_cluster::CLIENT_USER);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while topics_seen(&user) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the granted ACL did not take effect"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
