//! Scale benchmarks on synthetic snapshots (PRODUCT.md §11):
//! - model: 20,000 partitions read by 2,000 groups × 500 partitions (1,000,000 group-partitions);
//! - render of that report at `topic` granularity;
//! - render of ~100,000 partition-level series, gzip copies included.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lagwatch::config::Granularity;
use lagwatch::metrics;
use lagwatch::model::analytics::{AnalyticsSettings, ClusterAnalytics};

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::{advance, cluster, report, settings, snapshot};

fn bench(c: &mut Criterion) {
    // 2,000 topics × 10 partitions = 20,000 partitions; 2,000 groups × 50 topics × 10 = 1,000,000.
    let large = snapshot(2_000, 10, 2_000, 50);
    let mut g = c.benchmark_group("million_group_partitions");
    g.sample_size(10);
    // The whole model (offset lag, time lag, eviction, skew, status, the report): one poll's two
    // phases on warm state (history and windows already built by earlier polls), as every poll
    // but the first runs them.
    let mut analytics = ClusterAnalytics::new(AnalyticsSettings::default());
    let mut poll = large.clone();
    for _ in 0..3 {
        advance(&mut poll, 100);
        analytics.plan_reads(&poll);
        analytics.finish(&poll, &[], poll.taken_at);
    }
    g.bench_function("analytics_poll", |b| {
        b.iter(|| {
            advance(&mut poll, 100);
            let plan = analytics.plan_reads(black_box(&poll));
            black_box(plan.reads.len());
            black_box(analytics.finish(&poll, &[], poll.taken_at))
        })
    });
    let clusters = [cluster(report(&large))];
    let topic = settings(Granularity::Topic);
    g.bench_function("render_topic_granularity", |b| {
        b.iter(|| black_box(metrics::render(black_box(&clusters), &topic)))
    });
    g.finish();

    // 500 topics × 20 partitions, 200 groups × 10 topics: 40,000 group-partitions, so with the
    // partition-level offset families about 100,000 series.
    let medium = snapshot(500, 20, 200, 10);
    let clusters = [cluster(report(&medium))];
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
