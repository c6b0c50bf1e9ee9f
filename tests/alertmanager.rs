//! The Alertmanager example (`alerts/alertmanager.example.yaml`) on the real Alertmanager of
//! Debian's `prometheus-alertmanager` package: `amtool` accepts it and routes each severity to
//! its receiver, and a running Alertmanager loaded with it suppresses exactly the alerts its
//! inhibition rules promise: consumer alerts of a cluster whose lagwatch or Kafka is down, and
//! nothing of another cluster.
//!
//! `prometheus-alertmanager`, `amtool` and `curl` must be on `PATH`: `.ci/setup` installs them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXAMPLE: &str = "alerts/alertmanager.example.yaml";
const SETUP: &str = "run .ci/setup, which installs Debian's prometheus-alertmanager and curl";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {SETUP}"))
}

fn stdout_of(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn amtool_accepts_the_example_and_routes_by_severity() {
    let check = run("amtool", &["check-config", EXAMPLE]);
    let text = stdout_of("amtool check-config", &check);
    assert!(text.contains("5 inhibit rules"), "{text}");
    let config = format!("--config.file={EXAMPLE}");
    // (labels, receiver, why)
    #[rustfmt::skip]
    let cases = [
        ("severity=critical", "pager", "1: critical pages"),
        ("severity=warning", "tickets", "2: warning makes a ticket"),
        ("severity=page", "default", "3: the old names reach neither: rename them (docs/migration.md)"),
    ];
    for (labels, receiver, why) in cases {
        let out = run(
            "amtool",
            &["config", "routes", "test", &config, "alertname=X", labels],
        );
        assert_eq!(
            stdout_of("amtool config routes test", &out).trim(),
            receiver,
            "{why}"
        );
    }
}

/// A running Alertmanager, stopped and its storage removed on drop.
struct Alertmanager {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Alertmanager {
    fn start(config: &Path) -> Alertmanager {
        let dir =
            std::env::temp_dir().join(format!("lagwatch-alertmanager-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("storage dir");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip: a single test instance.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus-alertmanager ({e}): {SETUP}"));
        let am = Alertmanager { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not listen on {port}: {}",
                std::fs::read_to_string(am.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn post_alerts(&self, alerts: &serde_json::Value) {
        let body = alerts.to_string();
        let out = run(
            "curl",
            &[
                "-fsS",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
                &self.url("/api/v2/alerts"),
            ],
        );
        stdout_of("POST /api/v2/alerts", &out);
    }

    /// (alertname, cluster, group) → (state, inhibited by how many alerts).
    fn states(&self) -> BTreeMap<(String, String, String), (String, usize)> {
        let out = run("curl", &["-fsS", &self.url("/api/v2/alerts")]);
        let alerts: serde_json::Value =
            serde_json::from_str(&stdout_of("GET /api/v2/alerts", &out)).expect("JSON");
        alerts
            .as_array()
            .expect("a list of alerts")
            .iter()
            .map(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
                let state = a["status"]["state"].as_str().unwrap_or("").to_owned();
                let inhibitors = a["status"]["inhibitedBy"].as_array().map_or(0, Vec::len);
                (
                    (label("alertname"), label("cluster"), label("group")),
                    (state, inhibitors),
                )
            })
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn inhibition_rules_suppress_what_they_promise_on_the_real_alertmanager() {
    let am = Alertmanager::start(&root().join(EXAMPLE));
    // (alertname, cluster, group, severity, expected state, why)
    #[rustfmt::skip]
    let cases = [
        ("LagwatchKafkaDown", "prod", "", "critical", "active", "1: the cause pages"),
        ("KafkaConsumerTimeLagHigh", "prod", "orders", "warning", "suppressed", "2: Kafka down on prod: a symptom"),
        ("KafkaConsumerStopped", "prod", "billing", "critical", "suppressed", "3: even a consumer page"),
        ("LagwatchPollErrors", "prod", "", "warning", "suppressed", "4: poll errors of a cluster lagwatch cannot read"),
        ("KafkaConsumerStopped", "dr", "billing", "critical", "active", "5: same group on a healthy cluster still pages"),
        ("LagwatchTargetDown", "edge", "", "critical", "active", "6: a dead lagwatch pages"),
        ("LagwatchClusterAbsent", "edge", "", "critical", "suppressed", "7: its cluster being unreported follows from it"),
        ("KafkaConsumerMessagesEvicted", "edge", "clicks", "critical", "suppressed", "8: consumer alerts of its cluster, resolving as series vanish"),
        ("LagwatchClusterAbsent", "retired", "", "critical", "active", "9: gone from service discovery: the absence itself pages"),
        ("KafkaConsumerRewind", "retired", "audit", "warning", "suppressed", "10: inhibited by the absence"),
        ("LagwatchDataStale", "stuck", "", "critical", "active", "11: a stuck poll loop pages"),
        ("KafkaConsumerStalled", "stuck", "etl", "warning", "suppressed", "12: its consumer alerts are stale figures"),
        ("KafkaConsumerMessagesEvicted", "dr", "late", "critical", "active", "13: data lost"),
        ("KafkaConsumerEvictionImminent", "dr", "late", "critical", "suppressed", "14: already lost: imminent adds nothing"),
        ("KafkaConsumerEvictionImminent", "dr", "soon", "critical", "active", "15: another group: not inhibited"),
        ("KafkaConsumerTimeLagHigh", "dr", "billing", "warning", "suppressed", "16: stopped group: over SLO follows"),
        ("KafkaConsumerInactiveMessagesEvicted", "dr", "old", "warning", "active", "17: nothing inhibits the inactive warning on a healthy cluster"),
    ];
    let alerts: Vec<serde_json::Value> = cases
        .iter()
        .map(|(name, cluster, group, severity, _, _)| {
            let mut labels = serde_json::json!({
                "alertname": name,
                "cluster": cluster,
                "severity": severity,
            });
            if !group.is_empty() {
                labels["group"] = serde_json::json!(group);
            }
            serde_json::json!({ "labels": labels })
        })
        .collect();
    am.post_alerts(&serde_json::Value::Array(alerts));

    let want: BTreeMap<(String, String, String), String> = cases
        .iter()
        .map(|(name, cluster, group, _, state, _)| {
            (
                (name.to_string(), cluster.to_string(), group.to_string()),
                state.to_string(),
            )
        })
        .collect();
    // The inhibitor learns of new source alerts asynchronously: wait until the states settle.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = am.states();
        let settled: BTreeMap<_, _> = got
            .iter()
            .map(|(k, (s, _))| (k.clone(), s.clone()))
            .collect();
        if settled == want || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (name, cluster, group, _, state, why) in cases {
        let key = (name.to_string(), cluster.to_string(), group.to_string());
        let (got_state, inhibitors) = got
            .get(&key)
            .unwrap_or_else(|| panic!("{why}: {key:?} not in Alertmanager: {got:?}"));
        assert_eq!(got_state, state, "{why}");
        assert_eq!(*inhibitors > 0, state == "suppressed", "{why}: inhibitedBy");
    }
    assert_eq!(got.len(), cases.len(), "{got:?}");
}
