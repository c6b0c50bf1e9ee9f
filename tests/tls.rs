//! TLS to Kafka: Tansu 0.6.0 never uses its TLS acceptor (PRODUCT.md §10), so stunnel terminates
//! TLS in front of it and Tansu advertises the stunnel port. lagwatch connects with
//! `security.protocol: ssl` and verifies the broker certificate against a test CA.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, unique, Broker, Engine, Lagwatch};

struct Stunnel(Child);

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run .ci/setup)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lagwatch_reads_a_broker_over_tls() {
    let dir = std::env::temp_dir().join(unique("lagwatch-tls"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (key, cert) = (dir.join("broker.key"), dir.join("broker.pem"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));

    // Tansu listens in plain text on its own port and advertises the TLS port.
    let tls_port = free_port();
    let plain_port = free_port();
    let mut broker = Broker::start_advertising(Engine::Memory, plain_port, tls_port);
    broker.use_tls(cert.clone());
    let conf = dir.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{plain_port}\ncert = {}\nkey = {}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("stunnel config");
    let _stunnel = Stunnel(
        Command::new("stunnel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel is installed by .ci/setup (Debian package stunnel4)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(Instant::now() < deadline, "stunnel did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let topic = unique("secure");
    let group = unique("reader");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 12, None);
    broker.commit(&group, &[(&topic, 0, 5)]);

    let lw = Lagwatch::start(&format!(
        r#"
listen: "127.0.0.1:0"
poll_interval: 1s
clusters:
  - name: tls
    bootstrap_servers: "127.0.0.1:{tls_port}"
    kafka:
      security.protocol: ssl
      ssl.ca.location: "{}"
    topics: {{ include: ["^{topic}$"] }}
    groups: {{ include: ["^{group}$"] }}
"#,
        cert.display()
    ));
    let m = lw.wait_for(Duration::from_secs(60), "lag over TLS", |m| {
        m.value(
            "kafka_consumergroup_lag_messages",
            &[("group", group.as_str())],
        )
        .is_some()
    });
    assert_eq!(
        m.value("lagwatch_kafka_up", &[("cluster", "tls")]),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "kafka_consumergroup_lag_messages",
            &[("group", group.as_str())]
        ),
        Some(7.0)
    );
}
