//! Secured listeners of Apache Kafka: lagwatch reads the same group's lag over SSL with a client
//! certificate (the listener requires one) and over SASL_SSL with SCRAM-SHA-512, verifying the
//! broker certificate against the test CA.

mod common;

use common::{kafka, unique, Lagwatch, Listener};

#[test]
fn lagwatch_reads_lag_over_ssl_with_a_client_certificate_and_over_sasl_scram() {
    let broker = kafka();
    let topic = unique("secure");
    let group = unique("reader");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 12, None);
    broker.commit(&group, &[(&topic, 0, 5)]);

    let cluster = |name: &str, listener: Listener| {
        let properties: String = broker
            .client_properties(listener)
            .into_iter()
            .filter(|(k, _)| k != "bootstrap.servers")
            .map(|(k, v)| format!("      {k}: \"{v}\"\n"))
            .collect();
        format!(
            "  - name: {name}\n    bootstrap_servers: \"{}\"\n    kafka:\n{properties}    topics: {{ include: [\"^{topic}$\"] }}\n    groups: {{ include: [\"^{group}$\"] }}\n",
            broker.bootstrap_for(listener)
        )
    };
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\npoll_interval: 1s\nclusters:\n{}{}",
        cluster("tls", Listener::Ssl),
        cluster("scram", Listener::SaslSsl)
    );
    assert!(yaml.contains("ssl.certificate.location") && yaml.contains("SCRAM-SHA-512"));
    let lw = Lagwatch::start(&yaml);
    // 12 produced, 5 committed.
    common::assert_lag_on_every_cluster(|| lw.metrics(), &["tls", "scram"], &group, 7.0);
}
