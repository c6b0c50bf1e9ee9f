//! Apache Kafka test clusters: KRaft nodes (combined broker + controller) started from the
//! artifacts `.ci/install-kafka` resolves (the version is pinned in `.ci/kafka/pom.xml`), on free
//! loopback ports, with PLAINTEXT, SSL (client certificates required) and SASL_SSL
//! (SCRAM-SHA-512) listeners, and on request the ACL authorizer and a SASL_PLAINTEXT listener
//! whose brokers validate OAUTHBEARER JWTs against a JWKS endpoint.
//!
//! Every JVM is tied to the test process: it is spawned by one long-lived thread with
//! `PR_SET_PDEATHSIG`, so it dies with the process however the process ends, and an exit handler
//! kills the nodes of clusters still alive at exit. A cluster's directory (configuration, data,
//! `node-N/server.log`) is removed when it stops, and kept, with its path printed, when a test
//! of the process failed.
//!
//! Used by the integration tests (through `tests/common/mod.rs`) and by the demo's
//! `examples/kafka_cluster.rs`.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Heap of one node: 3 nodes and the tests fit in 2 cores and 24 GiB with room to spare.
const NODE_HEAP: &str = "-Xmx512m";
/// How long a cluster may take to serve (a 3-node cluster on 2 busy cores included).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The SCRAM-SHA-512 users every cluster is formatted with: a super user and an ordinary one
/// (which the ACL authorizer, when on, allows only what ACLs grant).
pub const ADMIN_USER: (&str, &str) = ("admin", "admin-secret");
pub const CLIENT_USER: (&str, &str) = ("lagwatch", "lagwatch-secret");

/// The audience (`aud`) and issuer (`iss`) the OAUTHBEARER listener requires of a JWT (Kafka 4
/// refuses to start a JWT validator that checks no audience).
pub const OAUTH_AUDIENCE: &str = "lagwatch-test-cluster";
pub const OAUTH_ISSUER: &str = "lagwatch-test-idp";
/// The Kerberos realm of a cluster's Kerberos listener.
pub const KERBEROS_REALM: &str = "LAGWATCH.TEST";
/// The counting proxy in front of PLAINTEXT listeners (`ClusterSpec::counted`).
#[path = "proxy.rs"]
pub mod proxy;

/// Live share-group members and Kafka Streams applications (Java clients).
#[path = "group_clients.rs"]
pub mod group_clients;

/// What kind of cluster to start.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSpec {
    /// Combined broker + controller nodes (1 or 3); internal topics are replicated to all.
    pub nodes: usize,
    /// Turns on `StandardAuthorizer`: PLAINTEXT clients and `admin` are super users, every
    /// other principal needs ACLs.
    pub acls: bool,
    /// PLAINTEXT port of node 1 (node N gets this + N - 1); None: free ports. For the demo,
    /// whose configuration names its bootstrap server.
    pub first_port: Option<u16>,
    /// Adds a SASL_PLAINTEXT listener ([`Listener::OauthBearer`]) taking OAUTHBEARER only, whose
    /// brokers validate JWTs with `OAuthBearerValidatorCallbackHandler` against the JWKS served
    /// at `http://127.0.0.1:{port}/jwks` (which must answer before the cluster starts: brokers
    /// read it at start). The JVMs allow exactly that URL
    /// (`org.apache.kafka.sasl.oauthbearer.allowed.urls`), as Kafka 4 requires.
    pub oauthbearer_jwks_port: Option<u16>,
    /// Adds a SASL_PLAINTEXT listener ([`Listener::Kerberos`]) taking GSSAPI only, as
    /// `kafka/127.0.0.1@`[`KERBEROS_REALM`] with the keytab `kafka.keytab` of this directory,
    /// whose `krb5.conf` names the KDC (the JVMs read it with `java.security.krb5.conf`).
    pub kerberos_dir: Option<&'static str>,
    /// Each node's PLAINTEXT listener advertises the port of a counting proxy in front of it
    /// (`proxy`), so every request of a PLAINTEXT client is counted by API key in
    /// [`KafkaCluster::requests`].
    pub counted: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 1,
            acls: false,
            first_port: None,
            oauthbearer_jwks_port: None,
            kerberos_dir: None,
            counted: false,
        }
    }
}

/// Which listener a client connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Plaintext,
    Ssl,
    SaslSsl,
    /// SASL_PLAINTEXT with OAUTHBEARER, validated against a JWKS (`oauthbearer_jwks_port`).
    OauthBearer,
    /// SASL_PLAINTEXT with GSSAPI (`kerberos_dir`).
    Kerberos,
}

/// The test CA and the certificates it signed (PEM files).
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

#[derive(Debug)]
struct Node {
    id: usize,
    dir: PathBuf,
    plaintext: u16,
    /// The advertised PLAINTEXT port: the counting proxy's when the spec asks for one.
    advertised: u16,
    ssl: u16,
    sasl_ssl: u16,
    /// The OAUTHBEARER listener's port, when the spec asks for one.
    oauth: Option<u16>,
    /// The Kerberos listener's port, when the spec asks for one.
    kerberos: Option<u16>,
    controller: u16,
    child: Option<Child>,
}

/// A running KRaft cluster. Dropping it stops every node.
#[derive(Debug)]
pub struct KafkaCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    pub tls: Tls,
    pub spec: ClusterSpec,
    /// How long the cluster took from the first format to serving.
    pub startup: Duration,
    /// Requests through the PLAINTEXT proxies by API key (empty without `spec.counted`).
    pub requests: proxy::RequestCounts,
}

impl KafkaCluster {
    /// Formats and starts a cluster, and returns once every node serves.
    pub fn start(spec: ClusterSpec) -> KafkaCluster {
        assert!(spec.nodes >= 1, "a cluster has at least one node");
        watch_process();
        let started = Instant::now();
        let kafka = installation();
        let dir = std::env::temp_dir().join(format!(
            "lagwatch-kafka-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let tls = make_certificates(&dir.join("tls"));
        std::fs::write(dir.join("log4j2.properties"), LOG4J2).expect("log4j2 config");
        let requests = proxy::RequestCounts::default();
        let nodes: Vec<Node> = (1..=spec.nodes)
            .map(|id| {
                let plaintext = spec
                    .first_port
                    .map_or_else(free_port, |p| p + id as u16 - 1);
                (id, plaintext)
            })
            .map(|(id, plaintext)| Node {
                id,
                dir: dir.join(format!("node-{id}")),
                plaintext,
                advertised: if spec.counted {
                    let port = free_port();
                    proxy::start(port, plaintext, requests.clone());
                    port
                } else {
                    plaintext
                },
                ssl: free_port(),
                sasl_ssl: free_port(),
                oauth: spec.oauthbearer_jwks_port.map(|_| free_port()),
                kerberos: spec.kerberos_dir.map(|_| free_port()),
                controller: free_port(),
                child: None,
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller))
            .collect::<Vec<_>>()
            .join(",");
        for node in &nodes {
            std::fs::create_dir_all(node.dir.join("data")).expect("node dir");
            std::fs::write(
                node.dir.join("server.properties"),
                server_properties(node, &voters, &spec, &tls, &dir),
            )
            .expect("server.properties");
        }
        // Format every node's storage in parallel (one JVM each).
        let cluster_id = cluster_id();
        std::thread::scope(|s| {
            for node in &nodes {
                let (kafka, dir, cluster_id) = (&kafka, &dir, &cluster_id);
                s.spawn(move || format_storage(kafka, dir, node, cluster_id));
            }
        });
        let mut cluster = KafkaCluster {
            dir,
            nodes,
            tls,
            spec,
            startup: Duration::ZERO,
            requests,
        };
        for i in 0..cluster.nodes.len() {
            cluster.launch(i);
        }
        cluster.wait_serving(&(1..=spec.nodes).collect::<Vec<_>>());
        cluster.startup = started.elapsed();
        eprintln!(
            "kafka: {}-node cluster serving in {:.1} s at {} (logs in {})",
            spec.nodes,
            cluster.startup.as_secs_f64(),
            cluster.bootstrap(),
            cluster.dir.display()
        );
        cluster
    }

    /// Bootstrap servers of the PLAINTEXT listener (every running node).
    pub fn bootstrap(&self) -> String {
        self.bootstrap_for(Listener::Plaintext)
    }

    pub fn bootstrap_for(&self, listener: Listener) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let port = match listener {
                    Listener::Plaintext => n.advertised,
                    Listener::Ssl => n.ssl,
                    Listener::SaslSsl => n.sasl_ssl,
                    Listener::OauthBearer => n
                        .oauth
                        .expect("the cluster was started with oauthbearer_jwks_port"),
                    Listener::Kerberos => n
                        .kerberos
                        .expect("the cluster was started with kerberos_dir"),
                };
                format!("127.0.0.1:{port}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// librdkafka properties that reach the cluster on `listener` (as `admin` on SASL_SSL).
    pub fn client_properties(&self, listener: Listener) -> Vec<(String, String)> {
        let mut p = vec![(
            "bootstrap.servers".to_string(),
            self.bootstrap_for(listener),
        )];
        let path = |p: &Path| p.display().to_string();
        match listener {
            Listener::Plaintext => {}
            Listener::Ssl => {
                p.push(("security.protocol".into(), "ssl".into()));
                p.push(("ssl.ca.location".into(), path(&self.tls.ca)));
                p.push((
                    "ssl.certificate.location".into(),
                    path(&self.tls.client_cert),
                ));
                p.push(("ssl.key.location".into(), path(&self.tls.client_key)));
            }
            Listener::SaslSsl => {
                p.push(("security.protocol".into(), "sasl_ssl".into()));
                p.push(("ssl.ca.location".into(), path(&self.tls.ca)));
                p.push(("sasl.mechanism".into(), "SCRAM-SHA-512".into()));
                p.push(("sasl.username".into(), ADMIN_USER.0.into()));
                p.push(("sasl.password".into(), ADMIN_USER.1.into()));
            }
            // The token source (OIDC endpoint, refresh hook) is the test's to choose.
            Listener::OauthBearer => {
                p.push(("security.protocol".into(), "sasl_plaintext".into()));
                p.push(("sasl.mechanism".into(), "OAUTHBEARER".into()));
            }
            // The client's principal and keytab are the test's to choose.
            Listener::Kerberos => {
                p.push(("security.protocol".into(), "sasl_plaintext".into()));
                p.push(("sasl.mechanism".into(), "GSSAPI".into()));
                p.push(("sasl.kerberos.service.name".into(), "kafka".into()));
            }
        }
        p
    }

    /// Runs one of Kafka's command-line tools (a main class of the installation, such as
    /// `org.apache.kafka.tools.AclCommand`) with `args`; `{bootstrap}` in an argument is
    /// replaced by the PLAINTEXT bootstrap servers. Returns its standard output; panics with
    /// its output when it fails.
    pub fn run_tool(&self, class: &str, args: &[&str]) -> String {
        let bootstrap = self.bootstrap();
        let out = java()
            .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg(format!("-Dkafka.logs.dir={}", self.dir.display()))
            .arg("-cp")
            .arg(installation().join("libs/*"))
            .arg(class)
            .args(args.iter().map(|a| a.replace("{bootstrap}", &bootstrap)))
            .output()
            .unwrap_or_else(|e| panic!("run {class}: {e} (run .ci/setup)"));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{class} {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The node ids (1-based), for `stop`, `kill` and `start`.
    pub fn node_ids(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The directory holding every node's configuration, data and `server.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops a node cleanly (SIGTERM: controlled shutdown, leadership moves first).
    pub fn stop(&mut self, id: usize) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.wait();
            forget_pid(child.id());
        }
    }

    /// Kills a node (SIGKILL: a crash, no controlled shutdown).
    pub fn kill(&mut self, id: usize) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
            forget_pid(child.id());
        }
    }

    /// Starts a stopped or killed node again on its ports, with its data, and waits until the
    /// cluster lists it.
    pub fn start_node(&mut self, id: usize) {
        self.start_nodes(&[id]);
    }

    /// Starts several stopped or killed nodes at once and waits until the cluster lists them: a
    /// controller quorum lost with every node can only form again with a majority running.
    pub fn start_nodes(&mut self, ids: &[usize]) {
        for &id in ids {
            let index = self.index(id);
            assert!(self.nodes[index].child.is_none(), "node {id} is running");
            self.launch(index);
        }
        let running: Vec<usize> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect();
        self.wait_serving(&running);
    }

    fn index(&self, id: usize) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: usize) -> &mut Node {
        let i = self.index(id);
        &mut self.nodes[i]
    }

    fn launch(&mut self, index: usize) {
        let kafka = installation();
        let log4j = self.dir.join("log4j2.properties");
        let node = &mut self.nodes[index];
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("stdout.log"))
            .expect("node stdout log");
        let mut command = java();
        command.args([NODE_HEAP, "-Xms128m"]).args(JVM_OPTIONS);
        if let Some(port) = self.spec.oauthbearer_jwks_port {
            command.arg(format!(
                "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={}",
                jwks_url(port)
            ));
        }
        if let Some(dir) = self.spec.kerberos_dir {
            command.arg(format!("-Djava.security.krb5.conf={dir}/krb5.conf"));
        }
        command
            .arg(format!("-Dkafka.logs.dir={}", node.dir.display()))
            .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
            .arg("-cp")
            .arg(kafka.join("libs/*"))
            .arg("kafka.Kafka")
            .arg(node.dir.join("server.properties"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout.try_clone().expect("log fd")))
            .stderr(Stdio::from(stdout));
        let child = spawn_tied(command).expect("start a Kafka node (java)");
        remember_pid(child.id());
        node.child = Some(child);
    }

    /// Waits until every node in `ids` accepts connections and the cluster's metadata lists
    /// exactly those brokers.
    fn wait_serving(&mut self, ids: &[usize]) {
        let deadline = Instant::now() + START_TIMEOUT;
        for &id in ids {
            let port = self.nodes[self.index(id)].plaintext;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                self.check_alive(id);
                assert!(
                    Instant::now() < deadline,
                    "Kafka node {id} did not listen on {port} within {START_TIMEOUT:?}: {}",
                    self.log_tail(id)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let mut config = ClientConfig::new();
        for (k, v) in self.client_properties(Listener::Plaintext) {
            config.set(k, v);
        }
        let consumer: BaseConsumer = config.set("log_level", "0").create().expect("client");
        let mut want: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
        want.sort_unstable();
        loop {
            let listed = consumer
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|m| {
                    let mut b: Vec<i32> = m.brokers().iter().map(|b| b.id()).collect();
                    b.sort_unstable();
                    b
                })
                .unwrap_or_default();
            if listed == want {
                return;
            }
            for &id in ids {
                self.check_alive(id);
            }
            assert!(
                Instant::now() < deadline,
                "the cluster lists brokers {listed:?}, not {want:?}, after {START_TIMEOUT:?}; logs in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn check_alive(&mut self, id: usize) {
        let index = self.index(id);
        let exited = self.nodes[index]
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            FAILED.store(true, Ordering::Relaxed);
            panic!("Kafka node {id} exited ({status}): {}", self.log_tail(id));
        }
    }

    /// The last lines of a node's logs, for failure messages.
    pub fn log_tail(&self, id: usize) -> String {
        let node = &self.nodes[self.index(id)];
        let mut out = format!("logs in {}\n", node.dir.display());
        for file in ["stdout.log", "server.log"] {
            let text = std::fs::read_to_string(node.dir.join(file)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(15);
            let _ = writeln!(out, "--- {file}\n{}", lines[from..].join("\n"));
        }
        out
    }

    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
                forget_pid(child.id());
            }
        }
    }

    /// Keeps the cluster running for the rest of the process (the shared cluster of a test
    /// binary): the exit handler kills its nodes and removes its directory unless a test failed.
    pub fn leak(self) -> &'static KafkaCluster {
        SHARED_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.dir.clone());
        Box::leak(Box::new(self))
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() || FAILED.load(Ordering::Relaxed) {
            eprintln!("kafka: logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

const JVM_OPTIONS: &[&str] = &[
    // Small, single-threaded collection and a quick JIT: test brokers start fast and stay small.
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
];

/// Broker logs go to `node-N/server.log` (the state-change and request logs are not needed).
const LOG4J2: &str = "\
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
";

fn server_properties(
    node: &Node,
    voters: &str,
    spec: &ClusterSpec,
    tls: &Tls,
    cluster_dir: &Path,
) -> String {
    let rf = spec.nodes.min(3);
    let min_isr = rf.min(2);
    let keystore = cluster_dir.join("tls/broker-keystore.pem");
    let mut p = format!(
        "process.roles=broker,controller
node.id={id}
controller.quorum.voters={voters}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl},SASL_SSL://127.0.0.1:{sasl},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{advertised},SSL://127.0.0.1:{ssl},SASL_SSL://127.0.0.1:{sasl}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=1
default.replication.factor={rf}
auto.create.topics.enable=false
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=5
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={min_isr}
share.coordinator.state.topic.num.partitions=5
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
log.retention.check.interval.ms=1000
log.initial.task.delay.ms=0
log.segment.delete.delay.ms=1000
log.cleaner.dedupe.buffer.size=16777216
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
",
        id = node.id,
        plain = node.plaintext,
        advertised = node.advertised,
        ssl = node.ssl,
        sasl = node.sasl_ssl,
        ctl = node.controller,
        data = node.dir.join("data").display(),
        keystore = keystore.display(),
        ca = tls.ca.display(),
    );
    if let (Some(jwks), Some(port)) = (spec.oauthbearer_jwks_port, node.oauth) {
        p = add_listener(p, node, "OAUTH", port, "SASL_PLAINTEXT");
        let _ = write!(
            p,
            "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url={}
listener.name.oauth.oauthbearer.sasl.oauthbearer.expected.audience={OAUTH_AUDIENCE}
listener.name.oauth.oauthbearer.sasl.oauthbearer.expected.issuer={OAUTH_ISSUER}
",
            jwks_url(jwks)
        );
    }
    if let (Some(dir), Some(port)) = (spec.kerberos_dir, node.kerberos) {
        p = add_listener(p, node, "KERBEROS", port, "SASL_PLAINTEXT");
        let _ = write!(
            p,
            "listener.name.kerberos.sasl.enabled.mechanisms=GSSAPI
listener.name.kerberos.gssapi.sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab=\"{dir}/kafka.keytab\" principal=\"kafka/127.0.0.1@{KERBEROS_REALM}\";
sasl.kerberos.service.name=kafka
"
        );
    }
    if spec.acls {
        p.push_str(
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n",
        );
        let _ = writeln!(p, "super.users=User:ANONYMOUS;User:{}", ADMIN_USER.0);
    }
    p
}

/// `properties` with one more listener `name` on `port` (listened on and advertised).
fn add_listener(properties: String, node: &Node, name: &str, port: u16, protocol: &str) -> String {
    properties
        .replacen(
            &format!(",CONTROLLER://127.0.0.1:{}", node.controller),
            &format!(
                ",{name}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{}",
                node.controller
            ),
            1,
        )
        .replacen(
            "\nadvertised.listeners=",
            &format!("\nadvertised.listeners={name}://127.0.0.1:{port},"),
            1,
        )
        .replacen(
            ",CONTROLLER:PLAINTEXT",
            &format!(",{name}:{protocol},CONTROLLER:PLAINTEXT"),
            1,
        )
}

/// Where brokers with an OAUTHBEARER listener read their JWKS.
pub fn jwks_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/jwks")
}

fn format_storage(kafka: &Path, cluster_dir: &Path, node: &Node, cluster_id: &str) {
    let scram =
        |(name, password): (&str, &str)| format!("SCRAM-SHA-512=[name={name},password={password}]");
    let out = java()
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        .arg(format!("-Dkafka.logs.dir={}", node.dir.display()))
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            cluster_dir.join("log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(kafka.join("libs/*"))
        .args([
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
        ])
        .arg("--config")
        .arg(node.dir.join("server.properties"))
        .args(["--add-scram", &scram(ADMIN_USER)])
        .args(["--add-scram", &scram(CLIENT_USER)])
        .output()
        .unwrap_or_else(|e| panic!("run java for the KRaft storage format: {e} (run .ci/setup)"));
    assert!(
        out.status.success(),
        "formatting node {}'s storage failed: {}{}",
        node.id,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn java() -> Command {
    match std::env::var_os("JAVA_HOME") {
        Some(home) => Command::new(PathBuf::from(home).join("bin/java")),
        None => Command::new("java"),
    }
}

/// The Kafka installation: `LAGWATCH_KAFKA_HOME`, or what `.ci/install-kafka` prints (it
/// resolves the pinned version once and answers from the cache afterwards).
pub fn installation() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        if let Some(home) = std::env::var_os("LAGWATCH_KAFKA_HOME") {
            return PathBuf::from(home);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/install-kafka");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: Apache Kafka is not installed (run .ci/setup)",
            script.display()
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as `random-uuid`).
fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 16];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ (u64::from(std::process::id()) << 32)
        ^ SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut x = seed | 1;
    for b in &mut bytes {
        // xorshift64: unique enough for test cluster ids.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    // The first character then comes from `A`..`f`: an id starting with `-` would read as an
    // option to the storage tool.
    bytes[0] &= 0x7f;
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = String::new();
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

/// Runs `openssl ARGS` in `dir`; fails the test with openssl's message when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e} (run .ci/setup)"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, the brokers' certificate (for 127.0.0.1 and localhost) and a client certificate,
/// made with openssl (EC P-256 keys: quick to make).
fn make_certificates(dir: &Path) -> Tls {
    std::fs::create_dir_all(dir).expect("tls dir");
    let openssl = |args: &[&str]| openssl(dir, args);
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "7",
                "-subj",
                "/CN=lagwatch test CA",
            ][..],
            &key[..],
            &["-keyout", "ca.key", "-out", "ca.pem"][..],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("broker.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    for (name, subject, ext) in [
        ("broker", "/CN=localhost", Some("broker.ext")),
        ("client", "/CN=lagwatch-client", None),
    ] {
        let (k, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            &[
                &["req", "-subj", subject][..],
                &key[..],
                &["-keyout", &k, "-out", &csr][..],
            ]
            .concat(),
        );
        let mut sign = vec![
            "x509",
            "-req",
            "-days",
            "7",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
        ];
        if let Some(ext) = ext {
            sign.extend(["-extfile", ext]);
        }
        openssl(&sign);
    }
    // Kafka's PEM keystore: the private key (PKCS#8), then the certificate chain.
    let keystore = [
        std::fs::read_to_string(dir.join("broker.key")).expect("broker key"),
        std::fs::read_to_string(dir.join("broker.pem")).expect("broker cert"),
        std::fs::read_to_string(dir.join("ca.pem")).expect("ca"),
    ]
    .concat();
    std::fs::write(dir.join("broker-keystore.pem"), keystore).expect("keystore");
    Tls {
        ca: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);
/// Set when a test of this process panicked: cluster directories are then kept.
static FAILED: AtomicBool = AtomicBool::new(false);
/// JVMs alive now, killed by the exit handler.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Directories of clusters that live until the process exits.
static SHARED_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn remember_pid(pid: u32) {
    PIDS.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

fn forget_pid(pid: u32) {
    PIDS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: sends a signal to our own child, whose pid has not been reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Once per process: a panic hook that marks the run failed (so logs are kept) and an exit
/// handler that kills the nodes still alive and removes the shared clusters' directories.
fn watch_process() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            FAILED.store(true, Ordering::Relaxed);
            previous(info);
        }));
        // SAFETY: registers a plain `extern "C"` function with no arguments.
        unsafe {
            libc::atexit(at_exit);
        }
    });
}

extern "C" fn at_exit() {
    let pids = std::mem::take(&mut *PIDS.lock().unwrap_or_else(|e| e.into_inner()));
    for pid in pids {
        // SAFETY: kills and reaps a JVM this process started and has not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
    }
    let dirs = std::mem::take(&mut *SHARED_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for dir in dirs {
        if FAILED.load(Ordering::Relaxed) {
            eprintln!(
                "kafka: a test failed; broker logs kept in {}",
                dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from one thread that lives as long as the process, with
/// `PR_SET_PDEATHSIG = SIGKILL`: the kernel kills the child when that thread (and so the
/// process) ends, also when a test aborts or the test binary is killed.
fn spawn_tied(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("kafka-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    #[cfg(target_os = "linux")]
                    {
                        use std::os::unix::process::CommandExt;
                        // SAFETY: prctl is async-signal-safe; it runs in the forked child only.
                        unsafe {
                            command.pre_exec(|| {
                                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                                Ok(())
                            });
                        }
                    }
                    let _ = reply.send(command.spawn());
                }
                // The senders live in a static: this loop never ends while the process runs.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .map_err(|_| std::io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread gone"))?
}
