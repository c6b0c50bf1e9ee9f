//! The dashboards' figures against a real Prometheus fed by real lagwatch processes polling a
//! real Apache Kafka cluster, where every expected value is known from what the test wrote to
//! Kafka: lag exactly, time lag and time to eviction from the records' CreateTimes, ratios
//! from the topics' retention.
//!
//! One Kafka cluster, read by six lagwatch processes under four cluster names (the `cluster`
//! label), all scraped by one Prometheus: `gran-group`, `gran-topic` and `gran-partition` (one
//! process each, at that `granularity`), and `replicated`: three processes with one
//! configuration (granularity partition), as three sidecars or replicas scraping one cluster
//! would be. Every panel query of the three dashboards is evaluated at one instant, with
//! Grafana's variable interpolation (single values as they are, multi-value and "All" values
//! regex-escaped, custom "All" values), for each cluster name, and checked against the truth:
//! per-partition panels have data only at granularity partition, per-topic panels fall back
//! to the group figure at granularity group, and with three replicas every figure is the one
//! replica's figure, never three times it. The groups' names carry regex characters, and a
//! decoy group whose name the unescaped name would match as a regex must never be counted.
//! The three replicas are scraped with `group_type="classic"` added to the group-level
//! families (as lagwatch adds it where it knows the group type), the others without it: the
//! `group_type` variable must select with the label and must not break without it.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{free_port, http_get, now_ms, unique, ClusterSpec, KafkaCluster, LagwatchProcess};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Record timestamps: an hour before the test.
const AGE_S: i64 = 3600;
const ORDERS_RETENTION_S: f64 = 86_400.0;
const PAYMENTS_RETENTION_S: f64 = 7_200.0;

/// Prometheus, killed on drop; its data directory removed unless the test failed.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("Prometheus data and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Group-level families: those that carry `group_type` where lagwatch reports the group type.
const GROUP_LEVEL: &str = "kafka_consumergroup_(state|status|members|uncommitted_partitions|lag_messages|lag_seconds|eviction_seconds|retention_usage_ratio|evicted_messages|commit_stall_seconds)";

/// Prometheus scraping `plain` as they are and `typed` with `group_type="classic"` added to
/// the group-level families at scrape time, so the dashboards meet series with and without
/// the label.
fn start_prometheus(plain: &[u16], typed: &[u16]) -> Prometheus {
    let dir = std::env::temp_dir().join(unique("lagwatch-dash-prom"));
    std::fs::create_dir_all(&dir).expect("dir");
    let list = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 2s\nscrape_configs:\n  - job_name: lagwatch\n    static_configs:\n      - targets: [{}]\n  - job_name: lagwatch-typed\n    static_configs:\n      - targets: [{}]\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: \"{GROUP_LEVEL}\"\n        target_label: group_type\n        replacement: classic\n",
            list(plain),
            list(typed)
        ),
    )
    .expect("prometheus.yml");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("start prometheus: {e} (run .ci/setup)"));
    let prometheus = Prometheus { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "prometheus did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    prometheus
}

/// Form-encodes a query parameter.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One query result: label set (sorted `k=v` joined by `,`) → value.
type Results = BTreeMap<String, f64>;

impl Prometheus {
    fn query(&self, expr: &str, at: f64) -> (Results, Vec<Value>) {
        let path = format!("/api/v1/query?query={}&time={at:.3}", form_encode(expr));
        let (status, body) = http_get(([127, 0, 0, 1], self.port).into(), &path);
        assert_eq!(status, 200, "{expr}: {body}");
        let json: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(json["status"], "success", "{expr}: {body}");
        assert_eq!(json["data"]["resultType"], "vector", "{expr}: {body}");
        let raw = json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut out = Results::new();
        for r in &raw {
            let key = r["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let value: f64 = r["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            assert!(
                out.insert(key.clone(), value).is_none(),
                "{expr}: {key} twice"
            );
        }
        (out, raw)
    }
}

/// A template variable's value, as a Grafana user picks it.
#[derive(Clone, Debug)]
enum Pick {
    All,
    Values(Vec<String>),
}

fn one(v: &str) -> Pick {
    Pick::Values(vec![v.to_owned()])
}

/// Grafana's Prometheus data source: multi-value and "All"-able variables are regex-escaped
/// (prometheusSpecialRegexEscape: a backslash before each regex character, written doubled so
/// the PromQL string keeps one), several values joined as `(a|b)`; a custom "All" value is used
/// as it is; single-value variables only get `\` and `'` escaped.
fn interpolate(expr: &str, dashboard: &Value, picks: &BTreeMap<&str, Pick>) -> String {
    let mut vars: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .collect();
    // Longest names first: `$group` is a prefix of `$group_type`.
    vars.sort_by_key(|v| std::cmp::Reverse(v["name"].as_str().unwrap_or("").len()));
    let mut e = expr
        .replace("${__rate_interval}", "1m")
        .replace("$__rate_interval", "1m");
    for v in vars {
        let name = v["name"].as_str().unwrap_or("");
        if name == "datasource" {
            continue;
        }
        let many = v["multi"] == true || v["includeAll"] == true;
        let pick = picks.get(name).cloned().unwrap_or(Pick::All);
        let text = match pick {
            Pick::All => {
                assert!(many, "variable {name} has no All option");
                v["allValue"].as_str().expect("allValue").to_owned()
            }
            Pick::Values(values) if many => {
                let escaped: Vec<String> = values
                    .iter()
                    .map(|value| {
                        let mut s = String::new();
                        for c in value.chars() {
                            if c == '\\' {
                                s.push_str("\\\\\\\\");
                            } else if "$^*{}[]'+?.()|".contains(c) {
                                s.push_str("\\\\");
                                s.push(c);
                            } else {
                                s.push(c);
                            }
                        }
                        s
                    })
                    .collect();
                if escaped.len() == 1 {
                    escaped[0].clone()
                } else {
                    format!("({})", escaped.join("|"))
                }
            }
            Pick::Values(values) => values[0].replace('\\', "\\\\").replace('\'', "\\\\'"),
        };
        e = e
            .replace(&format!("${{{name}}}"), &text)
            .replace(&format!("${name}"), &text);
    }
    assert!(!e.contains('$'), "uninterpolated variable in {e}");
    e
}

/// What a query must return: each label set (a subset of the result's labels, `k=v` joined by
/// `,`) with its value and tolerance; the result must have exactly these series.
#[derive(Clone, Debug)]
struct Expect(Vec<(String, f64, f64)>);

impl Expect {
    fn none() -> Expect {
        Expect(Vec::new())
    }
    fn exact<K: AsRef<str>>(rows: &[(K, f64)]) -> Expect {
        Expect::close(rows, 0.0)
    }
    fn close<K: AsRef<str>>(rows: &[(K, f64)], tolerance: f64) -> Expect {
        Expect(
            rows.iter()
                .map(|(k, v)| (k.as_ref().to_owned(), *v, tolerance))
                .collect(),
        )
    }
}

fn check(what: &str, expr: &str, got: &Results, expect: &Expect) {
    let matches = |key: &str, want: &str| {
        want.split(',')
            .filter(|p| !p.is_empty())
            .all(|pair| key.split(',').any(|k| k == pair))
    };
    assert_eq!(
        got.len(),
        expect.0.len(),
        "{what}: expected {:?}, got {got:?}\n{expr}",
        expect.0
    );
    for (want, value, tolerance) in &expect.0 {
        let found: Vec<(&String, &f64)> = got.iter().filter(|(k, _)| matches(k, want)).collect();
        assert_eq!(found.len(), 1, "{what}: {want} in {got:?}\n{expr}");
        let v = *found[0].1;
        assert!(
            (v - value).abs() <= *tolerance,
            "{what}: {want} = {v}, expected {value} ± {tolerance}\n{expr}"
        );
    }
}

fn dashboard(file: &str) -> Value {
    let path = PathBuf::from(ROOT).join("dashboards").join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON")
}

/// (panel title, refId, expr) of every target, rows included.
fn targets(dash: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dash["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((
                    p["title"].as_str().unwrap_or("").to_owned(),
                    t["refId"].as_str().unwrap_or("").to_owned(),
                    expr.to_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn dashboard_panels_show_the_truth_at_every_granularity_and_with_three_replicas() {
    let kafka = KafkaCluster::start(ClusterSpec::default());
    let orders = unique("orders");
    let payments = unique("payments");
    // Group ids with regex characters, and a decoy the unescaped id matches as a regex.
    let billing = format!("{}.v2+(eu)", unique("billing"));
    let decoy = billing.replace(".v2+(eu)", "xv22eu");
    let rewinder = unique("rewinder");
    kafka.create_topic(
        &orders,
        3,
        &[("retention.ms", "86400000"), ("cleanup.policy", "delete")],
    );
    kafka.create_topic(
        &payments,
        1,
        &[("retention.ms", "7200000"), ("cleanup.policy", "delete")],
    );
    let written_ms = now_ms() - AGE_S * 1000;
    for (partition, count) in [(0, 10), (1, 20), (2, 30)] {
        kafka.produce(&orders, partition, count, Some(written_ms));
    }
    kafka.produce(&payments, 0, 50, Some(written_ms));
    kafka.commit(
        &billing,
        &[
            (&orders, 0, 5),
            (&orders, 1, 20),
            (&orders, 2, 0),
            (&payments, 0, 40),
        ],
    );
    kafka.commit(&decoy, &[(&orders, 0, 0), (&orders, 1, 0), (&orders, 2, 0)]);
    kafka.commit(&rewinder, &[(&payments, 0, 30)]);

    let scenarios: [(&str, &str, usize); 4] = [
        ("gran-group", "group", 1),
        ("gran-topic", "topic", 1),
        ("gran-partition", "partition", 1),
        ("replicated", "partition", 3),
    ];
    let mut processes: Vec<(&str, LagwatchProcess)> = Vec::new();
    for (name, granularity, replicas) in scenarios {
        for _ in 0..replicas {
            let config = format!(
                "poll_interval: 2s\ngranularity: {granularity}\nstatus: {{ window: 3 }}\nclusters:\n  - name: {name}\n    bootstrap_servers: \"{}\"\n    topics: {{ include: [\"^({orders}|{payments})$\"] }}\n",
                kafka.bootstrap()
            );
            processes.push((name, LagwatchProcess::start(&config)));
        }
    }
    let ports = |typed: bool| -> Vec<u16> {
        processes
            .iter()
            .filter(|(name, _)| (*name == "replicated") == typed)
            .map(|(_, p)| p.port)
            .collect()
    };
    let prometheus = start_prometheus(&ports(false), &ports(true));

    // Every process sees the commits; Prometheus holds the rewind counter at 0 for a while
    // (increase() needs a sample before the rewind), then the rewinder commits backwards.
    let known = |m: &common::Exposition| {
        m.value(
            "kafka_consumergroup_lag_messages",
            &[("group", billing.as_str())],
        ) == Some(45.0)
            && m.value(
                "kafka_consumergroup_lag_messages",
                &[("group", rewinder.as_str())],
            ) == Some(20.0)
            && m.value(
                "kafka_consumergroup_lag_seconds",
                &[("group", billing.as_str())],
            )
            .is_some()
    };
    for (name, p) in &processes {
        p.wait_for(
            Duration::from_secs(90),
            &format!("{name}: the commits"),
            known,
        );
    }
    let rewinds = format!("kafka_consumergroup_rewinds_total{{group=\"{rewinder}\"}}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while prometheus
        .query(
            &format!("count_over_time({rewinds}[1m])"),
            now_ms() as f64 / 1000.0,
        )
        .0
        .values()
        .filter(|n| **n >= 3.0)
        .count()
        < processes.len()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped every lagwatch three times"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    kafka.commit(&rewinder, &[(&payments, 0, 20)]);
    for (name, p) in &processes {
        p.wait_for(
            Duration::from_secs(60),
            &format!("{name}: the rewind"),
            |m| {
                m.value(
                    "kafka_consumergroup_rewinds_total",
                    &[("group", rewinder.as_str())],
                ) == Some(1.0)
            },
        );
    }
    // Long enough for every status window (3 polls) to be full again after the rewind, and
    // for Prometheus to scrape it; the rewind stays inside the 1m range of increase().
    std::thread::sleep(Duration::from_secs(16));
    let at = now_ms() as f64 / 1000.0 - 1.0;
    let age = at - written_ms as f64 / 1000.0;
    let started = at - 120.0; // a generous bound on how long the stall can have been counted
    eprintln!("evaluating every dashboard query at {at:.0}, the records being {age:.0} s old");

    let time_lag = age;
    let eviction_payments = PAYMENTS_RETENTION_S - age;
    let eviction_orders = ORDERS_RETENTION_S - age;
    let tl = 8.0; // seconds: poll interval + scrape interval + the poll's own time, twice
    let o = |p: &str| format!("partition={p},topic={orders}");
    let pay = format!("partition=0,topic={payments}");
    let (to, tp) = (format!("topic={orders}"), format!("topic={payments}"));
    let all = "topic=all topics".to_string();

    let group_dash = dashboard("lagwatch-group.json");
    let overview = dashboard("lagwatch-overview.json");
    let exporter = dashboard("lagwatch-exporter.json");
    let mut checked = 0;
    let mut answers: BTreeMap<(String, String, String, String), Results> = BTreeMap::new();
    for (cluster, granularity, replicas) in scenarios {
        let partition = granularity == "partition";
        let topic_level = granularity != "group";
        let what = |dash: &str, title: &str, r: &str, extra: &str| {
            format!("{cluster} (granularity {granularity}, {replicas} replica(s)) / {dash} / {title} {r}{extra}")
        };

        // ---- the group dashboard, for the group with regex characters ----
        let picks: BTreeMap<&str, Pick> =
            BTreeMap::from([("cluster", one(cluster)), ("group", one(&billing))]);
        for (title, r, expr) in targets(&group_dash) {
            let q = interpolate(&expr, &group_dash, &picks);
            let (got, raw) = prometheus.query(&q, at);
            for series in &raw {
                assert!(
                    series["metric"]["instance"].is_null() && series["metric"]["job"].is_null(),
                    "{}: per-replica series {series}",
                    what("group", &title, &r, "")
                );
            }
            let per_topic = |orders_v: f64, payments_v: f64, group_v: f64, tol: f64| {
                if topic_level {
                    Expect::close(&[(&to, orders_v), (&tp, payments_v)], tol)
                } else {
                    Expect::close(&[(&all, group_v)], tol)
                }
            };
            let partitions = |rows: &[(String, f64)], tol: f64| {
                if partition {
                    Expect(rows.iter().map(|(k, v)| (k.clone(), *v, tol)).collect())
                } else {
                    Expect::none()
                }
            };
            let expect = match (title.as_str(), r.as_str()) {
                ("Status" | "Status history", _) => Expect::exact(&[("status=stop", 1.0)]),
                ("State" | "State history", _) => Expect::exact(&[("state=empty", 1.0)]),
                ("Members", _) => Expect::exact(&[("", 0.0)]),
                ("Lag", _) => Expect::exact(&[("", 45.0)]),
                ("Time lag", _) => Expect::close(&[("", time_lag)], tl),
                ("Time to eviction", _) => Expect::close(&[("", eviction_payments)], tl),
                ("Evicted messages" | "Uncommitted partitions", _) => Expect::exact(&[("", 0.0)]),
                ("Lag per topic", _) => per_topic(35.0, 10.0, 45.0, 0.0),
                ("Time lag per topic", _) => per_topic(time_lag, time_lag, time_lag, tl),
                ("Commit stall per topic", _) => {
                    let s = (at - started) / 2.0;
                    per_topic(s, s, s, (at - started) / 2.0)
                }
                ("Partition skew per topic", _) if topic_level => {
                    Expect::close(&[(&to, time_lag), (&tp, 0.0)], tl)
                }
                ("Partition skew per topic", _) => Expect::none(),
                ("Time to eviction per topic", _) => {
                    per_topic(eviction_orders, eviction_payments, eviction_payments, tl)
                }
                ("Retention used per topic", _) => per_topic(
                    time_lag / ORDERS_RETENTION_S,
                    time_lag / PAYMENTS_RETENTION_S,
                    time_lag / PAYMENTS_RETENTION_S,
                    0.002,
                ),
                ("Evicted messages per topic", _) => per_topic(0.0, 0.0, 0.0, 0.0),
                ("Rewinds" | "Rewound messages", _) => Expect::exact(&[(&to, 0.0), (&tp, 0.0)]),
                ("Consumption vs production per topic", "A") => {
                    Expect::exact(&[(&to, 0.0), (&tp, 0.0)])
                }
                ("Consumption vs production per topic", "B") if topic_level => {
                    Expect::exact(&[(&to, 0.0), (&tp, 0.0)])
                }
                ("Consumption vs production per topic", "B") => Expect::none(),
                ("Consumption vs production per topic", _) => Expect::exact(&[("", 0.0)]),
                ("Lag per partition", _) | ("Partitions", "C") => partitions(
                    &[
                        (o("0"), 5.0),
                        (o("1"), 0.0),
                        (o("2"), 30.0),
                        (pay.clone(), 10.0),
                    ],
                    0.0,
                ),
                ("Time lag per partition", _) | ("Partitions", "D") => partitions(
                    &[
                        (o("0"), time_lag),
                        (o("1"), 0.0),
                        (o("2"), time_lag),
                        (pay.clone(), time_lag),
                    ],
                    tl,
                ),
                ("Partitions", "A") => partitions(
                    &[
                        (o("0"), 5.0),
                        (o("1"), 20.0),
                        (o("2"), 0.0),
                        (pay.clone(), 40.0),
                    ],
                    0.0,
                ),
                ("Partitions", "B") => partitions(
                    &[
                        (o("0"), 10.0),
                        (o("1"), 20.0),
                        (o("2"), 30.0),
                        (pay.clone(), 50.0),
                    ],
                    0.0,
                ),
                ("Partitions", "E") => partitions(
                    &[
                        (o("0"), eviction_orders),
                        (o("2"), eviction_orders),
                        (pay.clone(), eviction_payments),
                    ],
                    tl,
                ),
                ("Partitions", "F") => partitions(
                    &[
                        (o("0"), 0.0),
                        (o("1"), 0.0),
                        (o("2"), 0.0),
                        (pay.clone(), 0.0),
                    ],
                    0.0,
                ),
                other => panic!("no expectation for the group dashboard's {other:?}: add one"),
            };
            check(&what("group", &title, &r, ""), &q, &got, &expect);
            answers.insert(
                (cluster.to_owned(), "group".into(), title.clone(), r.clone()),
                got,
            );
            checked += 1;
        }
        // The rewinder's rewind, on the same dashboard and in its annotation.
        let picks: BTreeMap<&str, Pick> =
            BTreeMap::from([("cluster", one(cluster)), ("group", one(&rewinder))]);
        for (title, r, expr) in targets(&group_dash) {
            let expect = match title.as_str() {
                "Rewinds" => Expect::close(&[(&tp, 1.0)], 0.5),
                "Rewound messages" => Expect::close(&[(&tp, 10.0)], 5.0),
                "Lag" => Expect::exact(&[("", 30.0)]),
                _ => continue,
            };
            let q = interpolate(&expr, &group_dash, &picks);
            check(
                &what("group", &title, &r, " (rewinder)"),
                &q,
                &prometheus.query(&q, at).0,
                &expect,
            );
            checked += 1;
        }
        for a in group_dash["annotations"]["list"]
            .as_array()
            .expect("annotations")
        {
            let expr = a["expr"].as_str().unwrap_or("");
            if !expr.contains("rewinds_total") {
                continue;
            }
            for (group, expect) in [
                (&rewinder, Expect::close(&[(&tp, 1.0)], 0.5)),
                (&billing, Expect::none()),
            ] {
                let picks: BTreeMap<&str, Pick> =
                    BTreeMap::from([("cluster", one(cluster)), ("group", one(group))]);
                let q = interpolate(expr, &group_dash, &picks);
                check(
                    &what("group", "annotation", "Rewinds", group),
                    &q,
                    &prometheus.query(&q, at).0,
                    &expect,
                );
                checked += 1;
            }
        }

        // ---- the overview: the one group picked (escaped by Grafana), then All ----
        let g = format!("cluster={cluster},group={billing}");
        for (picked, picks) in [
            (
                "billing",
                BTreeMap::from([("cluster", one(cluster)), ("group", one(&billing))]),
            ),
            ("all groups", BTreeMap::from([("cluster", one(cluster))])),
        ] {
            let only = picked == "billing";
            for (title, r, expr) in targets(&overview) {
                let q = interpolate(&expr, &overview, &picks);
                let (got, raw) = prometheus.query(&q, at);
                for series in &raw {
                    assert!(
                        series["metric"]["instance"].is_null(),
                        "{}: per-replica series {series}",
                        what("overview", &title, &r, picked)
                    );
                }
                let c = format!("cluster={cluster}");
                let groups = |b: f64, d: f64, w: f64, tol: f64| {
                    if only {
                        Expect::close(&[(&g, b)], tol)
                    } else {
                        Expect::close(
                            &[
                                (&g, b),
                                (&format!("group={decoy}"), d),
                                (&format!("group={rewinder}"), w),
                            ],
                            tol,
                        )
                    }
                };
                let expect = match (title.as_str(), r.as_str()) {
                    ("Kafka reachable", _) => Expect::exact(&[(&c, 1.0)]),
                    ("Data age", _) => Expect::close(&[(&c, 5.0)], 6.0),
                    ("Groups not ok", _) => Expect::exact(&[("", if only { 1.0 } else { 3.0 })]),
                    ("Groups losing data", _) => Expect::exact(&[("", 0.0)]),
                    ("Worst time lag", _) => Expect::close(&[("", time_lag)], tl),
                    ("Worst time lag by group" | "Time lag by group", _)
                    | ("Consumer groups", "B") => groups(time_lag, time_lag, time_lag, tl),
                    ("Groups by status", _) => {
                        Expect::exact(&[("status=stop", if only { 1.0 } else { 3.0 })])
                    }
                    ("Consumer groups", "A") => groups(1.0, 1.0, 1.0, 0.0),
                    ("Consumer groups", "C") | ("Lag by group", _) => groups(45.0, 60.0, 30.0, 0.0),
                    ("Consumer groups", "D") => {
                        groups(eviction_payments, eviction_orders, eviction_payments, tl)
                    }
                    ("Consumer groups", "E" | "F") | ("Evicted messages by group", _) => {
                        groups(0.0, 0.0, 0.0, 0.0)
                    }
                    ("Total lag by cluster", _) => {
                        Expect::exact(&[(&c, if only { 45.0 } else { 135.0 })])
                    }
                    ("Retention risk by group and topic", _) => {
                        let b = time_lag / PAYMENTS_RETENTION_S;
                        let d = time_lag / ORDERS_RETENTION_S;
                        let rows: Vec<(String, f64)> = match (topic_level, only) {
                            (true, true) => {
                                vec![(format!("{g},{to}"), d), (format!("{g},{tp}"), b)]
                            }
                            (true, false) => vec![
                                (format!("{g},{to}"), d),
                                (format!("{g},{tp}"), b),
                                (format!("group={decoy},{to}"), d),
                                (format!("group={rewinder},{tp}"), b),
                            ],
                            (false, true) => vec![(format!("{g},{all}"), b)],
                            (false, false) => vec![
                                (format!("{g},{all}"), b),
                                (format!("group={decoy},{all}"), d),
                                (format!("group={rewinder},{all}"), b),
                            ],
                        };
                        Expect(rows.into_iter().map(|(k, v)| (k, v, 0.002)).collect())
                    }
                    other => panic!("no expectation for the overview's {other:?}: add one"),
                };
                check(&what("overview", &title, &r, picked), &q, &got, &expect);
                answers.insert(
                    (cluster.to_owned(), picked.into(), title.clone(), r.clone()),
                    got,
                );
                checked += 1;
            }
        }

        // ---- group_type: with the label (group-level families carry it), picking the group's
        // type keeps it and any other type drops it; without the label, a picked type matches
        // nothing and only "All" (`.*`) shows the groups ----
        if matches!(cluster, "gran-topic" | "replicated") {
            let (types, _) = prometheus.query(
                &format!(
                    "max by (group_type) (kafka_consumergroup_state{{cluster=\"{cluster}\", group=\"{billing}\"}})"
                ),
                at,
            );
            let billing_type = types
                .keys()
                .next()
                .and_then(|k| k.strip_prefix("group_type="))
                .map(str::to_owned);
            eprintln!("{cluster}: group_type of the billing group: {billing_type:?}");
            if cluster == "replicated" {
                assert_eq!(
                    billing_type.as_deref(),
                    Some("classic"),
                    "the relabelled scrape"
                );
            }
            let (title, r, expr) = targets(&overview)
                .into_iter()
                .find(|(t, _, _)| t == "Lag by group")
                .expect("Lag by group");
            for pick in ["classic", "consumer", "share", "streams"] {
                let picks = BTreeMap::from([
                    ("cluster", one(cluster)),
                    ("group", one(&billing)),
                    ("group_type", one(pick)),
                ]);
                let q = interpolate(&expr, &overview, &picks);
                let expect = if billing_type.as_deref() == Some(pick) {
                    Expect::exact(&[(&g, 45.0)])
                } else {
                    Expect::none()
                };
                let w = what("overview", &title, &r, &format!(" group_type {pick}"));
                check(&w, &q, &prometheus.query(&q, at).0, &expect);
                checked += 1;
            }
        }

        // ---- the exporter dashboard: one series per lagwatch process where it shows instances ----
        let picks: BTreeMap<&str, Pick> = BTreeMap::from([("cluster", one(cluster))]);
        for (title, r, expr) in targets(&exporter) {
            let q = interpolate(&expr, &exporter, &picks);
            let (got, _) = prometheus.query(&q, at);
            let w = what("exporter", &title, &r, "");
            match title.as_str() {
                "Kafka reachable" | "Kafka reachable over time" => {
                    assert_eq!(got.len(), replicas, "{w}: one per replica: {got:?}");
                    assert!(got.values().all(|v| *v == 1.0), "{w}: {got:?}");
                }
                "Poll errors by stage" => {
                    // One series per stage, not one per stage and replica.
                    assert_eq!(
                        got.len(),
                        lagwatch::kafka::Stage::ALL.len(),
                        "{w}: every stage once: {got:?}"
                    );
                    assert!(got.values().all(|v| *v >= 0.0), "{w}: {got:?}");
                }
                "Series dropped" | "Timestamp reads pending" => {
                    assert_eq!(got.len(), replicas, "{w}: {got:?}");
                    assert!(got.values().all(|v| *v == 0.0), "{w}: {got:?}");
                }
                "Version" => assert!(got.values().all(|v| *v >= 1.0) && !got.is_empty(), "{w}"),
                _ => assert!(
                    !got.is_empty() && got.values().all(|v| v.is_finite() && *v >= 0.0),
                    "{w}: {got:?}"
                ),
            }
            checked += 1;
        }
    }

    // Three replicas show what one does, query for query (time-dependent figures within the
    // tolerance of a poll).
    for ((cluster, view, title, r), got) in &answers {
        if cluster != "replicated" {
            continue;
        }
        let single = &answers[&(
            "gran-partition".to_owned(),
            view.clone(),
            title.clone(),
            r.clone(),
        )];
        let strip = |m: &Results| -> BTreeMap<String, f64> {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.replace("cluster=replicated", "cluster=gran-partition"),
                        *v,
                    )
                })
                .collect()
        };
        let (a, b) = (strip(got), strip(single));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{view} / {title} {r}: three replicas and one show other series"
        );
        for (k, v) in &a {
            let w = b[k];
            assert!(
                (v - w).abs() <= tl.max(w.abs() * 0.01),
                "{view} / {title} {r} {k}: three replicas {v}, one replica {w}"
            );
        }
    }
    eprintln!("{checked} dashboard queries checked against the truth");
    drop(prometheus);
    drop(processes);
    drop(kafka);
}
