//! Least privilege against Apache Kafka with the ACL authorizer on: lagwatch, connecting over
//! SASL_SSL as the ordinary user `lagwatch`, works with exactly the ACLs `docs/configuration.md`
//! lists (Permissions), and with each one removed shows what Kafka does without it. Kafka
//! answers in two ways: a request on a named resource is refused (the stage fails, its error
//! names the request and the resource), while listings silently leave out what the principal
//! may not Describe (lagwatch counts the exactly named topics and groups it was refused).

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::kafka_cluster::CLIENT_USER;
use common::{unique, ClusterSpec, Exposition, KafkaCluster, LagwatchProcess, Listener};

/// Generous: four engineers' Kafka clusters share two cores.
const WAIT: Duration = Duration::from_secs(60);

const STAGES: [&str; 7] = [
    "metadata",
    "list_offsets",
    "list_groups",
    "describe_groups",
    "offset_fetch",
    "describe_configs",
    "read_timestamps",
];

/// Grants (`--add`) or revokes (`--remove`) `operations` on one resource to `User:lagwatch`
/// with Kafka's own ACL tool, as the Permissions section of the configuration docs shows.
fn acl(cluster: &KafkaCluster, action: &str, operations: &[&str], resource: (&str, &str)) {
    let mut args = vec![
        "--bootstrap-server",
        "{bootstrap}",
        action,
        "--allow-principal",
        "User:lagwatch",
    ];
    for op in operations {
        args.extend(["--operation", op]);
    }
    args.extend([resource.0, resource.1, "--resource-pattern-type", "literal"]);
    if action == "--remove" {
        // Otherwise the tool asks for confirmation on stdin.
        args.push("--force");
    }
    cluster.run_tool("org.apache.kafka.tools.AclCommand", &args);
}

fn errors(m: &Exposition, stage: &str) -> f64 {
    m.value("lagwatch_poll_errors_total", &[("stage", stage)])
        .unwrap_or_else(|| panic!("no poll errors series for {stage}"))
}

/// Every stage's error count, in `STAGES` order.
fn all_errors(m: &Exposition) -> Vec<f64> {
    STAGES.iter().map(|s| errors(m, s)).collect()
}

/// Error counts of every stage but `changed` are as in `before`; `changed` grew.
fn only_stage_failed(before: &[f64], after: &Exposition, changed: Option<&str>) {
    for (stage, was) in STAGES.iter().zip(before) {
        let now = errors(after, stage);
        if Some(*stage) == changed {
            assert!(now > *was, "{stage}: errors {was} -> {now}");
        } else {
            assert_eq!(now, *was, "{stage}: errors counted\n{}", after.text);
        }
    }
}

/// Waits for three more polls after `from` and checks that none of them failed a stage: what
/// Kafka hides silently is no error. Returns the last exposition.
fn three_quiet_polls(lw: &LagwatchProcess, from: &Exposition) -> Exposition {
    let polls = |m: &Exposition| m.value("lagwatch_poll_duration_seconds_count", &[]);
    let m = lw.wait_for(WAIT, "three more polls", |m| {
        polls(m) >= polls(from).map(|p| p + 3.0)
    });
    only_stage_failed(&all_errors(from), &m, None);
    m
}

/// The first line of the log that contains every one of `parts`.
fn log_line(lw: &LagwatchProcess, parts: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = lw.log_text();
        if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lagwatch_works_with_the_documented_acls_and_shows_each_missing_one() {
    let cluster = KafkaCluster::start(ClusterSpec {
        acls: true,
        ..ClusterSpec::default()
    });
    let topic = unique("guarded");
    let group = unique("billing");
    let (t, g) = (topic.as_str(), group.as_str());
    // PLAINTEXT clients are super users: the workload needs no ACLs.
    cluster.create_topic(t, 1, &[("retention.ms", "86400000")]);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    // Records an hour old: a time lag that cannot be mistaken for a default.
    cluster.produce(t, 0, 20, Some(now_ms - 3_600_000));
    cluster.commit(g, &[(t, 0, 5)]);

    // Exactly the permissions the docs list.
    let topic_ops = ["Describe", "Read", "DescribeConfigs"];
    acl(&cluster, "--add", &topic_ops, ("--topic", t));
    acl(&cluster, "--add", &["Describe"], ("--group", g));

    let properties: String = cluster
        .client_properties(Listener::SaslSsl)
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "bootstrap.servers" | "sasl.username" | "sasl.password"
            )
        })
        .chain([
            ("sasl.username".to_string(), CLIENT_USER.0.to_string()),
            ("sasl.password".to_string(), CLIENT_USER.1.to_string()),
        ])
        .map(|(k, v)| format!("      {k}: \"{v}\"\n"))
        .collect();
    // Topic configs are read every poll, so a removed DescribeConfigs shows at once. A poll may
    // take 5 s: what is measured is refusals, and a busy machine can hold a new consumer's first
    // timestamp read past a 1 s deadline, which would count as a failed stage.
    let lw = LagwatchProcess::start(&format!(
        "poll_interval: 1s\npoll_timeout: 5s\nconfig_refresh: 1s\nclusters:\n  - name: acl\n    bootstrap_servers: \"{}\"\n    kafka:\n{properties}    topics: {{ include: [\"^{t}$\"] }}\n    groups: {{ include: [\"^{g}$\"] }}\n",
        cluster.bootstrap_for(Listener::SaslSsl)
    ));
    let topic_l = [("topic", t)];
    let group_l = [("group", g)];
    let lag = |m: &Exposition| m.value("kafka_consumergroup_lag_messages", &group_l);
    let time_lag = |m: &Exposition| m.value("kafka_consumergroup_lag_seconds", &group_l);
    let retention = |m: &Exposition| m.value("kafka_topic_retention_seconds", &topic_l);
    let unauthorized = |m: &Exposition| {
        (
            m.value("lagwatch_unauthorized_topics", &[]),
            m.value("lagwatch_unauthorized_groups", &[]),
        )
    };
    let assert_time_lag = |m: &Exposition| {
        let seconds = time_lag(m).expect("time lag");
        // The record at the committed offset is an hour old, plus the test's own run time.
        assert!(
            (3600.0..3600.0 + 600.0).contains(&seconds),
            "time lag {seconds}"
        );
    };

    // 1. Everything granted: exact lag, state, time lag and retention; no stage fails.
    let m = lw.wait_for(WAIT, "lag and time lag with the documented ACLs", |m| {
        lag(m) == Some(15.0) && time_lag(m).is_some() && retention(m).is_some()
    });
    assert_eq!(m.value("lagwatch_kafka_up", &[]), Some(1.0));
    assert_eq!(m.value("kafka_topic_latest_offsets", &topic_l), Some(20.0));
    assert_eq!(m.value("kafka_topic_earliest_offsets", &topic_l), Some(0.0));
    assert_eq!(
        m.value(
            "kafka_consumergroup_state",
            &[("group", g), ("state", "empty")]
        ),
        Some(1.0)
    );
    assert_eq!(m.value("kafka_consumergroup_members", &group_l), Some(0.0));
    assert_time_lag(&m);
    assert_eq!(retention(&m), Some(86400.0));
    let failed: Vec<String> = lw
        .log_text()
        .lines()
        .filter(|l| l.contains("\"stage\":"))
        .map(str::to_string)
        .collect();
    assert_eq!(all_errors(&m), vec![0.0; STAGES.len()], "{failed:#?}");
    assert_eq!(unauthorized(&m), (Some(0.0), Some(0.0)));

    // 2. Without Read on the topic, Fetch is refused: the timestamp reads fail, naming the
    //    topic and Kafka's refusal. A new commit makes the model need a record it cannot read.
    acl(&cluster, "--remove", &["Read"], ("--topic", t));
    let before = all_errors(&lw.metrics());
    cluster.commit(g, &[(t, 0, 8)]);
    let m = lw.wait_for(WAIT, "timestamp reads refused", |m| {
        lag(m) == Some(12.0) && errors(m, "read_timestamps") > 0.0
    });
    only_stage_failed(&before, &m, Some("read_timestamps"));
    assert_eq!(time_lag(&m), None, "no time lag without the record");
    assert_eq!(retention(&m), Some(86400.0));
    assert_eq!(unauthorized(&m), (Some(0.0), Some(0.0)));
    let line = log_line(
        &lw,
        &[
            "\"stage\":\"read_timestamps\"",
            &format!("(topics {t}): Fetch: "),
            "TopicAuthorizationFailed",
        ],
    );
    eprintln!("without Read on the topic: {line}");
    acl(&cluster, "--add", &["Read"], ("--topic", t));
    let m = lw.wait_for(WAIT, "time lag again with Read", |m| time_lag(m).is_some());
    assert_time_lag(&m);

    // 3. Without DescribeConfigs on the topic, DescribeConfigs is refused for it: retention is
    //    unknown (no retention series, no eviction risk); lag and time lag are still served.
    acl(&cluster, "--remove", &["DescribeConfigs"], ("--topic", t));
    let before = all_errors(&lw.metrics());
    let m = lw.wait_for(WAIT, "DescribeConfigs refused", |m| {
        errors(m, "describe_configs") > before[5] && retention(m).is_none()
    });
    only_stage_failed(&before, &m, Some("describe_configs"));
    assert_eq!(lag(&m), Some(12.0));
    assert_time_lag(&m);
    assert_eq!(
        m.value("kafka_consumergroup_eviction_seconds", &group_l),
        None
    );
    let line = log_line(
        &lw,
        &[
            "\"stage\":\"describe_configs\"",
            &format!("topic {t}: DescribeConfigs: TopicAuthorizationFailed"),
        ],
    );
    eprintln!("without DescribeConfigs on the topic: {line}");
    acl(&cluster, "--add", &["DescribeConfigs"], ("--topic", t));
    lw.wait_for(WAIT, "retention again", |m| retention(m) == Some(86400.0));

    // 4. Without Describe on the group, ListGroups leaves it out without an error: its series
    //    go, no stage fails, and lagwatch counts the exactly named group Kafka refused by name.
    acl(&cluster, "--remove", &["Describe"], ("--group", g));
    let hidden = lw.wait_for(WAIT, "the group hidden", |m| {
        lag(m).is_none() && unauthorized(m) == (Some(0.0), Some(1.0))
    });
    // A poll running while the ACL changed may have listed the group and then been refused
    // its offsets; the polls after it see the group hidden, without errors.
    let m = three_quiet_polls(&lw, &hidden);
    assert_eq!(lag(&m), None);
    assert_eq!(unauthorized(&m), (Some(0.0), Some(1.0)));
    assert_eq!(m.value("kafka_topic_latest_offsets", &topic_l), Some(20.0));
    assert_eq!(retention(&m), Some(86400.0));
    let line = log_line(
        &lw,
        &["hidden by Kafka ACLs", &format!("\"groups\":\"{g}\"")],
    );
    eprintln!("without Describe on the group: {line}");
    acl(&cluster, "--add", &["Describe"], ("--group", g));
    let m = lw.wait_for(WAIT, "the group again", |m| lag(m) == Some(12.0));
    assert_eq!(unauthorized(&m), (Some(0.0), Some(0.0)));

    // 5. Without Describe on the topic but with Read, nothing changes: Kafka's Read implies
    //    Describe. Three more polls must see the same.
    acl(&cluster, "--remove", &["Describe"], ("--topic", t));
    let m = three_quiet_polls(&lw, &lw.metrics());
    assert_eq!(lag(&m), Some(12.0));
    assert_eq!(m.value("kafka_topic_latest_offsets", &topic_l), Some(20.0));
    assert_eq!(unauthorized(&m), (Some(0.0), Some(0.0)));

    // 6. Without Read too, Metadata leaves the topic out and OffsetFetch drops the group's
    //    commits on it, both without an error: the topic's series go and the group shows no
    //    lag. lagwatch counts the exactly named topic Kafka refused by name.
    acl(&cluster, "--remove", &["Read"], ("--topic", t));
    let hidden = lw.wait_for(WAIT, "the topic hidden", |m| {
        m.value("kafka_topic_partitions", &topic_l).is_none()
            && unauthorized(m) == (Some(1.0), Some(0.0))
    });
    // As with the group: a poll running while the ACL changed may have been refused
    // ListOffsets or configs for a topic its metadata still listed.
    let m = three_quiet_polls(&lw, &hidden);
    assert_eq!(m.value("kafka_topic_partitions", &topic_l), None);
    assert_eq!(unauthorized(&m), (Some(1.0), Some(0.0)));
    assert_eq!(m.value("lagwatch_kafka_up", &[]), Some(1.0));
    assert_eq!(
        m.value(
            "kafka_consumergroup_state",
            &[("group", g), ("state", "empty")]
        ),
        Some(1.0)
    );
    assert_eq!(lag(&m), Some(0.0));
    assert_eq!(
        m.value("kafka_consumergroup_topic_lag_messages", &group_l),
        None
    );
    let line = log_line(
        &lw,
        &["hidden by Kafka ACLs", &format!("\"topics\":\"{t}\"")],
    );
    eprintln!("without Describe and Read on the topic: {line}");

    // 7. Granted again, everything is back.
    acl(&cluster, "--add", &["Describe", "Read"], ("--topic", t));
    let m = lw.wait_for(WAIT, "the topic again", |m| {
        lag(m) == Some(12.0) && time_lag(m).is_some()
    });
    assert_eq!(unauthorized(&m), (Some(0.0), Some(0.0)));
    assert_eq!(retention(&m), Some(86400.0));
}
