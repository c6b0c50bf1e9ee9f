//! Kerberos (GSSAPI) end to end: the test runs an MIT Kerberos KDC (Debian's `krb5-kdc`, installed
//! by `.ci/setup`) on a loopback port with a realm of its own, gives the brokers' Kerberos
//! listener the service principal `kafka/127.0.0.1` and lagwatch the principal `lagwatch`, each
//! with its keytab. The `lagwatch` process gets its ticket with librdkafka's `kinit` and reads
//! exact lag; the KDC's log shows the service ticket it issued lagwatch for the brokers.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka_cluster::KERBEROS_REALM;
use common::{free_port, unique, ClusterSpec, KafkaCluster, LagwatchProcess, Listener};

/// A KDC of its own realm, stopped on drop.
struct Kdc {
    child: Child,
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .env("KRB5_CONFIG", dir.join("krb5.conf"))
        .env("KRB5_KDC_PROFILE", dir.join("kdc.conf"))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (run .ci/setup: Debian krb5-kdc)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the realm's configuration into `dir`, creates its database with the principals
/// `kafka/127.0.0.1` and `lagwatch` and their keytabs, and starts the KDC.
fn start_kdc(dir: &Path) -> Kdc {
    let port = free_port();
    std::fs::write(
        dir.join("krb5.conf"),
        format!(
            "[libdefaults]
  default_realm = {KERBEROS_REALM}
  dns_lookup_realm = false
  dns_lookup_kdc = false
  dns_canonicalize_hostname = false
  rdns = false
  udp_preference_limit = 1
[realms]
  {KERBEROS_REALM} = {{
    kdc = 127.0.0.1:{port}
  }}
"
        ),
    )
    .expect("krb5.conf");
    let d = dir.display();
    std::fs::write(
        dir.join("kdc.conf"),
        format!(
            "[kdcdefaults]
  kdc_ports = {port}
  kdc_tcp_ports = {port}
[realms]
  {KERBEROS_REALM} = {{
    database_name = {d}/principal
    key_stash_file = {d}/stash
    acl_file = {d}/kadm5.acl
  }}
[logging]
  kdc = FILE:{d}/kdc.log
"
        ),
    )
    .expect("kdc.conf");
    std::fs::write(dir.join("kadm5.acl"), "").expect("acl");
    run(
        dir,
        "kdb5_util",
        &["create", "-s", "-r", KERBEROS_REALM, "-P", "master-pw-1"],
    );
    for (principal, keytab) in [
        ("kafka/127.0.0.1", "kafka.keytab"),
        ("lagwatch", "lagwatch.keytab"),
    ] {
        let keytab = dir.join(keytab).display().to_string();
        for query in [
            format!("addprinc -randkey {principal}"),
            format!("ktadd -k {keytab} {principal}"),
        ] {
            run(dir, "kadmin.local", &["-r", KERBEROS_REALM, "-q", &query]);
        }
    }
    let child = Command::new("krb5kdc")
        .args(["-n", "-r", KERBEROS_REALM])
        .env("KRB5_CONFIG", dir.join("krb5.conf"))
        .env("KRB5_KDC_PROFILE", dir.join("kdc.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start krb5kdc (run .ci/setup)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the KDC did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Kdc { child }
}

#[test]
fn lagwatch_reads_lag_from_a_kerberized_listener_with_a_keytab() {
    let dir = std::env::temp_dir().join(unique("kerberos"));
    std::fs::create_dir_all(&dir).expect("dir");
    let _kdc = start_kdc(&dir);
    let dir_str: &'static str = Box::leak(dir.display().to_string().into_boxed_str());
    let broker = KafkaCluster::start(ClusterSpec {
        kerberos_dir: Some(dir_str),
        ..ClusterSpec::default()
    });
    let topic = unique("kerberized");
    let group = unique("kerberos-reader");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 15, None);
    broker.commit(&group, &[(&topic, 0, 4)]);

    let properties: String = broker
        .client_properties(Listener::Kerberos)
        .into_iter()
        .filter(|(k, _)| k != "bootstrap.servers")
        .map(|(k, v)| format!("      {k}: \"{v}\"\n"))
        .collect();
    let yaml = format!(
        "poll_interval: 1s
clusters:
  - name: kerberos
    bootstrap_servers: \"{}\"
    kafka:
{properties}      sasl.kerberos.principal: \"lagwatch@{KERBEROS_REALM}\"
      sasl.kerberos.keytab: \"{dir_str}/lagwatch.keytab\"
    topics: {{ include: [\"^{topic}$\"] }}
    groups: {{ include: [\"^{group}$\"] }}
",
        broker.bootstrap_for(Listener::Kerberos)
    );
    let krb5_conf = format!("{dir_str}/krb5.conf");
    let ccache = format!("FILE:{dir_str}/lagwatch.ccache");
    let env = [
        ("KRB5_CONFIG", krb5_conf.as_str()),
        ("KRB5CCNAME", ccache.as_str()),
    ];
    let lw = LagwatchProcess::start_with_env(&yaml, &env);
    // 15 produced, 4 committed.
    common::assert_lag_on_every_cluster(|| lw.metrics(), &["kerberos"], &group, 11.0);
    // The KDC issued lagwatch a ticket for the brokers' service principal.
    let kdc_log = std::fs::read_to_string(dir.join("kdc.log")).expect("kdc log");
    let service_ticket = kdc_log.lines().find(|l| {
        l.contains("TGS_REQ")
            && l.contains("ISSUE")
            && l.contains(&format!(
                "lagwatch@{KERBEROS_REALM} for kafka/127.0.0.1@{KERBEROS_REALM}"
            ))
    });
    eprintln!("{}", service_ticket.unwrap_or("no service ticket"));
    assert!(service_ticket.is_some(), "{kdc_log}");
    drop(lw);
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
