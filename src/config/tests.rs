//! Loading as a whole: defaults, the example and docs kept in step with the code, error paths and
//! messages, selectors. Tests of one part sit beside it (`secrets.rs`, `describe.rs`, `shard.rs`)
//! and share the fixtures here.

use std::env::VarError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use super::*;

/// PRODUCT.md §6, exactly as written.
const MINIMAL: &str = r#"
listen: "0.0.0.0:9308"
poll_interval: 30s
granularity: topic
clusters:
  - name: local
    bootstrap_servers: "127.0.0.1:9092"
    kafka: {}                 # any librdkafka property: security.protocol, sasl.*, ssl.*
    groups: { include: [".*"], exclude: [] }
    topics: { include: [".*"], exclude: ["^__"] }
"#;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lagwatch.yaml");
pub(super) const DOCS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/configuration.md"
));

/// A file: `top` lines, then `clusters:` with one cluster `local` holding the `cluster` lines.
pub(super) fn yaml(top: &str, cluster: &str) -> String {
    let cluster: String = cluster
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect();
    let local = "  - name: local\n    bootstrap_servers: \"127.0.0.1:9092\"\n";
    format!("{top}\nclusters:\n{local}{cluster}")
}

/// Parses with a fake environment holding `vars`, relative paths against `base_dir`.
pub(super) fn parse_in(
    text: &str,
    vars: &[(&str, &str)],
    base_dir: Option<&Path>,
) -> Result<Config, ConfigError> {
    let env = |name: &str| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
            .ok_or(VarError::NotPresent)
    };
    parse(
        text,
        &Sources {
            env: &env,
            base_dir,
        },
    )
}

pub(super) fn error(text: &str) -> String {
    match parse_in(text, &[], None) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// A fresh directory for this test's files.
pub(super) fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lagwatch-config-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn patterns(regexes: &[Regex]) -> Vec<&str> {
    regexes.iter().map(Regex::as_str).collect()
}

pub(super) fn property<'a>(cluster: &'a ClusterConfig, key: &str) -> &'a KafkaValue {
    &cluster.kafka.iter().find(|(k, _)| k == key).unwrap().1
}

/// The defaults of PRODUCT.md §6, written out rather than taken from the constants above, so a
/// changed constant fails here.
fn assert_defaults(config: &Config) {
    assert_eq!(config.listen, "0.0.0.0:9308".parse::<SocketAddr>().unwrap());
    assert_eq!(config.poll_interval, Duration::from_secs(30));
    assert_eq!(config.granularity, Granularity::Topic);
    assert_eq!(config.max_series, 100_000);
    assert_eq!(config.offset_fetch_concurrency, 16);
    assert_eq!(config.config_refresh, Duration::from_secs(600));
    assert_eq!(
        config.time_lag,
        TimeLagConfig {
            max_reads_per_poll: 1000,
            history: 64
        }
    );
    assert_eq!(
        config.status,
        StatusConfig {
            window: 10,
            allowed_lag: 0,
            stop_after: Duration::from_secs(900),
            eviction_warning: Duration::from_secs(3600),
            min_time_lag: Duration::from_secs(60),
            inactive_after: Duration::from_secs(86_400),
        }
    );
    assert_eq!(config.compat, vec![]);
    assert_eq!(config.web_config_file, None);
    assert_eq!(
        config.web,
        HttpLimits {
            request_timeout: Duration::from_secs(30),
            max_connections: 128,
        }
    );
    assert_eq!(config.shard, ShardConfig { index: 0, count: 1 });
    for cluster in &config.clusters {
        assert_eq!(
            cluster.poll_interval, config.poll_interval,
            "cluster {}",
            cluster.name
        );
        assert_eq!(cluster.isolation, Isolation::ReadUncommitted);
        assert_eq!(cluster.group_requests, GroupRequests::Native);
        assert!(cluster.kafka.is_empty());
        assert_eq!(patterns(&cluster.groups.include), [".*"]);
        assert_eq!(patterns(&cluster.groups.exclude), [] as [&str; 0]);
        assert_eq!(patterns(&cluster.topics.include), [".*"]);
        assert_eq!(patterns(&cluster.topics.exclude), ["^__"]);
    }
}

#[test]
fn minimal_and_bare_files_get_the_defaults() {
    // The §6 minimal file spells some defaults out; the bare file relies on all of them.
    for text in [MINIMAL, &yaml("", "")] {
        let config = parse_in(text, &[], None).unwrap();
        assert_defaults(&config);
        assert_eq!(config.clusters.len(), 1);
        assert_eq!(config.clusters[0].name, "local");
        assert_eq!(config.clusters[0].bootstrap_servers, "127.0.0.1:9092");
    }
}

/// The group excludes of `config/example.yaml`: groups command-line tools create for one run.
const THROWAWAY_GROUPS: [&str; 6] = [
    "^console-consumer-",
    "^console-share-consumer",
    "^perf-consumer-",
    "^kcat",
    "^kafkacat",
    "^kafka-python-",
];

#[test]
fn example_file_shows_the_defaults_and_excludes_throwaway_groups() {
    let mut config = Config::load(Path::new(EXAMPLE)).unwrap();
    let groups = &config.clusters[0].groups;
    assert_eq!(patterns(&groups.exclude), THROWAWAY_GROUPS);
    // (group id, monitored, why)
    #[rustfmt::skip]
    let cases = [
        ("console-consumer-48213", false, "1: kafka-console-consumer.sh without --group"),
        ("console-share-consumer", false, "2: kafka-console-share-consumer.sh"),
        ("perf-consumer-7781", false, "3: kafka-consumer-perf-test.sh"),
        ("kcat", false, "4: kcat -G kcat"),
        ("kafkacat-debug", false, "5: the tool's old name"),
        ("kafka-python-2.0.2", false, "6: a kafka-python script's default-looking id"),
        ("payments", true, "7: an application"),
        ("orders-console-consumer-bridge", true, "8: anchored: the words inside a real name"),
    ];
    for (group, monitored, why) in cases {
        assert_eq!(groups.matches(group), monitored, "{why}");
    }
    // Everything else is the default: with the excludes put back to [], every effective
    // setting, not only those pinned by `assert_defaults`, equals what the code fills in.
    config.clusters[0].groups.exclude.clear();
    assert_defaults(&config);
    let bare = parse_in(&yaml("", ""), &[], None).unwrap();
    assert_eq!(config.describe(), bare.describe());
}

/// `(key, value)` of every setting `describe` writes above `clusters:`, nested keys as `a.b`.
fn described_settings(config: &Config) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    let mut parent = "";
    let description = config.describe();
    for line in description.lines().filter(|l| !l.starts_with('#')) {
        if line == "clusters:" {
            break;
        }
        let (key, value) = line.trim().split_once(':').unwrap();
        let value = value.trim();
        if line.starts_with(' ') {
            settings.push((format!("{parent}.{key}"), value.to_owned()));
        } else if value.is_empty() {
            parent = key;
        } else {
            settings.push((key.to_owned(), value.to_owned()));
        }
    }
    settings
}

/// The default column of the docs' top-level table, against the defaults the code fills in.
#[test]
fn docs_show_the_defaults_of_the_code() {
    let bare = parse_in(&yaml("", ""), &[], None).unwrap();
    let settings = described_settings(&bare);
    assert!(settings.len() >= 15, "{settings:?}");
    for (key, value) in settings {
        let row = DOCS
            .lines()
            .find(|line| line.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("`{key}` has no row in docs"));
        // Columns: key, type, default; `\|` inside a cell is not a separator.
        let default = row.split(" | ").nth(2).unwrap().trim_matches('`');
        assert_eq!(default, value, "default of `{key}` in docs");
    }
}

#[test]
fn demo_file_parses() {
    let config = Config::load(Path::new(DEMO)).unwrap();
    assert_eq!(config.listen, "0.0.0.0:9308".parse::<SocketAddr>().unwrap());
    assert_eq!(config.poll_interval, Duration::from_secs(5));
    assert_eq!(config.granularity, Granularity::Partition);
    let clusters: Vec<(&str, &str, Duration)> = config
        .clusters
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.bootstrap_servers.as_str(),
                c.poll_interval,
            )
        })
        .collect();
    assert_eq!(
        clusters,
        [("demo", "127.0.0.1:19092", Duration::from_secs(5))]
    );
    for cluster in &config.clusters {
        assert!(cluster.kafka.is_empty());
        assert_eq!(patterns(&cluster.groups.include), [".*"]);
        assert_eq!(patterns(&cluster.topics.exclude), ["^__"]);
    }
}

/// The unknown-field error lists every accepted key of a mapping; each must appear in the
/// example file and in the docs, so neither can fall behind the code.
#[test]
fn example_and_docs_show_every_key() {
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let probes = [
        ("top level", yaml("zz_probe: 1", "")),
        ("time_lag", yaml("time_lag: {zz_probe: 1}", "")),
        ("status", yaml("status: {zz_probe: 1}", "")),
        ("shard", yaml("shard: {zz_probe: 1}", "")),
        ("web", yaml("web: {zz_probe: 1}", "")),
        ("cluster", yaml("", "zz_probe: 1")),
        ("selector", yaml("", "groups: {zz_probe: 1}")),
        ("aws_msk_iam", yaml("", "aws_msk_iam: {zz_probe: 1}")),
    ];
    for (mapping, text) in probes {
        let message = error(&text);
        // "expected `a` or `b`" for two keys, "expected one of `a`, `b`, `c`" for more.
        let (_, listed) = message
            .split_once("expected ")
            .unwrap_or_else(|| panic!("{message}"));
        let listed = listed.trim_start_matches("one of ").replace(" or ", ", ");
        let keys: Vec<&str> = listed.split(", ").map(|k| k.trim_matches('`')).collect();
        assert!(keys.len() >= 2, "{mapping}: {message}");
        for key in keys {
            assert!(
                example.contains(&format!("{key}:")),
                "{mapping}: `{key}` missing from example.yaml"
            );
            // As `key`, `parent.key` or `key.child` in a table row.
            let documented = [format!("`{key}`"), format!(".{key}`"), format!("`{key}.")];
            assert!(
                documented.iter().any(|d| DOCS.contains(d)),
                "{mapping}: `{key}` missing from docs"
            );
        }
    }
}

#[test]
fn unknown_keys_are_errors_naming_their_path() {
    // (top-level lines, cluster lines, message prefix: serde lists the valid keys after it)
    let cases = [
        (
            "pol_interval: 30s",
            "",
            "pol_interval: unknown field `pol_interval`",
        ),
        (
            "",
            "pol_interval: 5s",
            "clusters[0].pol_interval: unknown field `pol_interval`",
        ),
        (
            "status: {windw: 3}",
            "",
            "status.windw: unknown field `windw`",
        ),
        (
            "",
            "topics: {includes: [a]}",
            "clusters[0].topics.includes: unknown field",
        ),
        (
            "",
            "kafka: {a.password: {envv: PW}}",
            "clusters[0].kafka.a.password.envv: unknown",
        ),
    ];
    for (top, cluster, expected) in cases {
        let message = error(&yaml(top, cluster));
        assert!(
            message.starts_with(expected),
            "{message:?} lacks {expected:?}"
        );
    }
}

#[test]
fn bad_values_are_errors_naming_their_path() {
    // (top-level lines, cluster lines, the whole message)
    let cases = [
        (
            "",
            "poll_interval: 3x",
            r#"clusters[0].poll_interval: invalid duration "3x""#,
        ),
        (
            "poll_interval: 30",
            "",
            "poll_interval: invalid type: integer `30`, \
             expected a duration such as \"30s\", \"5m\" or \"1h 30m\"",
        ),
        (
            "poll_interval: 0s",
            "",
            "poll_interval: must be greater than zero",
        ),
        (
            "",
            "poll_interval: 0s",
            "clusters[0].poll_interval: must be greater than zero",
        ),
        (
            "config_refresh: 0s",
            "",
            "config_refresh: must be greater than zero",
        ),
        (
            "status: {stop_after: 0s}",
            "",
            "status.stop_after: must be greater than zero",
        ),
        (
            "granularity: topics",
            "",
            "granularity: unknown variant `topics`, \
             expected one of `group`, `topic`, `partition`",
        ),
        (
            "compat: [kafka_exporter]",
            "",
            "compat[0]: unknown variant `kafka_exporter`, expected `kafka_lag_exporter`",
        ),
        (
            "",
            "isolation: committed",
            "clusters[0].isolation: unknown variant `committed`, \
             expected `read_uncommitted` or `read_committed`",
        ),
        (
            "",
            "group_requests: rdkafka",
            "clusters[0].group_requests: unknown variant `rdkafka`, \
             expected `native` or `librdkafka`",
        ),
        (
            "listen: localhost:9308",
            "",
            "listen: invalid socket address \"localhost:9308\" \
             (expected IP:PORT, such as \"0.0.0.0:9308\")",
        ),
        (
            "max_series: many",
            "",
            r#"max_series: invalid type: string "many", expected usize"#,
        ),
        ("max_series: 0", "", "max_series: must be at least 1, got 0"),
        (
            "offset_fetch_concurrency: 0",
            "",
            "offset_fetch_concurrency: must be at least 1, got 0",
        ),
        (
            "time_lag: {history: 1}",
            "",
            "time_lag.history: must be at least 2, got 1",
        ),
        (
            "status: {window: 1}",
            "",
            "status.window: must be at least 2, got 1",
        ),
        (
            "status: {allowed_lag: -1}",
            "",
            "status.allowed_lag: must be at least 0, got -1",
        ),
        (
            "shard: {index: 3, count: 3}",
            "",
            "shard.index: must be less than shard.count (3), got 3",
        ),
        (
            "web: {request_timeout: 0s}",
            "",
            "web.request_timeout: must be greater than zero",
        ),
        (
            "web: {max_connections: 0}",
            "",
            "web.max_connections: must be at least 1, got 0",
        ),
        (
            "web: {request_timeout: 10}",
            "",
            "web.request_timeout: invalid type: integer `10`, expected a duration such as \"30s\", \"5m\" or \"1h 30m\"",
        ),
        (
            "shard: {count: 0}",
            "",
            "shard.count: must be at least 1, got 0",
        ),
        (
            "",
            "kafka: {socket.timeout.ms: [1]}",
            "clusters[0].kafka.socket.timeout.ms: invalid type: sequence, \
             expected a string, number, boolean, {env: NAME} or {file: PATH}",
        ),
        (
            "",
            "kafka: {sasl.password: {env: A, file: b}}",
            "clusters[0].kafka.sasl.password: \
             expected exactly one of {env: NAME} or {file: PATH}",
        ),
    ];
    for (top, cluster, expected) in cases {
        let text = yaml(top, cluster);
        assert_eq!(error(&text), expected, "for {text:?}");
    }
}

#[test]
fn bad_documents_and_cluster_lists_are_errors() {
    let two_named_a =
        "clusters: [{name: a, bootstrap_servers: b}, {name: a, bootstrap_servers: c}]";
    let cases = [
        ("clusters: []", "clusters: at least one cluster is required"),
        (
            "listen: \":9308\"",
            "clusters: at least one cluster is required",
        ),
        (
            "clusters: [{name: a}]",
            "clusters[0]: missing field `bootstrap_servers`",
        ),
        (
            two_named_a,
            r#"clusters[1].name: duplicate cluster name "a""#,
        ),
        (
            "clusters: [{name: \" \", bootstrap_servers: b}]",
            "clusters[0].name: must not be empty",
        ),
        (
            "- a\n- b",
            "the configuration must be a YAML mapping of settings",
        ),
        ("", "the configuration must be a YAML mapping of settings"),
    ];
    for (text, expected) in cases {
        assert_eq!(error(text), expected, "for {text:?}");
    }
    // Syntax errors come from the YAML parser, with a position instead of a path.
    let message = error("clusters: [\n");
    assert!(
        message.starts_with("invalid YAML: ") && message.contains("line "),
        "{message}"
    );
    // Regex syntax errors span lines (pattern, caret, reason); only the reason is kept.
    let message = error(&yaml("", "groups: {include: [\".*\", \"(\"]}"));
    let expected = r#"clusters[0].groups.include[1]: invalid regex "(": unclosed group"#;
    assert_eq!(message, expected);
}

#[test]
fn cluster_poll_interval_overrides_the_top_level_one() {
    let text = "poll_interval: 1m
clusters:
  - {name: a, bootstrap_servers: x, poll_interval: 1h 30m}
  - {name: b, bootstrap_servers: y}";
    let config = parse_in(text, &[], None).unwrap();
    assert_eq!(config.poll_interval, Duration::from_secs(60));
    assert_eq!(
        config.clusters[0].poll_interval,
        Duration::from_secs(90 * 60)
    );
    // No override: the top-level value, not the built-in default.
    assert_eq!(config.clusters[1].poll_interval, Duration::from_secs(60));
}

#[test]
fn selectors_match_anywhere_and_exclude_wins() {
    let text = yaml(
        "",
        "groups: {include: [\"^payments-\", billing], exclude: [\"-test$\"]}\ntopics: {}",
    );
    let config = parse_in(&text, &[], None).unwrap();
    let (groups, topics) = (&config.clusters[0].groups, &config.clusters[0].topics);
    let cases = [
        // (selector, name, expected, why)
        (
            groups,
            "payments-api",
            true,
            "anchored include matches at the start",
        ),
        (
            groups,
            "old-payments-api",
            false,
            "^ anchors: not at the start",
        ),
        (
            groups,
            "eu-billing-worker",
            true,
            "unanchored include matches anywhere",
        ),
        (
            groups,
            "payments-api-test",
            false,
            "exclude wins over include",
        ),
        (groups, "shipping", false, "no include matches"),
        (
            topics,
            "orders",
            true,
            "default include .* matches everything",
        ),
        (
            topics,
            "__consumer_offsets",
            false,
            "default exclude ^__ drops internal topics",
        ),
        (
            topics,
            "__transaction_state",
            false,
            "default exclude ^__ drops internal topics",
        ),
        (topics, "orders__v2", true, "^__ only excludes the prefix"),
    ];
    for (selector, name, expected, why) in cases {
        assert_eq!(selector.matches(name), expected, "{name}: {why}");
    }
    let defaults = parse_in(&yaml("", ""), &[], None).unwrap();
    assert!(
        defaults.clusters[0].groups.matches("__anything"),
        "default groups exclude nothing"
    );
    // An explicit empty exclude list replaces the default one.
    let all_topics = parse_in(&yaml("", "topics: {exclude: []}"), &[], None).unwrap();
    assert!(all_topics.clusters[0].topics.matches("__consumer_offsets"));
}

#[test]
fn load_names_the_file_and_resolves_relative_paths_against_its_directory() {
    let missing = Path::new("/nonexistent/lagwatch.yaml");
    let message = Config::load(missing).unwrap_err().to_string();
    assert!(
        message.starts_with("cannot read config file /nonexistent/lagwatch.yaml: "),
        "{message}"
    );

    let dir = scratch_dir("load");
    std::fs::write(dir.join("pw"), "from-file\n").unwrap();
    let file = dir.join("lagwatch.yaml");
    std::fs::write(
        &file,
        yaml(
            "web_config_file: web.yml",
            "kafka: {sasl.password: {file: pw}}",
        ),
    )
    .unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.web_config_file, Some(dir.join("web.yml")));
    assert_eq!(
        property(&config.clusters[0], "sasl.password").value,
        "from-file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn granularity_orders_coarse_to_fine_and_spells_as_yaml() {
    assert!(Granularity::Group < Granularity::Topic && Granularity::Topic < Granularity::Partition);
    for granularity in [
        Granularity::Group,
        Granularity::Topic,
        Granularity::Partition,
    ] {
        let text = yaml(&format!("granularity: {}", granularity.as_str()), "");
        assert_eq!(parse_in(&text, &[], None).unwrap().granularity, granularity);
    }
}

#[test]
fn literal_names_are_the_exact_names_the_include_patterns_spell_out() {
    let re = |p: &str| Regex::new(p).unwrap();
    let selector = Selector {
        include: vec![
            // 1. Exact names, with a dot written either way.
            re("^orders$"),
            re("^billing\\.events$"),
            re("^audit.v1$"),
            // 2. Patterns that select more than one name: not literal.
            re("^payments-.*$"),
            re("shipments"),
            re("^(a|b)$"),
            // 3. An exact name the exclude list removes.
            re("^internal$"),
        ],
        exclude: vec![re("^internal$")],
    };
    assert_eq!(
        selector.literal_names(),
        ["audit.v1", "billing.events", "orders"]
    );
}
