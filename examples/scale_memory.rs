//! Peak memory at the PRODUCT.md §11 scale: 20,000 partitions read by 2,000 groups
//! (1,000,000 group-partitions), with `time_lag.history` samples per partition and the status
//! windows, over several polls: model, analytics and a topic-granularity render, as the daemon
//! runs them. Prints the peak resident set size (Linux `VmHWM`) and the time per poll.
//!
//! Run: `cargo run --release --example scale_memory`

use std::sync::Arc;
use std::time::Instant;

use lagwatch::config::Granularity;
use lagwatch::metrics;
use lagwatch::model::analytics::{AnalyticsSettings, ClusterAnalytics};

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let mut snapshot = synthetic::snapshot(2_000, 10, 2_000, 50);
    let group_partitions: usize = snapshot.groups.iter().map(|g| g.offsets.len()).sum();
    let mut analytics = ClusterAnalytics::new(AnalyticsSettings::default());
    let settings = synthetic::settings(Granularity::Topic);
    let mut cluster = synthetic::cluster(synthetic::report(&snapshot));
    let polls: usize = 70; // more than time_lag.history (64): every history ring is full
    let mut seconds = Vec::with_capacity(polls);
    for _ in 0..polls {
        synthetic::advance(&mut snapshot, 100);
        let started = Instant::now();
        let plan = analytics.plan_reads(&snapshot);
        let result = analytics.finish(&snapshot, &[], snapshot.taken_at);
        cluster.report = Some(Arc::new(result.report));
        let rendered = metrics::render(std::slice::from_ref(&cluster), &settings);
        seconds.push(started.elapsed().as_secs_f64());
        std::hint::black_box((plan.reads.len(), rendered.text.len()));
    }
    // The first poll has no history yet: every commit is a timestamp read to plan.
    let first = seconds[0];
    let mut warm = seconds[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    println!(
        "{group_partitions} group-partitions, {polls} polls of model + analytics + topic render: first {first:.3} s, warm median {:.3} s, warm max {:.3} s; peak RSS {:.0} MiB",
        warm[warm.len() / 2],
        warm[warm.len() - 1],
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}
