//! Metrics: renders the latest report of every cluster, plus the exporter's own metrics, into the
//! buffers `/metrics` serves. Rendering happens once per poll, never per scrape.
//!
//! - `families`: the table of every family (name, type, unit, level, origin, rows); one entry
//!   per family, kafka-lag-exporter's compatibility families included.
//! - `guard`: the `max_series` guard, which drops whole levels of detail, finest first.
//! - `encode`: a prometheus-client `Collector` over the reports, family by family, encoded as
//!   OpenMetrics and Prometheus text straight into their gzip copies, the only ones kept.
//!
//! `docs/metrics.md` documents every family, the granularity and guard rules and content
//! negotiation; `docs/migration.md` the compatibility families.

mod encode;
mod families;
mod guard;
#[cfg(test)]
mod tests;

use std::io::Read as _;
use std::time::UNIX_EPOCH;

use bytes::buf::Reader;
use bytes::{Buf as _, Bytes};
use flate2::read::GzDecoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::cluster_state::ClusterState;
use crate::config::Granularity;
use crate::kafka::Stage;
use encode::ReportCollector;
use families::{ClusterView, Level, KAFKA_FAMILIES};
use guard::LevelCounts;

/// `Content-Type` of the Prometheus text format 0.0.4 ([`Rendered::text`]).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics 1.0 text ([`Rendered::openmetrics`]).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How to render, from the configuration.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// Finest level of detail of the Kafka families.
    pub granularity: Granularity,
    /// Most Kafka series of all clusters together before levels are dropped.
    pub max_series: usize,
    /// `lagwatch_build_info{version}`.
    pub version: &'static str,
    /// `lagwatch_build_info{revision}`.
    pub revision: String,
    /// `compat: [kafka_lag_exporter]` (PRODUCT.md §8): also render kafka-lag-exporter's
    /// families, and `cluster_name` on `kafka_partition_*` (`docs/migration.md`). They belong to
    /// the levels of detail like lagwatch's own and count toward `max_series`.
    pub compat_kafka_lag_exporter: bool,
    /// Shard 0 of a sharded deployment (or no sharding); other shards omit `kafka_topic_*` and
    /// `kafka_partition_*` so that sums over shards count every topic once.
    pub shard_zero: bool,
    /// `lagwatch_config_last_reload_*`: the outcome of the last load of the configuration file
    /// (start-up or reload); `None` renders neither family.
    pub config_reload: Option<ConfigReload>,
    /// The HTTP server's own figures: it observes into them (clones share them).
    pub server: ServerMetrics,
}

/// Upper bounds of the `lagwatch_scrape_duration_seconds` buckets: a gzip scrape of 100,000
/// series takes about a millisecond on loopback; a slow network or an uncompressed body
/// takes longer.
const SCRAPE_DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What the HTTP server counts of itself, rendered with the rest. Clones share their values:
/// the server holds one and the render reads another.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    /// `lagwatch_scrape_duration_seconds` (0.5 ms to 10 s).
    pub scrape_duration: Histogram,
    /// `lagwatch_http_connections_closed_total{reason="request_timeout"}`: connections closed
    /// because a request's headers or its response did not complete within `request_timeout`.
    pub closed_by_timeout: Counter,
    /// `lagwatch_http_connections_closed_total{reason="connection_limit"}`: idle connections
    /// closed to make room for a new one at `max_connections`.
    pub closed_at_limit: Counter,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            scrape_duration: Histogram::new(SCRAPE_DURATION_BUCKETS),
            closed_by_timeout: Counter::default(),
            closed_at_limit: Counter::default(),
        }
    }
}

/// The last load of the configuration file, as Prometheus reports its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfigReload {
    /// Whether the last attempt loaded (a failed reload keeps the configuration in force).
    pub successful: bool,
    /// When the configuration in force was loaded.
    pub last_success: std::time::SystemTime,
}

/// One render: the same series in both formats, each kept gzipped only (Prometheus asks for gzip;
/// an uncompressed body is produced on demand from the gzip copy, [`Encoding::decoder`]).
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    /// Prometheus text format 0.0.4 ([`TEXT_CONTENT_TYPE`]).
    pub text: Encoding,
    /// OpenMetrics text ([`OPENMETRICS_CONTENT_TYPE`]), ending with `# EOF`.
    pub openmetrics: Encoding,
    /// Kafka series emitted, all clusters.
    pub series: usize,
    /// Kafka series left out by the `max_series` guard, all clusters.
    pub dropped: usize,
}

/// One encoding of a render, as its gzip copy (a reference-counted buffer: a scrape shares it).
#[derive(Clone, Debug)]
pub struct Encoding {
    gzip: Bytes,
    /// Length uncompressed, in bytes.
    len: usize,
}

impl Encoding {
    fn new(gzip: Bytes, len: usize) -> Encoding {
        Encoding { gzip, len }
    }

    /// The gzip copy (`Content-Encoding: gzip`).
    pub fn gzip(&self) -> &Bytes {
        &self.gzip
    }

    /// Length of the exposition uncompressed, in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A reader of the exposition uncompressed, decompressing as it is read: an uncompressed
    /// response streams from it without ever holding the whole text.
    pub fn decoder(&self) -> GzDecoder<Reader<Bytes>> {
        GzDecoder::new(self.gzip.clone().reader())
    }

    /// The exposition uncompressed, whole (tests and tools).
    pub fn decompress(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        if let Err(e) = self.decoder().read_to_end(&mut out) {
            // Our own gzip of memory: unreachable short of a bug.
            tracing::error!(error = %e, "decompressing the exposition failed");
        }
        out
    }
}

/// An empty exposition.
impl Default for Encoding {
    fn default() -> Encoding {
        encoded_or_empty(b"")
    }
}

/// Renders every cluster, family by family.
pub fn render(clusters: &[ClusterState], settings: &RenderSettings) -> Rendered {
    let requested = match settings.granularity {
        Granularity::Group => Level::Always,
        Granularity::Topic => Level::Topic,
        Granularity::Partition => Level::Partition,
    };

    // Count before encoding: the guard decides on whole levels, all clusters together.
    let mut family_series = vec![0usize; KAFKA_FAMILIES.len()];
    let counts: Vec<LevelCounts> = clusters
        .iter()
        .map(|cluster| {
            let mut counts = LevelCounts::default();
            let Some(report) = &cluster.report else {
                return counts;
            };
            for (family, total) in KAFKA_FAMILIES.iter().zip(family_series.iter_mut()) {
                if family.level > requested
                    || (family.rows.topic_wide() && !settings.shard_zero)
                    || !family.origin.emitted(settings.compat_kafka_lag_exporter)
                {
                    continue;
                }
                let n = family.rows.count(report);
                counts[family.level.index()] += n;
                *total += n;
            }
            counts
        })
        .collect();
    let finest = guard::finest_level(&counts, requested, settings.max_series);

    let (mut series, mut dropped) = (0, 0);
    let views: Vec<ClusterView> = clusters
        .iter()
        .zip(&counts)
        .map(|(cluster, counts)| {
            let (cluster_series, cluster_dropped) = guard::split(counts, finest);
            series += cluster_series;
            dropped += cluster_dropped;
            view(cluster, cluster_series, cluster_dropped)
        })
        .collect();
    log_guard(settings, requested, finest, series, dropped);

    let collector = ReportCollector {
        clusters: views,
        emit: KAFKA_FAMILIES
            .iter()
            .zip(&family_series)
            .map(|(family, n)| family.level <= finest && *n > 0)
            .collect(),
        compat_kafka_lag_exporter: settings.compat_kafka_lag_exporter,
        version: settings.version,
        revision: settings.revision.clone(),
        config_reload: settings.config_reload,
        server: settings.server.clone(),
    };
    // About 100 bytes per partition-level series; the exporter families are a few KiB.
    let size_hint = series.saturating_mul(112).saturating_add(16 * 1024);
    let (openmetrics, text) = match encode::encode(collector, size_hint) {
        Ok(encoded) => encoded,
        Err(std::fmt::Error) => {
            // Compressing into memory cannot fail short of allocation failure and no family
            // returns an error: unreachable in practice. Serve an empty exposition (so `up`
            // vanishes and alerts fire) over a torn one.
            tracing::error!("encoding the exposition failed: serving an empty one");
            (encoded_or_empty(b"# EOF\n"), encoded_or_empty(b""))
        }
    };
    Rendered {
        text,
        openmetrics,
        series,
        dropped,
    }
}

fn view(cluster: &ClusterState, series: usize, dropped: usize) -> ClusterView {
    ClusterView {
        name: cluster.name.clone(),
        report: cluster.report.clone(),
        up: cluster.up,
        last_success: cluster
            .last_success
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
        poll_duration: cluster.poll_duration.clone(),
        errors: Stage::ALL.map(|stage| cluster.errors.get(&stage).copied().unwrap_or(0)),
        requests: cluster
            .requests
            .iter()
            .map(|(b, n)| (b.clone(), *n))
            .collect(),
        timestamp_reads_pending: cluster.timestamp_reads_pending,
        unauthorized_topics: cluster.unauthorized_topics,
        unauthorized_groups: cluster.unauthorized_groups,
        series,
        dropped,
    }
}

/// Says what the guard dropped (every render while over the limit: once per poll).
fn log_guard(
    settings: &RenderSettings,
    requested: Level,
    finest: Level,
    series: usize,
    dropped: usize,
) {
    if finest < requested {
        let dropped_levels: Vec<&str> = Level::ALL
            .iter()
            .filter(|l| **l > finest && **l <= requested)
            .map(|l| l.as_str())
            .collect();
        tracing::warn!(
            max_series = settings.max_series,
            granularity = settings.granularity.as_str(),
            dropped_levels = dropped_levels.join(",").as_str(),
            kept_level = finest.as_str(),
            series,
            dropped,
            "max_series exceeded: dropped the finest levels of detail for every group"
        );
    }
    if series > settings.max_series {
        tracing::error!(
            max_series = settings.max_series,
            series,
            "group-level and kafka_topic_* series alone exceed max_series: emitting them anyway; \
             raise max_series or select fewer groups and topics"
        );
    }
}

/// `data` as an [`Encoding`]; an empty gzip body if compressing fails (allocation failure only).
fn encoded_or_empty(data: &[u8]) -> Encoding {
    encode::gzip(data).unwrap_or_else(|e| {
        tracing::error!(error = %e, "gzip of the exposition failed");
        Encoding::new(Bytes::new(), 0)
    })
}
