//! `/metrics` under load: `wrk` (64 connections, 60 s, gzip) against the lagwatch binary serving
//! about 100,000 series of a real Kafka cluster at `granularity: partition`. Asserts what must
//! hold whatever the machine: no socket error, no non-2xx response, and the process's RSS after
//! the load within 10 % of before. Prints, never asserts, requests/s, latency, the server-side
//! scrape time (`lagwatch_scrape_duration_seconds`) and the poll time before and during the load.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{kafka, unique, Exposition, LagwatchProcess};

/// One topic of this many partitions, each committed by every group: `PARTITIONS * GROUPS`
/// group-partitions, about 4 series each at partition granularity.
const PARTITIONS: i32 = 1_000;
const GROUPS: usize = 25;
/// Fewer would mean the exposition is not the size under test.
const MIN_SERIES: f64 = 95_000.0;

const CONNECTIONS: usize = 64;
const LOAD: &str = "60s";

#[test]
fn metrics_under_wrk_load_answers_every_request_and_keeps_its_memory() {
    let broker = kafka();
    let topic = unique("load");
    let prefix = unique("load-group");
    // One CreateTopics, one OffsetCommit per group.
    broker.create_topic(&topic, PARTITIONS, &[]);
    let offsets: Vec<(&str, i32, i64)> = (0..PARTITIONS).map(|p| (topic.as_str(), p, 0)).collect();
    for g in 0..GROUPS {
        broker.commit(&format!("{prefix}-{g}"), &offsets);
    }

    let lagwatch = LagwatchProcess::start(&format!(
        r#"
poll_interval: 5s
granularity: partition
max_series: 1000000
clusters:
  - name: test
    bootstrap_servers: "{}"
    groups: {{ include: ["^{prefix}-"] }}
    topics: {{ include: ["^{topic}$"] }}
"#,
        broker.bootstrap()
    ));
    let series = |m: &Exposition| m.value("lagwatch_series", &[("cluster", "test")]);
    let ready = lagwatch.wait_for(Duration::from_secs(180), "every series", |m| {
        series(m).is_some_and(|n| n >= MIN_SERIES) && m.polls() >= 2.0
    });
    let url = format!("http://127.0.0.1:{}/metrics", lagwatch.port);

    // A short run first, so that "before" is the steady state of a process that has served
    // connections (allocator arenas of the worker threads, hyper's buffers).
    let warm_up = wrk(&url, "5s");
    assert_clean("warm-up", &warm_up);
    let before = lagwatch.metrics();
    let rss_before = rss_kib(lagwatch.pid());

    let report = wrk(&url, LOAD);
    let after = lagwatch.metrics();
    let rss_after = rss_kib(lagwatch.pid());
    assert_clean("load", &report);

    let polls = after.polls() - before.polls();
    let poll_time = |m: &Exposition| {
        m.value("lagwatch_poll_duration_seconds_sum", &[("cluster", "test")])
            .unwrap_or(0.0)
    };
    println!(
        "http_load: {} series ({} group-partitions), {CONNECTIONS} connections for {LOAD}",
        series(&ready).unwrap_or(0.0),
        PARTITIONS as usize * GROUPS
    );
    println!("{report}");
    println!(
        "http_load: poll time before the load {:.3} s on average over {} polls, during it {:.3} s over {polls} polls",
        poll_time(&before) / before.polls().max(1.0),
        before.polls(),
        (poll_time(&after) - poll_time(&before)) / polls.max(1.0),
    );
    // The exposition is rendered once per poll: the scrape times are as of the last poll.
    println!(
        "http_load: server time of /metrics during the load: p50 ≤ {} s, p99 ≤ {} s over {} scrapes",
        scrape_quantile(&before, &after, 0.5),
        scrape_quantile(&before, &after, 0.99),
        scrape_count(&after) - scrape_count(&before),
    );
    println!("http_load: RSS {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after.abs_diff(rss_before) * 10 <= rss_before,
        "RSS {rss_before} KiB before the load, {rss_after} KiB after: more than 10 % apart"
    );
}

/// Runs wrk against `url` for `duration` with 64 connections, asking for gzip like Prometheus;
/// returns its report.
fn wrk(url: &str, duration: &str) -> String {
    let out = Command::new("wrk")
        .args(["--threads", "2", "--connections"])
        .arg(CONNECTIONS.to_string())
        .args(["--duration", duration, "--timeout", "10s", "--latency"])
        .args(["--header", "Accept-Encoding: gzip"])
        .arg(url)
        .output()
        .expect("wrk is installed by .ci/setup (Debian package wrk)");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "wrk failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// wrk prints these lines only when something went wrong.
fn assert_clean(what: &str, report: &str) {
    assert!(
        !report.contains("Socket errors"),
        "{what}: socket errors\n{report}"
    );
    assert!(
        !report.contains("Non-2xx or 3xx responses"),
        "{what}: error responses\n{report}"
    );
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 0, "{what}: no request answered\n{report}");
}

/// Resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn scrape_count(m: &Exposition) -> f64 {
    m.value("lagwatch_scrape_duration_seconds_count", &[])
        .unwrap_or(0.0)
}

/// The upper bound of the bucket holding quantile `q` of the scrapes between two expositions.
fn scrape_quantile(before: &Exposition, after: &Exposition, q: f64) -> String {
    let buckets = |m: &Exposition| -> Vec<(f64, f64)> {
        let mut b: Vec<(f64, f64)> = m
            .samples
            .iter()
            .filter_map(|(series, count)| {
                let le = series
                    .strip_prefix("lagwatch_scrape_duration_seconds_bucket{le=\"")?
                    .strip_suffix("\"}")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, *count))
            })
            .collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        b
    };
    let (b0, b1) = (buckets(before), buckets(after));
    let total = scrape_count(after) - scrape_count(before);
    for ((bound, n1), (_, n0)) in b1.iter().zip(b0.iter()) {
        if total > 0.0 && n1 - n0 >= q * total {
            return bound.to_string();
        }
    }
    "?".to_string()
}
