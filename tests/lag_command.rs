//! `lagwatch lag` and the `/` page against a real broker.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{kafka, unique, Lagwatch};

const BIN: &str = env!("CARGO_BIN_EXE_lagwatch");

fn write_config(broker_bootstrap: &str, topic: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("lagwatch-lag"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("lagwatch.yaml");
    std::fs::write(
        &path,
        format!(
            "poll_interval: 1s\nclusters:\n  - name: test\n    bootstrap_servers: \"{broker_bootstrap}\"\n    topics: {{ include: [\"^{topic}$\"] }}\n"
        ),
    )
    .expect("config");
    path
}

#[test]
fn lag_prints_partitions_and_exits_by_status() {
    let broker = kafka();
    let topic = unique("orders");
    let behind = unique("behind");
    let current = unique("current");
    broker.create_topic(
        &topic,
        2,
        &[("retention.ms", "86400000"), ("cleanup.policy", "delete")],
    );
    broker.produce(&topic, 0, 10, None);
    broker.produce(&topic, 1, 4, None);
    broker.commit(&behind, &[(&topic, 0, 7), (&topic, 1, 4)]);
    broker.commit(&current, &[(&topic, 0, 10), (&topic, 1, 4)]);
    let config = write_config(&broker.bootstrap(), &topic);

    // A lagging group: exit 1, status behind, exact offsets.
    let out = Command::new(BIN)
        .args(["lag", "--output", "json", "--group"])
        .arg(format!("^{behind}$"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        groups.as_array().map(Vec::len),
        Some(1),
        "--group narrows: {stdout}"
    );
    let g = &groups[0];
    assert_eq!(g["status"], "behind");
    assert_eq!(g["lag_messages"], 3);
    assert_eq!(g["partitions"][0]["committed"], 7);
    assert_eq!(g["partitions"][0]["head"], 10);
    assert_eq!(g["partitions"][0]["lag_messages"], 3);
    assert!(
        g["partitions"][0]["lag_seconds"]
            .as_f64()
            .is_some_and(|s| (0.0..120.0).contains(&s)),
        "{g}"
    );
    assert_eq!(g["partitions"][1]["lag_messages"], 0);

    // A caught-up group, two polls: exit 0, table output.
    let out = Command::new(BIN)
        .args(["lag", "--polls", "2", "--group"])
        .arg(format!("^{current}$"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("CLUSTER"), "{stdout}");
    assert_eq!(lines.len(), 3, "header and two partitions: {stdout}");
    assert!(
        lines[1].contains(&current) && lines[1].contains(" ok "),
        "{stdout}"
    );
}

#[test]
fn lag_exits_2_when_the_cluster_cannot_be_reached() {
    let port = common::free_port();
    let config = write_config(&format!("127.0.0.1:{port}"), "x");
    let started = std::time::Instant::now();
    let out = Command::new(BIN)
        .args(["lag", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster test"));
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn status_page_lists_groups_worst_first() {
    let broker = kafka();
    let topic = unique("page");
    let lagging = unique("lagging");
    let fine = unique("fine");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 5, None);
    broker.commit(&lagging, &[(&topic, 0, 1)]);
    broker.commit(&fine, &[(&topic, 0, 5)]);
    let lw = Lagwatch::start(&format!(
        "listen: \"127.0.0.1:0\"\npoll_interval: 1s\nstatus: {{ window: 2 }}\nclusters:\n  - name: test\n    bootstrap_servers: \"{}\"\n    topics: {{ include: [\"^{topic}$\"] }}\n",
        broker.bootstrap()
    ));
    lw.wait_for(Duration::from_secs(60), "both groups with a status", |m| {
        m.value(
            "kafka_consumergroup_status",
            &[("group", lagging.as_str()), ("status", "stop")],
        )
        .is_some()
            && m.value(
                "kafka_consumergroup_status",
                &[("group", fine.as_str()), ("status", "ok")],
            )
            .is_some()
    });
    let (status, page) = lw.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("<h1>lagwatch</h1>"));
    assert!(page.contains("class=\"up\">up"), "{page}");
    let stopped = page
        .find(&format!(">{lagging}<"))
        .expect("lagging group listed");
    let ok = page.find(&format!(">{fine}<")).expect("fine group listed");
    assert!(stopped < ok, "worst first:\n{page}");
    assert!(page.contains("class=\"stop\">stop"), "{page}");
}
