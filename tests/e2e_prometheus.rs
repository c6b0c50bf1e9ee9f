//! End to end: lagwatch against two Apache Kafka clusters — `main`, running the demo workload and
//! scripted scenarios, and `second`, which dies at the end — a real Prometheus scraping it with
//! the shipped alert rules loaded (hold-downs shortened by `alerts/with-short-holddowns.sh`), and
//! a real Alertmanager receiving. Checks that each alert fires in its scenario and that every
//! dashboard query returns data.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, http_get, unique, ClusterSpec, KafkaCluster, LagwatchProcess};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The test's directory (configurations, logs, Prometheus and Alertmanager data): removed when
/// the test passes, kept for its logs when it fails.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

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

/// The workload example's binary, which `cargo build --examples` builds (as `.ci/test` does).
fn workload_binary() -> PathBuf {
    let built = PathBuf::from(ROOT).join("target/debug/examples/workload");
    let path = if built.exists() {
        built
    } else {
        std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.parent()?.join("examples/workload")))
            .filter(|p| p.exists())
            .expect(
                "the workload example is missing: run `cargo build --examples` (as .ci/test does)",
            )
    };
    // A binary older than its source would run an outdated workload (other groups, other flags).
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let source = PathBuf::from(ROOT).join("examples/workload.rs");
    assert!(
        modified(&path) >= modified(&source),
        "{} is older than {}: run `cargo build --examples`",
        path.display(),
        source.display()
    );
    path
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
fn alertmanager_alerts(port: u16) -> BTreeSet<Alert> {
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

type Alert = (String, String, String);

/// Every alert Alertmanager has held since the recorder started, with when it was first seen,
/// polled each second on a thread of its own: a transient alert (`KafkaConsumerStalled` resolves
/// when the stall escalates to `stop` after `stop_after`) is seen even while the test waits for
/// something else.
struct AlertRecorder {
    seen: Arc<Mutex<BTreeMap<Alert, Duration>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AlertRecorder {
    fn start(port: u16) -> AlertRecorder {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            let started = Instant::now();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let firing = alertmanager_alerts(port);
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for alert in firing {
                        seen.entry(alert).or_insert_with(|| started.elapsed());
                    }
                    drop(seen);
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        AlertRecorder {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> BTreeMap<Alert, Duration> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until Alertmanager has held `name` for (`cluster`, `group`).
    fn wait_for(&self, name: &str, cluster: &str, group: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let alert = (name.to_string(), cluster.to_string(), group.to_string());
        loop {
            let seen = self.seen();
            if let Some(when) = seen.get(&alert) {
                eprintln!(
                    "Alertmanager received {name}{{cluster={cluster:?}, group={group:?}}} {when:.0?} after Prometheus started"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{{cluster={cluster:?}, group={group:?}}} not in Alertmanager after {timeout:?}; seen: {:?}",
                seen.keys().collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for AlertRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
    // group_type first: `$group` is a prefix of `$group_type`. A single-value variable is
    // matched exactly (`group="$group"`): "All" there is every value, hence `=~".*"`.
    for var in ["group_type", "cluster", "group", "topic", "partition"] {
        e = e.replace(&format!("=\"${var}\""), "=~\".*\"");
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
    let work_dir = WorkDir(std::env::temp_dir().join(unique("lagwatch-e2e")));
    let work = work_dir.0.clone();
    std::fs::create_dir_all(&work).expect("work dir");
    let workload = workload_binary();
    // Both clusters start at once: on two cores that takes little longer than starting one.
    let (main, mut second) = std::thread::scope(|s| {
        let main = s.spawn(|| KafkaCluster::start(ClusterSpec::default()));
        let second = s.spawn(|| KafkaCluster::start(ClusterSpec::default()));
        (
            main.join().expect("main cluster"),
            second.join().expect("second cluster"),
        )
    });

    // The demo workload keeps healthy, lagging, stalled, rewinding and evicting groups busy, so
    // every dashboard panel has something to show.
    let _workload = spawn(
        "workload",
        Command::new(workload).args(["--bootstrap", &main.bootstrap()]),
        &work.join("workload.log"),
    );

    // Scenario: eviction imminent. retention.ms = 1 h; the group's next record is 50 minutes old.
    // Its newer records share the segment, so retention deletes nothing.
    let retained = unique("e2e-retained");
    let evicting = unique("e2e-evicting");
    main.create_topic(
        &retained,
        1,
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    );
    main.produce(&retained, 0, 10, Some(common::now_ms() - 50 * 60_000));
    main.produce(&retained, 0, 5, None);
    main.commit(&evicting, &[(&retained, 0, 2)]);

    // Scenario: messages evicted, by the broker's retention. retention.ms = 10 minutes; 10
    // records stamped an hour ago, then 10 stamped now. The broker deletes whole segments whose
    // newest record is past retention, so the old records must not share a segment with the new
    // ones: segment.ms sees to that (a record more than segment.ms younger than its segment's
    // first rolls a new one). Retention then deletes the old segment, the low watermark moves to
    // 10, past the group's commit at 3, and the group has lost 7 records.
    let expiring = unique("e2e-expiring");
    let late = unique("e2e-late");
    main.create_topic(
        &expiring,
        1,
        &[
            ("retention.ms", "600000"),
            ("segment.ms", "60000"),
            ("cleanup.policy", "delete"),
        ],
    );
    main.produce(&expiring, 0, 10, Some(common::now_ms() - 3_600_000));
    main.produce(&expiring, 0, 10, None);
    main.commit(&late, &[(&expiring, 0, 3)]);

    // Scenario: stalled, then stopped. A live member committed once, behind, and never again.
    // Its records are 10 minutes old, past the default status.min_time_lag (60 s).
    let stuck = unique("e2e-stuck");
    let poison = unique("e2e-poison");
    main.create_topic(&stuck, 1, &[]);
    main.produce(&stuck, 0, 10, Some(common::now_ms() - 10 * 60_000));
    let member = main.member(&poison, &stuck, Some(2));

    // Scenario: rewind. A commit that moves backwards by 10.
    let replayed = unique("e2e-replayed");
    let replayer = unique("e2e-replayer");
    main.create_topic(&replayed, 1, &[]);
    main.produce(&replayed, 0, 40, None);
    main.commit(&replayer, &[(&replayed, 0, 30)]);

    let lagwatch = LagwatchProcess::start(&format!(
        r#"
poll_interval: 2s
granularity: partition
status: {{ window: 3, stop_after: 20s }}
clusters:
  - name: main
    bootstrap_servers: "{}"
  - name: second
    bootstrap_servers: "{}"
"#,
        main.bootstrap(),
        second.bootstrap()
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
    let alerts = AlertRecorder::start(am_port);

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
    main.commit(&replayer, &[(&replayed, 0, 20)]);

    let timeout = Duration::from_secs(150);
    alerts.wait_for("KafkaConsumerEvictionImminent", "main", &evicting, timeout);
    alerts.wait_for("KafkaConsumerTimeLagHigh", "main", &evicting, timeout);
    // Retention deleted the first segment: the low watermark is 10 and the group lost the 7
    // records between its commit and it. (A broker's first retention check runs
    // log.initial.task.delay.ms, 30 s, after it starts.)
    lagwatch.wait_for(
        Duration::from_secs(60),
        "retention to delete the expiring topic's first segment",
        |m| {
            m.value(
                "kafka_partition_earliest_offset",
                &[("cluster", "main"), ("topic", expiring.as_str())],
            ) == Some(10.0)
                && m.value(
                    "kafka_consumergroup_evicted_messages",
                    &[("cluster", "main"), ("group", late.as_str())],
                ) == Some(7.0)
        },
    );
    alerts.wait_for("KafkaConsumerMessagesEvicted", "main", &late, timeout);
    alerts.wait_for("KafkaConsumerRewind", "main", &replayer, timeout);
    alerts.wait_for("KafkaConsumerStalled", "main", &poison, timeout);
    alerts.wait_for("KafkaConsumerStopped", "main", &poison, timeout);

    // The workload's healthy group, consuming records as they come, is `ok` on the `/` page at
    // every look.
    for _ in 0..5 {
        let (code, page) = common::http_get(([127, 0, 0, 1], lagwatch.port).into(), "/");
        assert_eq!(code, 200);
        assert!(
            page.contains("<td>demo-healthy</td><td class=\"ok\">ok</td>"),
            "demo-healthy is not ok on the / page:\n{page}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }

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

    // Exporter down: the second cluster's only node dies; lagwatch keeps serving and reports it.
    let up = lagwatch.metrics();
    for cluster in ["main", "second"] {
        assert_eq!(
            up.value("lagwatch_kafka_up", &[("cluster", cluster)]),
            Some(1.0),
            "{cluster} is up before the second cluster dies"
        );
    }
    second.kill(1);
    alerts.wait_for("LagwatchKafkaDown", "second", "", timeout);
    let seen = alerts.seen();
    assert!(
        !seen
            .keys()
            .any(|(name, cluster, _)| name == "LagwatchKafkaDown" && cluster == "main"),
        "only the dead cluster is down: {seen:?}"
    );

    // lagwatch itself dies. Prometheus keeps its target (up 0): every cluster it reported pages
    // by name, the dead exporter and the absent cluster.
    drop(lagwatch);
    for cluster in ["main", "second"] {
        alerts.wait_for("LagwatchTargetDown", cluster, "", timeout);
        alerts.wait_for("LagwatchClusterAbsent", cluster, "", timeout);
    }

    drop(member);
    drop(main);
}
