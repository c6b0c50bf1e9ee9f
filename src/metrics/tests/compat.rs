//! `compat: [kafka_lag_exporter]`: the aliases, their values, granularity and the guard.

use super::*;

#[test]
fn compat_off_emits_no_kafka_lag_exporter_family() {
    let r = render(
        &[cluster("a", Some(report_with_analytics()))],
        &settings(Granularity::Partition),
    );
    for exposition in [&text(&r), &om(&r)] {
        assert!(
            !exposition.contains("kafka_consumergroup_group_"),
            "{exposition}"
        );
        assert!(!exposition.contains("cluster_name"), "{exposition}");
    }
    assert_eq!((r.series, r.dropped), (80, 0));
}

#[test]
fn compat_aliases_carry_the_native_values() {
    let mut s = settings(Granularity::Partition);
    let native = render(&[cluster("a", Some(report_with_analytics()))], &s);
    s.compat_kafka_lag_exporter = true;
    let r = render(&[cluster("a", Some(report_with_analytics()))], &s);
    assert_eq!((r.series, r.dropped), (80 + 23, 0));
    for exposition in [&text(&r), &om(&r)] {
        // (kafka-lag-exporter family, lagwatch family with the same series and values)
        let aliases = [
            (
                "kafka_consumergroup_group_sum_lag",
                "kafka_consumergroup_lag_messages",
            ),
            (
                "kafka_consumergroup_group_max_lag_seconds",
                "kafka_consumergroup_lag_seconds",
            ),
            (
                "kafka_consumergroup_group_topic_sum_lag",
                "kafka_consumergroup_topic_lag_messages",
            ),
            (
                "kafka_consumergroup_group_lag",
                "kafka_consumergroup_partition_lag_messages",
            ),
            (
                "kafka_consumergroup_group_lag_seconds",
                "kafka_consumergroup_partition_lag_seconds",
            ),
            (
                "kafka_consumergroup_group_offset",
                "kafka_consumergroup_partition_committed_offset",
            ),
        ];
        for (alias, family) in aliases {
            // lagwatch's group-level families carry `group_type`; kafka-lag-exporter's keep
            // that exporter's labels.
            let want: Vec<(String, f64)> = family_samples(exposition, family)
                .into_iter()
                .map(|(labels, v)| (labels.replace(",group_type=\"classic\"", ""), v))
                .collect();
            assert!(!want.is_empty(), "{family}");
            assert_eq!(
                family_samples(exposition, alias),
                want,
                "{alias} vs {family}"
            );
        }
        // max_lag: the highest partition lag of each group.
        let mut max_lag = std::collections::BTreeMap::<String, f64>::new();
        for (labels, lag) in
            family_samples(exposition, "kafka_consumergroup_partition_lag_messages")
        {
            let group = labels
                .split(",topic=")
                .next()
                .unwrap_or_default()
                .to_owned();
            let max = max_lag.entry(group + "}").or_insert(f64::MIN);
            *max = max.max(lag);
        }
        let max_lag: Vec<(String, f64)> = max_lag.into_iter().collect();
        assert_eq!(
            family_samples(exposition, "kafka_consumergroup_group_max_lag"),
            max_lag
        );
        let lines: Vec<&str> = exposition.lines().collect();
        for line in [
            r#"kafka_consumergroup_group_max_lag{cluster="a",cluster_name="a",group="billing"} 20"#,
            r#"kafka_consumergroup_group_max_lag{cluster="a",cluster_name="a",group="shipping"} 0"#,
            r#"kafka_consumergroup_group_sum_lag{cluster="a",cluster_name="a",group="billing"} 30"#,
            r#"kafka_consumergroup_group_max_lag_seconds{cluster="a",cluster_name="a",group="billing"} 36.0"#,
            r#"kafka_consumergroup_group_topic_sum_lag{cluster="a",cluster_name="a",group="billing",topic="orders"} 26"#,
            r#"kafka_consumergroup_group_lag{cluster="a",cluster_name="a",group="billing",topic="orders",partition="2"} 20"#,
            r#"kafka_consumergroup_group_lag_seconds{cluster="a",cluster_name="a",group="billing",topic="payments",partition="0"} 12.5"#,
            // Shared names: emitted once, with cluster_name beside cluster.
            r#"kafka_partition_latest_offset{cluster="a",cluster_name="a",topic="orders",partition="2"} 30"#,
            r#"kafka_partition_earliest_offset{cluster="a",cluster_name="a",topic="payments",partition="0"} 5"#,
        ] {
            assert!(lines.contains(&line), "missing {line}\n{exposition}");
        }
        // Time lag not read yet: absent from the alias too.
        assert!(!exposition.contains(
            r#"kafka_consumergroup_group_lag_seconds{cluster="a",cluster_name="a",group="billing",topic="orders",partition="2"}"#
        ));
        assert_eq!(
            exposition
                .matches("# TYPE kafka_partition_latest_offset gauge\n")
                .count(),
            1
        );
        // Only the shared and kafka-lag-exporter families carry cluster_name.
        for line in kafka_samples(exposition) {
            let aliased = line.starts_with("kafka_consumergroup_group_")
                || line.starts_with("kafka_partition_");
            assert_eq!(line.contains("cluster_name="), aliased, "{line}");
        }
    }
    // The lagwatch families are unchanged by compat: same samples, same order.
    let (native_text, compat_text) = (text(&native), text(&r));
    let native_lines: Vec<&str> = native_text
        .lines()
        .filter(|l| l.starts_with("kafka_") && !l.starts_with("kafka_partition_"))
        .collect();
    let compat_lines: Vec<&str> = compat_text
        .lines()
        .filter(|l| l.starts_with("kafka_") && !l.starts_with("kafka_partition_"))
        .filter(|l| !l.starts_with("kafka_consumergroup_group_"))
        .collect();
    assert_eq!(native_lines, compat_lines);
}

#[test]
fn compat_families_follow_granularity_and_the_guard() {
    // (granularity, max_series, series, dropped, families present, families absent)
    let group_level = [
        "kafka_consumergroup_group_max_lag",
        "kafka_consumergroup_group_max_lag_seconds",
        "kafka_consumergroup_group_sum_lag",
    ];
    let topic_level = ["kafka_consumergroup_group_topic_sum_lag"];
    let partition_level = [
        "kafka_consumergroup_group_lag",
        "kafka_consumergroup_group_lag_seconds",
        "kafka_consumergroup_group_offset",
    ];
    let with = |parts: &[&[&'static str]]| parts.concat();
    type Case = (
        Granularity,
        usize,
        usize,
        usize,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: [Case; 5] = [
        (
            Granularity::Group,
            100_000,
            32 + 6,
            0,
            with(&[&group_level]),
            with(&[&topic_level, &partition_level]),
        ),
        (
            Granularity::Topic,
            100_000,
            32 + 6 + 18 + 3,
            0,
            with(&[&group_level, &topic_level]),
            with(&[&partition_level]),
        ),
        (
            Granularity::Partition,
            103,
            103,
            0,
            with(&[&group_level, &topic_level, &partition_level]),
            vec![],
        ),
        // The compat series count: one over the limit drops the partition level, theirs too.
        (
            Granularity::Partition,
            102,
            59,
            44,
            with(&[&group_level, &topic_level]),
            with(&[&partition_level]),
        ),
        (
            Granularity::Partition,
            58,
            38,
            65,
            with(&[&group_level]),
            with(&[&topic_level, &partition_level]),
        ),
    ];
    for (granularity, max_series, series, dropped, present, absent) in cases {
        let mut s = settings(granularity);
        s.compat_kafka_lag_exporter = true;
        s.max_series = max_series;
        let r = render(&[cluster("a", Some(report_with_analytics()))], &s);
        let t = &text(&r);
        let why = format!("{granularity:?}, max_series {max_series}");
        assert_eq!((r.series, r.dropped), (series, dropped), "{why}");
        assert_eq!(kafka_samples(t).len(), series, "{why}");
        for name in present {
            assert!(has_family(t, name), "{why}: {name} missing");
        }
        for name in absent {
            assert!(!has_family(t, name), "{why}: {name} present");
        }
    }
}
