//! End to end: lagwatch against two Tansu brokers (memory: group state; sqlite: retention) with
//! scripted scenarios, a real Prometheus scraping it with the shipped alert rules loaded
//! (hold-downs shortened by `alerts/with-short-holddowns.sh`), and a real Alertmanager receiving.
//! Checks that each alert fires in its scenario and that every dashboard query returns data.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{free_port, http_get, unique, Broker, Engine, LagwatchProcess};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Process {
    let log = std::fs::File::create(log).expect("log file");
    let child = cmd
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e} (run .ci/setup)"));
    Process(child)
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = http_get(([127, 0, 0, 1], port).into(), path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Firing alerts in Alertmanager, as (alertname, cluster, group).
fn alertmanager_alerts(port: u16) -> BTreeSet<(String, String, String)> {
    let alerts = get_json(port, "/api/v2/alerts?active=true");
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
            (label("alertname"), label("cluster"), label("group"))
        })
        .collect()
}

fn wait_for_alert(
    port: u16,
    name: &str,
    cluster: &str,
    group: &str,
    timeout: Duration,
) -> BTreeSet<(String, String, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let firing = alertmanager_alerts(port);
        if firing.contains(&(name.to_string(), cluster.to_string(), group.to_string())) {
            eprintln!("Alertmanager received {name}{{cluster={cluster:?}, group={group:?}}}");
            return firing;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{{cluster={cluster:?}, group={group:?}}} not in Alertmanager after {timeout:?}; firing: {firing:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Every panel query of every dashboard: (dashboard file, panel title, expr).
fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let dir = PathBuf::from(ROOT).join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("dashboard");
        let json: serde_json::Value = serde_json::from_str(&text).expect("dashboard json");
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        collect_panels(&json["panels"], &name, &mut out);
    }
    out
}

fn collect_panels(panels: &serde_json::Value, file: &str, out: &mut Vec<(String, String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        collect_panels(&panel["panels"], file, out);
        let title = panel["title"].as_str().unwrap_or("").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                if !expr.trim().is_empty() {
                    out.push((file.to_string(), title.clone(), expr.to_string()));
                }
            }
        }
    }
}

/// Grafana's variables as a user with "All" selected would have them.
fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (from, to) in [
        ("$__rate_interval", "1m"),
        ("${__rate_interval}", "1m"),
        ("$__interval", "15s"),
        ("${__interval}", "15s"),
        ("$__range", "5m"),
        ("${__range}", "5m"),
    ] {
        e = e.replace(from, to);
    }
    for var in ["cluster", "group", "topic", "partition"] {
        for form in [
            format!("${{{var}:regex}}"),
            format!("${{{var}:pipe}}"),
            format!("${{{var}}}"),
            format!("${var}"),
        ] {
            e = e.replace(&form, ".*");
        }
    }
    e
}

#[test]
fn alerts_fire_in_alertmanager_and_dashboards_have_data() {
    let work = std::env::temp_dir().join(unique("lagwatch-e2e"));
    std::fs::create_dir_all(&work).expect("work dir");
    let memory = Broker::start(Engine::Memory);
    let mut sqlite = Broker::start(Engine::Sqlite);

    // The demo workload keeps healthy, lagging, stalled and rewinding groups busy, so every
    // dashboard panel has something to show.
    let workload = PathBuf::from(ROOT).join("target/debug/examples/workload");
    let workload = if workload.exists() {
        workload
    } else {
        std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.parent()?.join("examples/workload")))
            .filter(|p| p.exists())
            .expect(
                "the workload example is missing: run `cargo build --examples` (as .ci/test does)",
            )
    };
    let _workload = spawn(
        "workload",
        Command::new(workload).args([
            "--memory",
            &memory.bootstrap(),
            "--sqlite",
            &sqlite.bootstrap(),
        ]),
        &work.join("workload.log"),
    );

    // Scenario: eviction imminent. retention.ms = 1 h; the group's next record is 50 minutes old.
    let retained = unique("e2e-retained");
    let evicting = unique("e2e-evicting");
    memory.create_topic(
        &retained,
        1,
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    );
    memory.produce(&retained, 0, 10, Some(now_ms() - 50 * 60_000));
    memory.produce(&retained, 0, 5, None);
    memory.commit(&evicting, &[(&retained, 0, 2)]);

    // Scenario: messages evicted. The sqlite engine's retention deletes records older than 10
    // minutes that the group never read.
    let expiring = unique("e2e-expiring");
    let late = unique("e2e-late");
    sqlite.create_topic(
        &expiring,
        1,
        &[("retention.ms", "600000"), ("cleanup.policy", "delete")],
    );
    sqlite.produce(&expiring, 0, 10, Some(now_ms() - 3_600_000));
    sqlite.produce(&expiring, 0, 10, None);
    sqlite.commit(&late, &[(&expiring, 0, 3)]);

    // Scenario: stalled, then stopped. A live member committed once, behind, and never again.
    let stuck = unique("e2e-stuck");
    let poison = unique("e2e-poison");
    memory.create_topic(&stuck, 1, &[]);
    memory.produce(&stuck, 0, 10, None);
    let member = memory.member(&poison, &stuck, Some(2));

    // Scenario: rewind. A commit that moves backwards by 10.
    let replayed = unique("e2e-replayed");
    let replayer = unique("e2e-replayer");
    memory.create_topic(&replayed, 1, &[]);
    memory.produce(&replayed, 0, 40, None);
    memory.commit(&replayer, &[(&replayed, 0, 30)]);

    let lagwatch = LagwatchProcess::start(&format!(
        r#"
poll_interval: 2s
granularity: partition
status: {{ window: 3, stop_after: 20s }}
clusters:
  - name: memory
    bootstrap_servers: "{}"
  - name: sqlite
    bootstrap_servers: "{}"
"#,
        memory.bootstrap(),
        sqlite.bootstrap()
    ));

    // Alertmanager, then Prometheus with the shipped rules, hold-downs shortened to 2s.
    let am_port = free_port();
    std::fs::write(
        work.join("alertmanager.yml"),
        "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: blackhole\n",
    )
    .expect("alertmanager config");
    let _alertmanager = spawn(
        "alertmanager",
        Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                work.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", work.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
        &work.join("alertmanager.log"),
    );
    let rules = work.join("rules.yaml");
    let shorten = Command::new("sh")
        .arg(PathBuf::from(ROOT).join("alerts/with-short-holddowns.sh"))
        .arg(PathBuf::from(ROOT).join("alerts/lagwatch-rules.yaml"))
        .arg(&rules)
        .arg("2s")
        .status()
        .expect("shorten hold-downs");
    assert!(shorten.success());
    let prom_port = free_port();
    std::fs::write(
        work.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files: [\"{}\"]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{am_port}\"]\nscrape_configs:\n  - job_name: lagwatch\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            rules.display(),
            lagwatch.port
        ),
    )
    .expect("prometheus config");
    let _prometheus = spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                work.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        &work.join("prometheus.log"),
    );
    wait_listening(am_port, "alertmanager");
    wait_listening(prom_port, "prometheus");

    // The rewind happens once lagwatch has seen the first commit.
    lagwatch.wait_for(
        Duration::from_secs(60),
        "the replayer's first commit",
        |m| {
            m.value(
                "kafka_consumergroup_partition_committed_offset",
                &[("group", replayer.as_str())],
            ) == Some(30.0)
        },
    );
    // Prometheus must hold the counter at 0 before it moves: increase() ignores a series' first sample.
    let query = percent_encode(&format!(
        "kafka_consumergroup_rewinds_total{{group=\"{replayer}\"}}"
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json(prom_port, &format!("/api/v1/query?query={query}"))["data"]["result"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the rewind counter"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    memory.commit(&replayer, &[(&replayed, 0, 20)]);

    let timeout = Duration::from_secs(150);
    wait_for_alert(
        am_port,
        "KafkaConsumerEvictionImminent",
        "memory",
        &evicting,
        timeout,
    );
    wait_for_alert(
        am_port,
        "KafkaConsumerTimeLagHigh",
        "memory",
        &evicting,
        timeout,
    );
    wait_for_alert(
        am_port,
        "KafkaConsumerMessagesEvicted",
        "sqlite",
        &late,
        timeout,
    );
    wait_for_alert(am_port, "KafkaConsumerRewind", "memory", &replayer, timeout);
    wait_for_alert(am_port, "KafkaConsumerStalled", "memory", &poison, timeout);
    wait_for_alert(am_port, "KafkaConsumerStopped", "memory", &poison, timeout);

    // Every dashboard query returns data from Prometheus.
    let queries = dashboard_queries();
    assert!(!queries.is_empty(), "dashboards have queries");
    let mut empty = Vec::new();
    for (file, title, expr) in &queries {
        let q = substitute(expr);
        let answer = get_json(
            prom_port,
            &format!("/api/v1/query?query={}", percent_encode(&q)),
        );
        assert_eq!(
            answer["status"], "success",
            "{file} / {title}: {q}: {answer}"
        );
        let results = answer["data"]["result"].as_array().map_or(0, Vec::len);
        if results == 0 {
            empty.push(format!("{file} / {title}: {q}"));
        }
    }
    eprintln!(
        "dashboard queries with data: {} of {}",
        queries.len() - empty.len(),
        queries.len()
    );
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );

    // Exporter down: the sqlite broker dies; lagwatch keeps serving and reports it.
    sqlite.kill();
    wait_for_alert(am_port, "LagwatchKafkaDown", "sqlite", "", timeout);
    let firing = alertmanager_alerts(am_port);
    assert!(
        !firing
            .iter()
            .any(|(name, cluster, _)| name == "LagwatchKafkaDown" && cluster == "memory"),
        "only the dead cluster is down: {firing:?}"
    );

    drop(member);
    drop(memory);
}
