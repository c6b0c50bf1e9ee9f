//! What is served about each cluster between polls: the latest good report and the exporter's
//! own figures (up, last success, poll durations, errors by stage, requests, pending reads).
//! Written by the poll loops (`app`), read by the renderers (`metrics`, `status_page`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::metrics::histogram::Histogram;

use crate::kafka::Stage;
use crate::model::Report;

/// Upper bounds of the `lagwatch_poll_duration_seconds` buckets: a healthy poll takes from tens
/// of milliseconds (small cluster) to tens of seconds (thousands of groups); Kafka timeouts make
/// the slow end.
const POLL_DURATION_BUCKETS: [f64; 11] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// One cluster as it is served: its latest good report and the exporter's own figures about
/// it. One per configured cluster, in config order; the poll loop writes it, the metrics render
/// and the `/` page read it.
#[derive(Clone, Debug)]
pub struct ClusterState {
    /// The `cluster` label value.
    pub name: String,
    /// The data to serve; `None` when there is no good data (never polled successfully, or the
    /// last good data is older than 3 poll intervals): then only exporter families are emitted.
    pub report: Option<Arc<Report>>,
    /// When `report` was made (on tokio's clock, which tests pause): the age that decides when
    /// it stops being served, judged whenever anything is rendered.
    pub report_at: Option<tokio::time::Instant>,
    /// `lagwatch_kafka_up`: the last poll read metadata and offsets.
    pub up: bool,
    /// `lagwatch_last_poll_success_timestamp_seconds`; absent if never.
    pub last_success: Option<SystemTime>,
    /// `lagwatch_poll_duration_seconds`; the poll loop observes into it (clones share buckets).
    pub poll_duration: Histogram,
    /// Cumulative `lagwatch_poll_errors_total{stage}`; every stage is emitted, 0 when absent.
    pub errors: BTreeMap<Stage, u64>,
    /// Cumulative `lagwatch_kafka_requests_total{broker}`.
    pub requests: BTreeMap<String, u64>,
    /// `lagwatch_timestamp_reads_pending`.
    pub timestamp_reads_pending: u64,
    /// `lagwatch_unauthorized_topics`, `lagwatch_unauthorized_groups`: as of the last poll that
    /// got past the metadata and offsets stages.
    pub unauthorized_topics: u64,
    pub unauthorized_groups: u64,
}

impl ClusterState {
    /// A cluster not polled yet: no report, down, no counts.
    pub fn new(name: impl Into<String>) -> ClusterState {
        ClusterState {
            name: name.into(),
            report: None,
            report_at: None,
            up: false,
            last_success: None,
            poll_duration: histogram_for_poll_duration(),
            errors: BTreeMap::new(),
            requests: BTreeMap::new(),
            timestamp_reads_pending: 0,
            unauthorized_topics: 0,
            unauthorized_groups: 0,
        }
    }
}

/// A histogram with the `lagwatch_poll_duration_seconds` buckets (50 ms to 2 min).
pub fn histogram_for_poll_duration() -> Histogram {
    Histogram::new(POLL_DURATION_BUCKETS)
}
