//! The analytics families: time lag, eviction, skew, status; exact values and absences.

use super::*;

#[test]
fn analytics_families_emit_exact_values() {
    let r = render(
        &[cluster("a", Some(report_with_analytics()))],
        &settings(Granularity::Partition),
    );
    for exposition in [&text(&r), &om(&r)] {
        let lines: Vec<&str> = exposition.lines().collect();
        let expected = [
            r#"kafka_consumergroup_status{cluster="a",group="billing",group_type="classic",status="evicting"} 1"#,
            r#"kafka_consumergroup_status{cluster="a",group="shipping",group_type="classic",status="ok"} 1"#,
            r#"kafka_consumergroup_lag_seconds{cluster="a",group="billing",group_type="classic"} 36.0"#,
            r#"kafka_consumergroup_lag_seconds{cluster="a",group="shipping",group_type="classic"} 0.0"#,
            r#"kafka_consumergroup_eviction_seconds{cluster="a",group="billing",group_type="classic"} 3564.0"#,
            r#"kafka_consumergroup_retention_usage_ratio{cluster="a",group="billing",group_type="classic"} 0.01"#,
            r#"kafka_consumergroup_retention_usage_ratio{cluster="a",group="shipping",group_type="classic"} 0.0"#,
            r#"kafka_consumergroup_evicted_messages{cluster="a",group="billing",group_type="classic"} 4"#,
            r#"kafka_consumergroup_evicted_messages{cluster="a",group="shipping",group_type="classic"} 0"#,
            r#"kafka_consumergroup_commit_stall_seconds{cluster="a",group="billing",group_type="classic"} 90.0"#,
            r#"kafka_consumergroup_topic_lag_seconds{cluster="a",group="billing",topic="payments"} 12.5"#,
            r#"kafka_consumergroup_topic_eviction_seconds{cluster="a",group="billing",topic="orders"} 3564.0"#,
            r#"kafka_consumergroup_topic_retention_usage_ratio{cluster="a",group="billing",topic="orders"} 0.01"#,
            r#"kafka_consumergroup_topic_evicted_messages{cluster="a",group="billing",topic="payments"} 4"#,
            r#"kafka_consumergroup_topic_commit_stall_seconds{cluster="a",group="billing",topic="orders"} 90.0"#,
            r#"kafka_consumergroup_topic_lag_skew_seconds{cluster="a",group="billing",topic="orders"} 36.0"#,
            r#"kafka_consumergroup_rewinds_total{cluster="a",group="billing",topic="orders"} 1"#,
            r#"kafka_consumergroup_rewinds_total{cluster="a",group="shipping",topic="orders"} 0"#,
            r#"kafka_consumergroup_rewound_messages_total{cluster="a",group="billing",topic="orders"} 7"#,
            r#"kafka_consumergroup_partition_lag_seconds{cluster="a",group="billing",topic="orders",partition="0"} 36.0"#,
            r#"kafka_consumergroup_partition_eviction_seconds{cluster="a",group="billing",topic="orders",partition="0"} 3564.0"#,
            r#"kafka_consumergroup_partition_evicted_messages{cluster="a",group="billing",topic="payments",partition="0"} 4"#,
        ];
        for line in expected {
            assert!(lines.contains(&line), "missing {line}\n{exposition}");
        }
        // Absent, not -1 or NaN: time lag not read yet (orders/2); eviction countdown of a
        // partition that is not behind, and of a topic whose retention is unknown (payments).
        for absent in [
            r#"kafka_consumergroup_partition_lag_seconds{cluster="a",group="billing",topic="orders",partition="2"}"#,
            r#"kafka_consumergroup_partition_eviction_seconds{cluster="a",group="billing",topic="orders",partition="1"}"#,
            r#"kafka_consumergroup_topic_eviction_seconds{cluster="a",group="billing",topic="payments"}"#,
            r#"kafka_consumergroup_topic_retention_usage_ratio{cluster="a",group="billing",topic="payments"}"#,
            r#"kafka_consumergroup_eviction_seconds{cluster="a",group="shipping",group_type="classic"}"#,
        ] {
            assert!(!exposition.contains(absent), "{absent}\n{exposition}");
        }
        assert!(!exposition.contains("NaN"));
        assert_eq!(kafka_samples(exposition).len(), 80);
    }
    // Counters: `_total` in both formats' samples, TYPE names the family without it in
    // OpenMetrics only.
    assert!(text(&r).contains("# TYPE kafka_consumergroup_rewinds_total counter\n"));
    assert!(om(&r).contains("# TYPE kafka_consumergroup_rewinds counter\n"));
    assert!(om(&r).contains("# UNIT kafka_consumergroup_retention_usage_ratio ratio\n"));
    assert_eq!((r.series, r.dropped), (80, 0));
}
