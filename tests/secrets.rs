//! Secrets kept out of the configuration file, against Apache Kafka's secured listeners: the
//! `lagwatch` process reads lag over SSL with a client certificate whose key comes from
//! `{file: PATH}` (`ssl.key.pem`), over SSL with an encrypted key whose password comes from
//! `{file: PATH}`, and over SASL_SSL with SCRAM-SHA-512 whose password comes from `{env: NAME}`
//! and from `{file: PATH}`. No secret value appears in any line of its debug log or in
//! `check-config` output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::kafka_cluster::CLIENT_USER;
use common::{assert_no_secret, kafka, unique, KafkaCluster, LagwatchProcess, Listener};

const PASSWORD_VAR: &str = "LAGWATCH_TEST_SCRAM_PASSWORD";
const KEY_PASSWORD: &str = "k3y-pass-7e1f9a";
const CLUSTERS: [&str; 4] = ["key-pem-file", "encrypted-key", "scram-env", "scram-file"];

/// The client key encrypted (PKCS#8, AES-256) with `KEY_PASSWORD`, so librdkafka can only load
/// it with `ssl.key.password`.
fn encrypted_key(broker: &KafkaCluster, dir: &Path) -> PathBuf {
    let out_path = dir.join("client-encrypted.key");
    let out = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
        .arg(&broker.tls.client_key)
        .arg("-out")
        .arg(&out_path)
        .args(["-passout", &format!("pass:{KEY_PASSWORD}")])
        .output()
        .expect("openssl is installed by .ci/setup");
    assert!(
        out.status.success(),
        "openssl pkcs8: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&out_path).expect("encrypted key");
    assert!(pem.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{pem}");
    out_path
}

/// The secret values a leak would show: the passwords and every base64 line of the client's
/// private key (a fragment of a key is a leak too).
fn secret_values(broker: &KafkaCluster) -> Vec<String> {
    let key = std::fs::read_to_string(&broker.tls.client_key).expect("client key");
    let mut secrets: Vec<String> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect();
    assert!(!secrets.is_empty(), "no key material in {key}");
    secrets.push(CLIENT_USER.1.to_string());
    secrets.push(KEY_PASSWORD.to_string());
    secrets
}

fn config_yaml(broker: &KafkaCluster, dir: &Path, topic: &str, group: &str) -> String {
    let path = |p: &Path| p.display().to_string();
    let key_password_file = dir.join("key-password");
    std::fs::write(&key_password_file, format!("{KEY_PASSWORD}\n")).expect("key password");
    let scram_password_file = dir.join("scram-password");
    std::fs::write(&scram_password_file, CLIENT_USER.1).expect("scram password");
    let encrypted = encrypted_key(broker, dir);
    let tls = &broker.tls;
    let ssl = format!(
        "      security.protocol: ssl\n      ssl.ca.location: \"{}\"\n      ssl.certificate.location: \"{}\"\n",
        path(&tls.ca),
        path(&tls.client_cert)
    );
    let scram = format!(
        "      security.protocol: sasl_ssl\n      ssl.ca.location: \"{}\"\n      sasl.mechanism: SCRAM-SHA-512\n      sasl.username: \"{}\"\n",
        path(&tls.ca),
        CLIENT_USER.0
    );
    let clusters = [
        (
            CLUSTERS[0],
            Listener::Ssl,
            format!(
                "{ssl}      ssl.key.pem: {{file: \"{}\"}}\n",
                path(&tls.client_key)
            ),
        ),
        (
            CLUSTERS[1],
            Listener::Ssl,
            format!(
                "{ssl}      ssl.key.location: \"{}\"\n      ssl.key.password: {{file: \"{}\"}}\n",
                path(&encrypted),
                path(&key_password_file)
            ),
        ),
        (
            CLUSTERS[2],
            Listener::SaslSsl,
            format!("{scram}      sasl.password: {{env: {PASSWORD_VAR}}}\n"),
        ),
        (
            CLUSTERS[3],
            Listener::SaslSsl,
            format!(
                "{scram}      sasl.password: {{file: \"{}\"}}\n",
                path(&scram_password_file)
            ),
        ),
    ];
    let mut yaml = String::from("poll_interval: 1s\nclusters:\n");
    for (name, listener, kafka) in clusters {
        yaml.push_str(&format!(
            "  - name: {name}\n    bootstrap_servers: \"{}\"\n    kafka:\n{kafka}    topics: {{ include: [\"^{topic}$\"] }}\n    groups: {{ include: [\"^{group}$\"] }}\n",
            broker.bootstrap_for(listener)
        ));
    }
    yaml
}

#[test]
fn lagwatch_reads_lag_with_secrets_from_env_and_files_and_never_shows_them() {
    let broker = kafka();
    let topic = unique("secrets");
    let group = unique("secret-reader");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 20, None);
    broker.commit(&group, &[(&topic, 0, 8)]);
    let dir = std::env::temp_dir().join(unique("secret-files"));
    std::fs::create_dir_all(&dir).expect("dir");
    let yaml = config_yaml(broker, &dir, &topic, &group);
    let secrets = secret_values(broker);
    assert_no_secret("configuration file", &yaml, &secrets);

    // The most verbose level lagwatch logs at, for every crate (RUST_LOG wins over --log-level).
    let env = [(PASSWORD_VAR, CLIENT_USER.1), ("RUST_LOG", "trace")];
    let lw = LagwatchProcess::start_with_env(&yaml, &env);
    // 20 produced, 8 committed.
    common::assert_lag_on_every_cluster(|| lw.metrics(), &CLUSTERS, &group, 12.0);
    let log = lw.log_text();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"level\":\"DEBUG\"") || l.contains("\"level\":\"TRACE\"")),
        "the log is verbose: {log}"
    );
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    assert_no_secret("lagwatch log", &log, &secrets);
    drop(lw);

    // check-config resolves the same secrets and shows each only as <redacted>.
    let config = dir.join("lagwatch.yaml");
    std::fs::write(&config, &yaml).expect("config");
    let (code, shown) = common::check_config(&config, &[(PASSWORD_VAR, CLIENT_USER.1)]);
    assert_eq!(code, Some(0), "{shown}");
    for property in ["ssl.key.pem", "ssl.key.password", "sasl.password"] {
        assert!(
            shown
                .lines()
                .any(|l| l.contains(property) && l.contains("<redacted>")),
            "{property} shown redacted: {shown}"
        );
    }
    assert_no_secret("check-config output", &shown, &secrets);

    // Without the variable the file is refused, naming the variable and never a value.
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(["check-config", "--config"])
        .arg(&config)
        .env_remove(PASSWORD_VAR)
        .output()
        .expect("run lagwatch check-config");
    let shown = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains(PASSWORD_VAR), "{shown}");
    assert_no_secret("check-config error", &shown, &secrets);
    let _ = std::fs::remove_dir_all(&dir);
}
