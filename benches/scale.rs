//! Scale benchmarks on synthetic snapshots (PRODUCT.md §11):
//! - model: 20,000 partitions read by 2,000 groups × 500 partitions (1,000,000 group-partitions);
//! - render of that report at `topic` granularity;
//! - render of ~100,000 partition-level series, gzip copies included.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use lagwatch::config::Granularity;
use lagwatch::metrics::{self, ClusterMetrics, RenderSettings};
use lagwatch::model::{
    self, CommittedOffset, GroupSnapshot, GroupState, PartitionOffsets, Snapshot, TopicConfig,
    TopicSnapshot,
};

/// `topics` topics of `partitions_per_topic` partitions; `groups` groups, each reading
/// `topics_per_group` consecutive topics.
fn snapshot(
    topics: usize,
    partitions_per_topic: i32,
    groups: usize,
    topics_per_group: usize,
) -> Snapshot {
    let names: Vec<Arc<str>> = (0..topics)
        .map(|t| Arc::from(format!("topic-{t:05}")))
        .collect();
    let topic_snapshots = names
        .iter()
        .map(|name| TopicSnapshot {
            name: name.clone(),
            partitions: (0..partitions_per_topic)
                .map(|p| PartitionOffsets {
                    partition: p,
                    earliest: 1_000,
                    latest: 1_000_000 + i64::from(p),
                })
                .collect(),
            config: TopicConfig {
                retention_ms: Some(604_800_000),
                retention_bytes: None,
                cleanup_policy: Some("delete".into()),
            },
        })
        .collect();
    let group_snapshots = (0..groups)
        .map(|g| {
            let first = (g * topics_per_group) % topics;
            let mut offsets = Vec::new();
            for t in 0..topics_per_group {
                let topic = &names[(first + t) % topics];
                for p in 0..partitions_per_topic {
                    offsets.push(CommittedOffset {
                        topic: topic.clone(),
                        partition: p,
                        offset: 999_000 + (g as i64 % 1_000),
                    });
                }
            }
            offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            GroupSnapshot {
                id: format!("group-{g:05}"),
                state: GroupState::Stable,
                members: Some(4),
                offsets,
            }
        })
        .collect();
    Snapshot {
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        topics: topic_snapshots,
        groups: group_snapshots,
    }
}

fn cluster(report: model::Report) -> ClusterMetrics {
    let mut c = ClusterMetrics::new("bench".to_string());
    c.report = Some(Arc::new(report));
    c.up = true;
    c
}

fn settings(granularity: Granularity) -> RenderSettings {
    RenderSettings {
        granularity,
        max_series: usize::MAX,
        version: "bench",
        revision: "bench".into(),
        compat_kafka_lag_exporter: false,
        shard_zero: true,
    }
}

fn bench(c: &mut Criterion) {
    // 2,000 topics × 10 partitions = 20,000 partitions; 2,000 groups × 50 topics × 10 = 1,000,000.
    let large = snapshot(2_000, 10, 2_000, 50);
    let mut g = c.benchmark_group("million_group_partitions");
    g.sample_size(10);
    g.bench_function("model_report", |b| {
        b.iter(|| black_box(model::report(black_box(&large))))
    });
    let clusters = [cluster(model::report(&large))];
    let topic = settings(Granularity::Topic);
    g.bench_function("render_topic_granularity", |b| {
        b.iter(|| black_box(metrics::render(black_box(&clusters), &topic)))
    });
    g.finish();

    // 500 topics × 20 partitions, 200 groups × 10 topics: 40,000 group-partitions, so with the
    // partition-level offset families about 100,000 series.
    let medium = snapshot(500, 20, 200, 10);
    let clusters = [cluster(model::report(&medium))];
    let partition = settings(Granularity::Partition);
    let rendered = metrics::render(&clusters, &partition);
    eprintln!("partition granularity: {} series", rendered.series);
    let mut g = c.benchmark_group("partition_series");
    g.sample_size(20);
    g.bench_function("render_with_gzip", |b| {
        b.iter(|| black_box(metrics::render(black_box(&clusters), &partition)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
