//! The prometheus-client side of a render: one [`Collector`] over every cluster's report that
//! walks the family tables family by family (all clusters inside each family, so every family has
//! one `# HELP`/`# TYPE` block), encoded once as OpenMetrics text; the Prometheus text format 0.0.4
//! is derived from that as it is written, and only the gzip copy of each is kept.
//!
//! Label sets are arrays of `(&'static str, &str)` (plus an `i32` partition) borrowed from the
//! report: no per-series allocation; escaping of label values is prometheus-client's.

use std::fmt;
use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::families::{
    ClusterView, ExporterFamily, ExporterRows, Kind, Origin, Rows, Value, EXPORTER_FAMILIES,
    KAFKA_FAMILIES,
};
use super::Encoding;
use crate::kafka::Stage;
use crate::model::Report;

/// One render's worth of data, as a prometheus-client collector.
#[derive(Debug)]
pub(crate) struct ReportCollector {
    pub clusters: Vec<ClusterView>,
    /// Per [`KAFKA_FAMILIES`] entry: emit it (its level is kept and it has at least one series).
    pub emit: Vec<bool>,
    /// `compat: [kafka_lag_exporter]`: which families carry `cluster_name`
    /// ([`Origin`](super::families::Origin)).
    pub compat_kafka_lag_exporter: bool,
    pub version: &'static str,
    pub revision: String,
    pub config_reload: Option<super::ConfigReload>,
    pub server: super::ServerMetrics,
}

impl Collector for ReportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for (family, _) in KAFKA_FAMILIES
            .iter()
            .zip(&self.emit)
            .filter(|(_, emit)| **emit)
        {
            let cluster_name = family.origin.cluster_name(self.compat_kafka_lag_exporter);
            encode_family(
                &mut encoder,
                (family.name, family.help, family.unit, family.kind),
                |metric| {
                    for cluster in &self.clusters {
                        if let Some(report) = &cluster.report {
                            // `cluster`, and `cluster_name` with the same value where it is
                            // carried.
                            let both = [
                                ("cluster", cluster.name.as_str()),
                                ("cluster_name", cluster.name.as_str()),
                            ];
                            let prefix = if cluster_name { &both[..] } else { &both[..1] };
                            let group_type = family.origin != Origin::KafkaLagExporter;
                            encode_rows(
                                &family.rows,
                                family.kind,
                                prefix,
                                report,
                                metric,
                                group_type,
                            )?;
                        }
                    }
                    Ok(())
                },
            )?;
        }
        for family in EXPORTER_FAMILIES.iter().filter(|f| self.has_series(f)) {
            encode_family(
                &mut encoder,
                (family.name, family.help, family.unit, family.kind),
                |metric| self.encode_exporter(family, metric),
            )?;
        }
        Ok(())
    }
}

impl ReportCollector {
    /// Families without series print nothing, not even `# HELP`, like client_golang.
    fn has_series(&self, family: &ExporterFamily) -> bool {
        match &family.rows {
            ExporterRows::Cluster(value) => self.clusters.iter().any(|c| value(c).is_some()),
            ExporterRows::Stages | ExporterRows::PollDuration => !self.clusters.is_empty(),
            ExporterRows::Brokers => self.clusters.iter().any(|c| !c.requests.is_empty()),
            ExporterRows::BuildInfo
            | ExporterRows::ScrapeDuration
            | ExporterRows::ConnectionsClosed => true,
            ExporterRows::ConfigReload(_) => self.config_reload.is_some(),
        }
    }

    fn encode_exporter(
        &self,
        family: &ExporterFamily,
        metric: &mut MetricEncoder<'_>,
    ) -> fmt::Result {
        let kind = family.kind;
        match &family.rows {
            ExporterRows::Cluster(value) => {
                for c in &self.clusters {
                    if let Some(v) = value(c) {
                        sample(metric, kind, &[("cluster", c.name.as_str())], v)?;
                    }
                }
            }
            ExporterRows::Stages => {
                for c in &self.clusters {
                    for (stage, errors) in Stage::ALL.iter().zip(c.errors) {
                        let labels = [("cluster", c.name.as_str()), ("stage", stage.as_str())];
                        sample(metric, kind, &labels, Value::Uint(errors))?;
                    }
                }
            }
            ExporterRows::Brokers => {
                for c in &self.clusters {
                    for (broker, requests) in &c.requests {
                        let labels = [("cluster", c.name.as_str()), ("broker", broker.as_str())];
                        sample(metric, kind, &labels, Value::Uint(*requests))?;
                    }
                }
            }
            ExporterRows::PollDuration => {
                for c in &self.clusters {
                    let labels = [("cluster", c.name.as_str())];
                    c.poll_duration.encode(metric.encode_family(&labels)?)?;
                }
            }
            ExporterRows::ConfigReload(value) => {
                if let Some(reload) = &self.config_reload {
                    let labels: [(&str, &str); 0] = [];
                    sample(metric, kind, &labels, value(reload))?;
                }
            }
            ExporterRows::ScrapeDuration => {
                let labels: [(&str, &str); 0] = [];
                self.server
                    .scrape_duration
                    .encode(metric.encode_family(&labels)?)?;
            }
            ExporterRows::ConnectionsClosed => {
                for (reason, counter) in [
                    ("request_timeout", &self.server.closed_by_timeout),
                    ("connection_limit", &self.server.closed_at_limit),
                ] {
                    sample(
                        metric,
                        kind,
                        &[("reason", reason)],
                        Value::Uint(counter.get()),
                    )?;
                }
            }
            ExporterRows::BuildInfo => {
                let labels = [
                    ("version", self.version),
                    ("revision", self.revision.as_str()),
                ];
                sample(metric, kind, &labels, Value::Uint(1))?;
            }
        }
        Ok(())
    }
}

/// Writes every series of one Kafka family for one cluster. Mirrors [`Rows::count`]. `cluster`
/// is the cluster's labels: `cluster`, and `cluster_name` where the family carries it.
/// `group_type`: whether group-level rows carry the `group_type` label (lagwatch's own
/// families do; kafka-lag-exporter's keep that exporter's labels).
fn encode_rows(
    rows: &Rows,
    kind: Kind,
    cluster: &[(&'static str, &str)],
    report: &Report,
    metric: &mut MetricEncoder<'_>,
    group_type: bool,
) -> fmt::Result {
    match rows {
        Rows::Topic(value) => {
            for t in &report.topics {
                if let Some(v) = value(t) {
                    sample(metric, kind, &(cluster, [("topic", &*t.name)]), v)?;
                }
            }
        }
        Rows::TopicPartition(value) => {
            for t in &report.topics {
                let topic = (cluster, [("topic", &*t.name)]);
                for p in &t.partitions {
                    if let Some(v) = value(p) {
                        sample(metric, kind, &(topic, [("partition", p.partition)]), v)?;
                    }
                }
            }
        }
        Rows::Group(value) => {
            for g in &report.groups {
                if let Some(v) = value(g) {
                    let labels = [
                        ("group", g.id.as_str()),
                        ("group_type", g.group_type.as_str()),
                    ];
                    let labels = &labels[..if group_type { 2 } else { 1 }];
                    sample(metric, kind, &(cluster, labels), v)?;
                }
            }
        }
        Rows::GroupLabel(label, value) => {
            for g in &report.groups {
                if let Some(label_value) = value(g) {
                    let typed = [
                        ("group", g.id.as_str()),
                        ("group_type", g.group_type.as_str()),
                        (*label, label_value),
                    ];
                    let untyped = [("group", g.id.as_str()), (*label, label_value)];
                    let labels: &[(&str, &str)] = if group_type { &typed } else { &untyped };
                    sample(metric, kind, &(cluster, labels), Value::Uint(1))?;
                }
            }
        }
        Rows::GroupTopic(value) => {
            for g in &report.groups {
                for t in &g.topics {
                    if let Some(v) = value(t) {
                        let labels = (cluster, [("group", g.id.as_str()), ("topic", &*t.topic)]);
                        sample(metric, kind, &labels, v)?;
                    }
                }
            }
        }
        Rows::GroupPartition(value) => {
            for g in &report.groups {
                for t in &g.topics {
                    let topic = (cluster, [("group", g.id.as_str()), ("topic", &*t.topic)]);
                    for p in &t.partitions {
                        if let Some(v) = value(p) {
                            sample(metric, kind, &(topic, [("partition", p.partition)]), v)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Writes one series.
fn sample(
    metric: &mut MetricEncoder<'_>,
    kind: Kind,
    labels: &impl EncodeLabelSet,
    value: Value,
) -> fmt::Result {
    let mut series = metric.encode_family(labels)?;
    match (kind, value) {
        (Kind::Counter, Value::Int(v)) => {
            series.encode_counter::<NoLabelSet, _, u64>(&u64::try_from(v).unwrap_or(0), None)
        }
        (Kind::Counter, Value::Uint(v)) => series.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (Kind::Counter, Value::Float(v)) => series.encode_counter::<NoLabelSet, _, f64>(&v, None),
        (Kind::Gauge | Kind::Histogram, Value::Int(v)) => series.encode_gauge(&v),
        (Kind::Gauge | Kind::Histogram, Value::Uint(v)) => series.encode_gauge(&v),
        (Kind::Gauge | Kind::Histogram, Value::Float(v)) => series.encode_gauge(&v),
    }
}

/// Writes a family's `# HELP`/`# TYPE` (and `# UNIT`) lines from its (name, help, unit,
/// kind), then its series with `series`.
fn encode_family(
    encoder: &mut DescriptorEncoder,
    (name, help, unit, kind): (&'static str, &'static str, Option<&'static str>, Kind),
    series: impl FnOnce(&mut MetricEncoder) -> fmt::Result,
) -> fmt::Result {
    let (name, unit) = descriptor(name, unit);
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), metric_type(kind))?;
    series(&mut metric)
}

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Gauge => MetricType::Gauge,
        Kind::Counter => MetricType::Counter,
        Kind::Histogram => MetricType::Histogram,
    }
}

/// prometheus-client takes the name without the unit and appends `_<unit>` itself (and a
/// `# UNIT` line in OpenMetrics). A name that does not end with its unit is passed whole, unitless.
fn descriptor(name: &'static str, unit: Option<&'static str>) -> (&'static str, Option<Unit>) {
    let Some(unit) = unit else {
        return (name, None);
    };
    match name.strip_suffix(unit).and_then(|n| n.strip_suffix('_')) {
        Some(base) => (
            base,
            Some(match unit {
                "seconds" => Unit::Seconds,
                "bytes" => Unit::Bytes,
                other => Unit::Other(other.to_owned()),
            }),
        ),
        None => (name, None),
    }
}

/// Encodes `collector` once, as OpenMetrics text (ends with `# EOF`), straight into its gzip copy,
/// and derives the Prometheus text format 0.0.4 from it line by line ([`TextConverter`]) into a
/// second gzip copy: the uncompressed exposition (about 100 bytes a series) is never held whole,
/// only a window of [`WINDOW`] bytes. A copy is several times cheaper than a second walk with
/// prometheus-client's `prometheus_text` encoder. `size_hint`: expected uncompressed size.
pub(crate) fn encode(
    collector: ReportCollector,
    size_hint: usize,
) -> Result<(Encoding, Encoding), fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut sink = GzipSink::new(size_hint);
    prometheus_client::encoding::text::encode(&mut sink, &registry)?;
    sink.finish().map_err(|e| {
        tracing::error!(error = %e, "gzip of the exposition failed");
        fmt::Error
    })
}

/// Lines are handed to the compressors in runs of about this many bytes.
const WINDOW: usize = 64 * 1024;

/// The `fmt::Write` prometheus-client encodes into: buffers up to [`WINDOW`] bytes, then hands
/// the complete lines to the OpenMetrics compressor and, converted, to the text one.
struct GzipSink {
    /// Encoded text not compressed yet; whole lines but for the last.
    window: String,
    openmetrics: Compressor,
    text: Compressor,
    converter: TextConverter,
    /// The first write error of a compressor (into memory: allocation failure only).
    failed: Option<std::io::Error>,
}

/// One gzip stream being written, and the length of what went in.
struct Compressor {
    gzip: GzEncoder<Vec<u8>>,
    len: usize,
}

impl Compressor {
    fn new(size_hint: usize) -> Compressor {
        Compressor {
            gzip: GzEncoder::new(Vec::with_capacity(size_hint / 16 + 64), GZIP_LEVEL),
            len: 0,
        }
    }

    fn write(&mut self, piece: &str, failed: &mut Option<std::io::Error>) {
        self.len += piece.len();
        if let Err(e) = self.gzip.write_all(piece.as_bytes()) {
            failed.get_or_insert(e);
        }
    }

    fn finish(self) -> std::io::Result<Encoding> {
        let mut gzip = self.gzip.finish()?;
        // Served until the next render: give back what the size hint over-reserved.
        gzip.shrink_to_fit();
        Ok(Encoding::new(gzip.into(), self.len))
    }
}

impl GzipSink {
    fn new(size_hint: usize) -> GzipSink {
        GzipSink {
            window: String::with_capacity(WINDOW + 1024),
            openmetrics: Compressor::new(size_hint),
            text: Compressor::new(size_hint),
            converter: TextConverter::default(),
            failed: None,
        }
    }

    /// Compresses the window up to its last complete line (all of it when `last`).
    fn drain(&mut self, last: bool) {
        let end = if last {
            self.window.len()
        } else {
            self.window.rfind('\n').map_or(0, |i| i + 1)
        };
        let lines = &self.window[..end];
        let failed = &mut self.failed;
        self.openmetrics.write(lines, failed);
        let text = &mut self.text;
        self.converter
            .feed(lines, &mut |piece| text.write(piece, failed));
        self.window.drain(..end);
    }

    fn finish(mut self) -> std::io::Result<(Encoding, Encoding)> {
        self.drain(true);
        let text = &mut self.text;
        let failed = &mut self.failed;
        self.converter
            .finish(&mut |piece| text.write(piece, failed));
        if let Some(e) = self.failed {
            return Err(e);
        }
        Ok((self.openmetrics.finish()?, self.text.finish()?))
    }
}

impl fmt::Write for GzipSink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.window.push_str(s);
        if self.window.len() >= WINDOW {
            self.drain(false);
        }
        Ok(())
    }
}

/// Prometheus text format 0.0.4 from prometheus-client's OpenMetrics text, fed in runs of whole
/// lines: drops `# UNIT` and `# EOF`, and names counters `<name>_total` in `# HELP`/`# TYPE`
/// (OpenMetrics names the family `<name>`, its samples `<name>_total`; the 0.0.4 format names
/// both alike). Sample lines are the same in both formats and are copied in runs.
///
/// Sound because a raw newline only ends a line: prometheus-client escapes newlines in label
/// values, and help texts have none (tested in `families`); sample lines never start with `#`.
#[derive(Default)]
pub(crate) struct TextConverter {
    /// A `# HELP` line waits for its `# TYPE` line, which says whether to rename it.
    help: Option<String>,
}

impl TextConverter {
    /// Converts `lines` (whole lines, but for the very last run of the exposition) into `out`.
    pub(crate) fn feed(&mut self, lines: &str, out: &mut impl FnMut(&str)) {
        let mut rest = lines;
        while !rest.is_empty() {
            let samples = if rest.starts_with('#') {
                0
            } else {
                rest.find("\n#").map_or(rest.len(), |i| i + 1)
            };
            if samples > 0 {
                self.flush_help(out);
                out(&rest[..samples]);
                rest = &rest[samples..];
                continue;
            }
            let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let (line, tail) = rest.split_at(end);
            rest = tail;
            if line.starts_with("# HELP ") {
                self.flush_help(out);
                self.help = Some(line.to_owned());
            } else if let Some(type_line) = line.strip_prefix("# TYPE ") {
                let (name, kind) = type_line.split_once(' ').unwrap_or((type_line, ""));
                if kind.trim_end() == "counter" {
                    if let Some(help_line) = self.help.take() {
                        let help_text = help_line
                            .strip_prefix("# HELP ")
                            .and_then(|h| h.strip_prefix(name))
                            .filter(|h| h.starts_with(' '));
                        match help_text {
                            Some(help_text) => {
                                out("# HELP ");
                                out(name);
                                out("_total");
                                out(help_text);
                            }
                            None => out(&help_line),
                        }
                    }
                    out("# TYPE ");
                    out(name);
                    out("_total counter\n");
                } else {
                    self.flush_help(out);
                    out(line);
                }
            } else if !(line.starts_with("# UNIT ") || line.trim_end() == "# EOF") {
                self.flush_help(out);
                out(line);
            }
        }
    }

    /// Writes a `# HELP` line still waiting (the exposition ended after it).
    pub(crate) fn finish(mut self, out: &mut impl FnMut(&str)) {
        self.flush_help(out);
    }

    fn flush_help(&mut self, out: &mut impl FnMut(&str)) {
        if let Some(help) = self.help.take() {
            out(&help);
        }
    }
}

/// [`TextConverter`] over a whole exposition.
#[cfg(test)]
pub(crate) fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut converter = TextConverter::default();
    converter.feed(openmetrics, &mut |piece| out.push_str(piece));
    converter.finish(&mut |piece| out.push_str(piece));
    out
}

/// gzip at the fastest level: both copies are made every poll and read by every gzip scrape. On
/// exposition text it still compresses 10-25:1, at over 200 MB/s (miniz_oxide); levels 2-3 gain
/// about 10 % in size for twice the CPU, level 6 15 % for six times the CPU.
const GZIP_LEVEL: Compression = Compression::fast();

/// `data` gzipped at [`GZIP_LEVEL`], as an [`Encoding`].
pub(crate) fn gzip(data: &[u8]) -> std::io::Result<Encoding> {
    let mut compressor = Compressor::new(data.len());
    compressor.len = data.len();
    compressor.gzip.write_all(data)?;
    compressor.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_is_derived_from_openmetrics() {
        // (OpenMetrics input, Prometheus text 0.0.4 output, why)
        let cases = [
            (
                "# HELP c Things.\n# TYPE c counter\nc_total{a=\"1\"} 3\n# EOF\n",
                "# HELP c_total Things.\n# TYPE c_total counter\nc_total{a=\"1\"} 3\n",
                "counter: HELP and TYPE name the _total series; EOF dropped",
            ),
            (
                "# HELP g_seconds Age.\n# TYPE g_seconds gauge\n# UNIT g_seconds seconds\ng_seconds 1.5\n# EOF\n",
                "# HELP g_seconds Age.\n# TYPE g_seconds gauge\ng_seconds 1.5\n",
                "gauge kept as is; UNIT dropped",
            ),
            (
                "# HELP r_bytes Read.\n# TYPE r_bytes counter\n# UNIT r_bytes bytes\nr_bytes_total 7\n# EOF\n",
                "# HELP r_bytes_total Read.\n# TYPE r_bytes_total counter\nr_bytes_total 7\n",
                "counter with a unit",
            ),
            (
                "# HELP h H.\n# TYPE h histogram\nh_sum 1.0\nh_count 1\nh_bucket{le=\"+Inf\"} 1\n# HELP c C.\n# TYPE c counter\nc_total 1\n# EOF\n",
                "# HELP h H.\n# TYPE h histogram\nh_sum 1.0\nh_count 1\nh_bucket{le=\"+Inf\"} 1\n# HELP c_total C.\n# TYPE c_total counter\nc_total 1\n",
                "families in sequence; sample runs copied whole",
            ),
            (
                "# HELP cc Other.\n# TYPE c counter\nc_total 1\n",
                "# HELP cc Other.\n# TYPE c_total counter\nc_total 1\n",
                "a HELP line of another name is left alone",
            ),
            (
                "g{v=\"a\\n# b\"} 1\n# EOF\n",
                "g{v=\"a\\n# b\"} 1\n",
                "an escaped newline in a label value is not a line break",
            ),
            ("# EOF\n", "", "empty exposition"),
        ];
        for (input, want, why) in cases {
            assert_eq!(openmetrics_to_text(input), want, "{why}");
            // Fed in runs of whole lines, as the render does, the output is the same.
            let mut out = String::new();
            let mut converter = TextConverter::default();
            for line in input.split_inclusive('\n') {
                converter.feed(line, &mut |piece| out.push_str(piece));
            }
            converter.finish(&mut |piece| out.push_str(piece));
            assert_eq!(out, want, "{why}, line by line");
        }
    }
}
