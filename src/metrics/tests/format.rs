//! The exposition formats: descriptor blocks, exporter families, text vs OpenMetrics, gzip,
//! escaping, stage labels.

use super::*;

#[test]
fn every_family_has_one_descriptor_block_across_clusters() {
    for compat in [false, true] {
        let mut s = settings(Granularity::Partition);
        s.compat_kafka_lag_exporter = compat;
        let r = render(
            &[
                cluster("a", Some(report_with_analytics())),
                cluster("b", Some(report_with_analytics())),
                cluster("c", None),
            ],
            &s,
        );
        for exposition in [&text(&r), &om(&r)] {
            let mut seen = std::collections::HashSet::new();
            let mut current = "";
            for line in exposition.lines() {
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let name = rest.split(' ').next().unwrap_or_default();
                    assert!(seen.insert(name.to_owned()), "{name} has two TYPE lines");
                    current = name;
                } else if !line.starts_with('#') {
                    // Every sample belongs to the family of the last TYPE line.
                    let base = current.strip_suffix("_total").unwrap_or(current);
                    let name = line.split(['{', ' ']).next().unwrap_or_default();
                    let suffix = name.strip_prefix(base);
                    assert!(
                        matches!(suffix, Some("" | "_total" | "_sum" | "_count" | "_bucket")),
                        "{line} after TYPE {current} (compat {compat})"
                    );
                }
            }
        }
    }
}

#[test]
fn cluster_without_report_has_only_exporter_families() {
    let mut down = cluster("b", None);
    down.errors.insert(Stage::Metadata, 3);
    down.requests.insert("bootstrap".into(), 7);
    down.poll_duration.observe(0.07);
    down.timestamp_reads_pending = 4;
    let mut up = cluster("a", Some(report()));
    up.last_success = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
    let r = render(&[up, down], &settings(Granularity::Partition));
    let t = &text(&r);
    assert!(!t.contains(r#"kafka_consumergroup_lag_messages{cluster="b""#));
    assert!(kafka_samples(t)
        .iter()
        .all(|l| l.contains(r#"cluster="a""#)));
    let lines: Vec<&str> = t.lines().collect();
    for line in [
        r#"lagwatch_kafka_up{cluster="a"} 1"#,
        r#"lagwatch_kafka_up{cluster="b"} 0"#,
        r#"lagwatch_last_poll_success_timestamp_seconds{cluster="a"} 1700000000.5"#,
        r#"lagwatch_poll_errors_total{cluster="b",stage="metadata"} 3"#,
        r#"lagwatch_poll_errors_total{cluster="b",stage="read_timestamps"} 0"#,
        r#"lagwatch_poll_errors_total{cluster="a",stage="offset_fetch"} 0"#,
        r#"lagwatch_kafka_requests_total{cluster="b",broker="bootstrap"} 7"#,
        r#"lagwatch_poll_duration_seconds_bucket{le="0.05",cluster="b"} 0"#,
        r#"lagwatch_poll_duration_seconds_bucket{le="0.1",cluster="b"} 1"#,
        r#"lagwatch_poll_duration_seconds_bucket{le="+Inf",cluster="b"} 1"#,
        r#"lagwatch_poll_duration_seconds_count{cluster="b"} 1"#,
        r#"lagwatch_poll_duration_seconds_count{cluster="a"} 0"#,
        r#"lagwatch_series{cluster="b"} 0"#,
        r#"lagwatch_timestamp_reads_pending{cluster="b"} 4"#,
    ] {
        assert!(lines.contains(&line), "missing {line}\n{t}");
    }
    // Never polled successfully: no timestamp series at all.
    assert!(!t.contains(r#"lagwatch_last_poll_success_timestamp_seconds{cluster="b"}"#));
    // Every stage, for every cluster.
    let stages = lines
        .iter()
        .filter(|l| l.starts_with("lagwatch_poll_errors_total{"))
        .count();
    assert_eq!(stages, 2 * Stage::ALL.len());
}

#[test]
fn text_and_openmetrics_differ_only_in_format() {
    let r = render(
        &[cluster("a", Some(report()))],
        &settings(Granularity::Partition),
    );
    let (t, o) = (&text(&r), &om(&r));
    // (format, line, expected present)
    let cases = [
        ("text", "# TYPE lagwatch_poll_errors_total counter", true),
        (
            "text",
            "# HELP lagwatch_poll_errors_total Poll stages that failed, by stage, since start.",
            true,
        ),
        ("text", "# TYPE lagwatch_poll_errors counter", false),
        ("openmetrics", "# TYPE lagwatch_poll_errors counter", true),
        (
            "openmetrics",
            "# TYPE lagwatch_poll_errors_total counter",
            false,
        ),
        ("text", "# EOF", false),
        (
            "openmetrics",
            "# UNIT kafka_consumergroup_lag_messages messages",
            true,
        ),
        (
            "openmetrics",
            "# UNIT lagwatch_poll_duration_seconds seconds",
            true,
        ),
        (
            "text",
            "# TYPE kafka_consumergroup_lag_messages gauge",
            true,
        ),
        (
            "openmetrics",
            "# TYPE kafka_consumergroup_lag_messages gauge",
            true,
        ),
    ];
    for (format, line, want) in cases {
        let exposition = if format == "text" { t } else { o };
        assert_eq!(
            exposition.lines().any(|l| l == line),
            want,
            "{format}: {line}"
        );
    }
    assert!(!t.contains("# UNIT"));
    assert!(o.ends_with("\n# EOF\n"));
    assert_eq!(o.matches("# EOF").count(), 1);
    // The text format is derived from the OpenMetrics one: the same sample lines, in the same
    // order (counter samples are `_total` in both formats).
    fn samples(s: &str) -> Vec<&str> {
        s.lines().filter(|l| !l.starts_with('#')).collect()
    }
    assert_eq!(samples(t), samples(o));
    assert!(t.contains("\nlagwatch_poll_errors_total{cluster=\"a\",stage=\"metadata\"} 0\n"));
}

#[test]
fn gzip_copies_round_trip() {
    let r = render(
        &[cluster("a", Some(report())), cluster("b", None)],
        &settings(Granularity::Partition),
    );
    for (encoding, plain) in [(&r.text, text(&r)), (&r.openmetrics, om(&r))] {
        let gz = encoding.gzip();
        assert!(gz.starts_with(&[0x1f, 0x8b]), "gzip magic");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .expect("valid gzip");
        assert_eq!(out, plain.as_bytes());
        assert_eq!(encoding.len(), plain.len());
        assert!(gz.len() < plain.len());
    }
}

#[test]
fn label_values_are_escaped() {
    // (group id, how it appears in the exposition)
    let cases = [
        (r#"say "hi""#, r#"group="say \"hi\"""#),
        (r"back\slash", r#"group="back\\slash""#),
        ("new\nline", r#"group="new\nline""#),
        ("ünïcode", r#"group="ünïcode""#),
    ];
    for (id, escaped) in cases {
        let report = report_with_groups(vec![GroupSnapshot {
            id: id.into(),
            group_type: GroupType::Classic,
            state: GroupState::Stable,
            members: Some(1),
            offsets: vec![commit("orders", 0, 4)],
        }]);
        let r = render(&[cluster("a", Some(report))], &settings(Granularity::Group));
        for exposition in [&text(&r), &om(&r)] {
            let line = format!(
                r#"kafka_consumergroup_lag_messages{{cluster="a",{escaped},group_type="classic"}} 6"#
            );
            assert!(
                exposition.lines().any(|l| l == line),
                "{line}\n{exposition}"
            );
        }
    }
}

#[test]
fn no_clusters_still_renders_build_info_and_the_servers_own_figures() {
    let mut settings = settings(Granularity::Topic);
    settings.server.scrape_duration = Histogram::new([0.001]);
    settings.server.scrape_duration.observe(0.0004);
    settings.server.closed_by_timeout.inc_by(3);
    settings.server.closed_at_limit.inc();
    let r = render(&[], &settings);
    assert_eq!(
        text(&r),
        "# HELP lagwatch_scrape_duration_seconds Server time of /metrics requests, from the request's headers read to its last byte written to the socket, as of the last render.\n\
         # TYPE lagwatch_scrape_duration_seconds histogram\n\
         lagwatch_scrape_duration_seconds_sum 0.0004\n\
         lagwatch_scrape_duration_seconds_count 1\n\
         lagwatch_scrape_duration_seconds_bucket{le=\"0.001\"} 1\n\
         lagwatch_scrape_duration_seconds_bucket{le=\"+Inf\"} 1\n\
         # HELP lagwatch_http_connections_closed_total HTTP connections lagwatch closed itself since start, by reason: request_timeout (a request's headers or its response not done within web.request_timeout) or connection_limit (an idle connection closed to make room at web.max_connections).\n\
         # TYPE lagwatch_http_connections_closed_total counter\n\
         lagwatch_http_connections_closed_total{reason=\"request_timeout\"} 3\n\
         lagwatch_http_connections_closed_total{reason=\"connection_limit\"} 1\n\
         # HELP lagwatch_build_info Version and revision of the running lagwatch; value 1.\n\
         # TYPE lagwatch_build_info gauge\n\
         lagwatch_build_info{version=\"0.1.0\",revision=\"abc123\"} 1\n"
    );
    assert!(om(&r).ends_with("# EOF\n"));
    assert_eq!((r.series, r.dropped), (0, 0));
}

#[test]
fn stage_labels_are_the_documented_ones() {
    let labels: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        labels,
        [
            "metadata",
            "list_offsets",
            "list_groups",
            "describe_groups",
            "offset_fetch",
            "describe_configs",
            "read_timestamps",
            "client",
            "panic"
        ]
    );
}
