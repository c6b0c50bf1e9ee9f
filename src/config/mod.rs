//! Configuration: the YAML file (PRODUCT.md §6) parsed, validated and resolved once at start into
//! typed settings. This is the only module that reads environment variables or secret files; every
//! other module receives plain values.
//!
//! Loading runs in two steps. The text is first parsed into a YAML value tree (syntax errors carry
//! a line and column), then deserialized through `serde_path_to_error` into private `Raw*` structs
//! that reject unknown keys, so a structural or value error names its field path
//! (`clusters[0].poll_interval: invalid duration "3x"`). Cross-field rules, secret resolution and
//! the rejected librdkafka properties are then checked with hand-built paths in the same format.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the typed [`Config`], [`Config::load`] and [`Config::from_yaml`], validation, [`ConfigError`] |
//! | `raw.rs` | the file as written: `Raw*` serde structs and the defaults of every top-level and cluster key |
//! | `scalars.rs` | values parsed from one string while deserializing: durations, `listen`, regexes |
//! | `secrets.rs` | `kafka:` properties: rejected names, `{env}`/`{file}` sources, redaction |
//! | `shard.rs` | [`ShardConfig`]: which groups this replica owns |
//! | `describe.rs` | [`Config::describe`], the `check-config` output |
//! | `web.rs` | [`WebConfig`]: the `web_config_file` (TLS, basic auth, headers of the HTTP server) |
//!
//! Every default is written once. Those of `time_lag.*` and `status.*` are the analytics model's
//! ([`AnalyticsSettings::DEFAULT`]): those keys tune the model, and the model may not import the
//! configuration, so [`TimeLagConfig`] and [`StatusConfig`] take their defaults from it. All other
//! defaults are the configuration's own: `RawConfig`'s `Default` (`raw.rs`) for the top-level keys,
//! the selector lists beside `RawSelector`, [`ShardConfig`]'s `Default`, and the `#[default]`
//! variants of [`Granularity`], [`Isolation`] and [`GroupRequests`]. `config/example.yaml` and the defaults column of
//! `docs/configuration.md` are checked against them by the tests.

mod aws;
mod describe;
mod raw;
mod scalars;
mod secrets;
mod shard;
#[cfg(test)]
mod tests;
mod web;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::model::analytics::AnalyticsSettings;
use raw::RawConfig;
use scalars::de_duration;
use secrets::{resolve_kafka, Sources};

pub use aws::{AwsEnvironment, AwsMskIam};
pub use secrets::{is_secret_property, KafkaValue};
pub use shard::ShardConfig;
pub use web::{ClientAuth, TlsServerConfig, TlsVersion, WebConfig};

/// The validated configuration of one lagwatch process.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of the HTTP server (`/metrics`, `/healthz`, `/readyz`, `/`).
    pub listen: SocketAddr,
    /// Default period between two polls of a cluster; see [`ClusterConfig::poll_interval`].
    pub poll_interval: Duration,
    /// Finest level of Kafka series emitted; coarser levels are always emitted.
    pub granularity: Granularity,
    /// Series guard over the Kafka families of all clusters together (PRODUCT.md §5).
    pub max_series: usize,
    /// OffsetFetch requests in flight per cluster; at least 1.
    pub offset_fetch_concurrency: usize,
    /// Period after which topic configs are described again even if the topic set is unchanged.
    pub config_refresh: Duration,
    pub time_lag: TimeLagConfig,
    pub status: StatusConfig,
    /// Extra metric families of other exporters, for migration.
    pub compat: Vec<Compat>,
    /// Exporter-toolkit web config (TLS, basic auth); relative paths are resolved against the
    /// directory of the config file by [`Config::load`].
    pub web_config_file: Option<PathBuf>,
    /// Limits of the HTTP server.
    pub web: HttpLimits,
    pub shard: ShardConfig,
    /// At least one; names are unique and non-empty.
    pub clusters: Vec<ClusterConfig>,
}

/// Limits of the HTTP server (`web:`), so that idle, slow or stuck clients never hold up a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with request_timeout and max_connections"
)]
pub struct HttpLimits {
    /// A connection must send a request's headers within this long of opening (or of its
    /// previous request), and each response must be written within this long of its request;
    /// otherwise it is closed. Greater than zero.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Connections open at once; at the limit, a new one closes the oldest connection with no
    /// request in flight, or waits for one to finish. At least 1.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: Duration::from_secs(30),
            max_connections: 128,
        }
    }
}

/// Budget and memory of the time-lag estimate (PRODUCT.md §4).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with max_reads_per_poll and history"
)]
pub struct TimeLagConfig {
    /// Record-timestamp reads per cluster per poll; 0 disables exact reads (interpolation only).
    pub max_reads_per_poll: usize,
    /// (head offset, time observed) samples kept per partition; at least 2 to interpolate.
    pub history: usize,
}

impl Default for TimeLagConfig {
    fn default() -> Self {
        analytics_defaults().0
    }
}

/// Parameters of the consumer-group status rules (PRODUCT.md §4, `docs/status.md`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with window, allowed_lag, stop_after, eviction_warning, min_time_lag and inactive_after"
)]
pub struct StatusConfig {
    /// Successful observations per partition the rules look at; at least 2.
    pub window: usize,
    /// Lag in messages up to which a partition is not behind; at least 0.
    pub allowed_lag: i64,
    /// Commit stall after which `stall` escalates to `stop`; greater than zero.
    #[serde(deserialize_with = "de_duration")]
    pub stop_after: Duration,
    /// Time to eviction under which a behind partition is `evicting` (capped at retention / 4).
    #[serde(deserialize_with = "de_duration")]
    pub eviction_warning: Duration,
    /// Time lag below which a partition is never `warn` or `stall`; 0s lifts the gate.
    #[serde(deserialize_with = "de_duration")]
    pub min_time_lag: Duration,
    /// Commits frozen this long on a member-less group make it `inactive`; 0s: never.
    #[serde(deserialize_with = "de_duration")]
    pub inactive_after: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        analytics_defaults().1
    }
}

/// The `time_lag` and `status` sections as the analytics model's defaults, which they tune. No
/// `..` in the pattern: a setting added to the model must be placed here or named as unused.
fn analytics_defaults() -> (TimeLagConfig, StatusConfig) {
    let AnalyticsSettings {
        max_reads_per_poll,
        history,
        window,
        allowed_lag,
        stop_after,
        eviction_warning,
        min_time_lag,
        inactive_after,
        timestamp_cache: _,
    } = AnalyticsSettings::DEFAULT;
    (
        TimeLagConfig {
            max_reads_per_poll,
            history,
        },
        StatusConfig {
            window,
            allowed_lag,
            stop_after,
            eviction_warning,
            min_time_lag,
            inactive_after,
        },
    )
}

/// One Kafka cluster to monitor. Equal when every setting is (a reload keeps the poll loop, and
/// with it the history, of a cluster whose settings did not change).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Value of the `cluster` label.
    pub name: String,
    /// Comma-separated `host:port` list, passed to librdkafka as `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// librdkafka properties in file order, `{env}`/`{file}` already resolved.
    pub kafka: Vec<(String, KafkaValue)>,
    pub groups: Selector,
    pub topics: Selector,
    /// This cluster's override, else the top-level `poll_interval`.
    pub poll_interval: Duration,
    /// How long one poll may take: this cluster's override, else the top-level `poll_timeout`,
    /// else this cluster's `poll_interval`.
    pub poll_timeout: Duration,
    pub isolation: Isolation,
    /// Which client sends the group requests (listing, describing, committed offsets).
    pub group_requests: GroupRequests,
    /// AWS MSK IAM tokens for OAUTHBEARER, when set.
    pub aws_msk_iam: Option<AwsMskIam>,
}

/// Which names (groups or topics) are monitored.
#[derive(Clone, Debug)]
pub struct Selector {
    pub include: Vec<Regex>,
    pub exclude: Vec<Regex>,
}

/// Selectors are equal when their patterns are, in order.
impl PartialEq for Selector {
    fn eq(&self, other: &Selector) -> bool {
        let patterns = |list: &[Regex]| {
            list.iter()
                .map(|re| re.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        patterns(&self.include) == patterns(&other.include)
            && patterns(&self.exclude) == patterns(&other.exclude)
    }
}

impl Selector {
    /// True when any include pattern matches anywhere in `name` and no exclude pattern does.
    pub fn matches(&self, name: &str) -> bool {
        self.include.iter().any(|re| re.is_match(name))
            && !self.exclude.iter().any(|re| re.is_match(name))
    }

    /// The names the include patterns spell out exactly (`^name$`, with `\.` or `.` for a
    /// dot) and the selector keeps. These are the only selected names lagwatch knows without
    /// Kafka listing them, so it can ask about them by name when a listing leaves them out.
    pub fn literal_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .include
            .iter()
            .filter_map(|re| literal(re.as_str()))
            .filter(|name| self.matches(name))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// `name` for a pattern `^name$` made of name characters only (`\.` and `\-` unescaped).
fn literal(pattern: &str) -> Option<String> {
    let body = pattern.strip_prefix('^')?.strip_suffix('$')?;
    let name = body.replace("\\.", ".").replace("\\-", "-");
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (plain && !name.is_empty()).then_some(name)
}

/// Finest level of Kafka series emitted. Ordered from coarsest to finest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Group,
    #[default]
    Topic,
    Partition,
}

impl Granularity {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Group => "group",
            Granularity::Topic => "topic",
            Granularity::Partition => "partition",
        }
    }
}

/// Families of other exporters emitted besides lagwatch's own (PRODUCT.md §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compat {
    KafkaLagExporter,
}

impl Compat {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Compat::KafkaLagExporter => "kafka_lag_exporter",
        }
    }
}

/// Which head offset lag is measured against: the high watermark, or with `ReadCommitted` the
/// last stable offset (what a transactional consumer can read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    #[default]
    ReadUncommitted,
    ReadCommitted,
}

impl Isolation {
    /// The YAML spelling, which is also librdkafka's `isolation.level` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read_uncommitted",
            Isolation::ReadCommitted => "read_committed",
        }
    }
}

/// Which client sends a cluster's group requests: lagwatch's own protocol path, which batches
/// many groups per FindCoordinator and OffsetFetch (and falls back to librdkafka by itself where
/// it cannot serve the cluster's security settings or brokers), or librdkafka always, one group
/// per OffsetFetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRequests {
    #[default]
    Native,
    Librdkafka,
}

impl GroupRequests {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRequests::Native => "native",
            GroupRequests::Librdkafka => "librdkafka",
        }
    }
}

/// Why a configuration was refused. Field errors display as `FIELD.PATH: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The text is not YAML; the message carries line and column.
    #[error("invalid YAML: {message}")]
    Syntax { message: String },
    /// A key or value is wrong; `path` is empty for the document itself.
    #[error("{}", field_message(path, message))]
    Field { path: String, message: String },
}

fn field_message(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

fn field_error(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        path: path.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads and validates the file at `path`. Relative `{file: PATH}` secrets and
    /// `web_config_file` are resolved against the file's directory, as Prometheus does.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.to_owned(),
            error,
        })?;
        let base_dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
        parse(&text, &Sources::process(base_dir))
    }

    /// Validates YAML text; relative paths stay relative to the working directory.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        parse(text, &Sources::process(None))
    }
}

/// librdkafka properties whose value is a file librdkafka opens when it creates a client (or,
/// for the CA, a directory); `probe` for the CA asks librdkafka to search the system's paths.
const FILE_PROPERTIES: &[&str] = &[
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.crl.location",
    "ssl.keystore.location",
    "sasl.kerberos.keytab",
];

impl Config {
    /// Reads every file the configuration names besides itself and its `{file:}` secrets (read by
    /// [`Config::load`]): the files of `kafka:` properties, checked as librdkafka will open them
    /// (relative to the working directory), and the web configuration with the files it names.
    /// Errors name the field; a property's value, which may be a secret, is never shown beyond
    /// the path of the file.
    pub fn check_files(&self) -> Result<Option<WebConfig>, ConfigError> {
        for (index, cluster) in self.clusters.iter().enumerate() {
            for (key, value) in &cluster.kafka {
                let key_lower = key.to_ascii_lowercase();
                if !FILE_PROPERTIES.contains(&key_lower.as_str()) {
                    continue;
                }
                let path = Path::new(&value.value);
                if key_lower == "ssl.ca.location" && value.value == "probe" {
                    continue;
                }
                let readable = if path.is_dir() && key_lower == "ssl.ca.location" {
                    std::fs::read_dir(path).map(|_| ())
                } else {
                    std::fs::read(path).map(|_| ())
                };
                readable.map_err(|e| {
                    field_error(
                        format!("clusters[{index}].kafka.{key}"),
                        format!("cannot read {:?}: {e}", value.value),
                    )
                })?;
            }
        }
        self.web_config_file
            .as_deref()
            .map(WebConfig::load)
            .transpose()
    }
}

fn parse(text: &str, sources: &Sources<'_>) -> Result<Config, ConfigError> {
    let tree: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| ConfigError::Syntax {
            message: e.to_string(),
        })?;
    if !tree.is_mapping() {
        return Err(field_error(
            "",
            "the configuration must be a YAML mapping of settings",
        ));
    }
    let raw: RawConfig = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        field_error(if path == "." { String::new() } else { path }, message)
    })?;
    validate(raw, sources)
}

fn validate(raw: RawConfig, sources: &Sources<'_>) -> Result<Config, ConfigError> {
    non_zero("poll_interval", raw.poll_interval)?;
    if let Some(timeout) = raw.poll_timeout {
        non_zero("poll_timeout", timeout)?;
    }
    non_zero("config_refresh", raw.config_refresh)?;
    non_zero("status.stop_after", raw.status.stop_after)?;
    non_zero("web.request_timeout", raw.web.request_timeout)?;
    at_least("web.max_connections", raw.web.max_connections, 1)?;
    at_least("max_series", raw.max_series, 1)?;
    at_least("offset_fetch_concurrency", raw.offset_fetch_concurrency, 1)?;
    at_least("time_lag.history", raw.time_lag.history, 2)?;
    at_least("status.window", raw.status.window, 2)?;
    if raw.status.allowed_lag < 0 {
        return Err(field_error(
            "status.allowed_lag",
            format!("must be at least 0, got {}", raw.status.allowed_lag),
        ));
    }
    if raw.shard.count == 0 {
        return Err(field_error("shard.count", "must be at least 1, got 0"));
    }
    if raw.shard.index >= raw.shard.count {
        return Err(field_error(
            "shard.index",
            format!(
                "must be less than shard.count ({}), got {}",
                raw.shard.count, raw.shard.index
            ),
        ));
    }
    if raw.clusters.is_empty() {
        return Err(field_error("clusters", "at least one cluster is required"));
    }

    let mut names = HashSet::new();
    let mut clusters = Vec::with_capacity(raw.clusters.len());
    for (index, cluster) in raw.clusters.into_iter().enumerate() {
        let path = format!("clusters[{index}]");
        if cluster.name.trim().is_empty() {
            return Err(field_error(format!("{path}.name"), "must not be empty"));
        }
        if !names.insert(cluster.name.clone()) {
            return Err(field_error(
                format!("{path}.name"),
                format!("duplicate cluster name {:?}", cluster.name),
            ));
        }
        if cluster.bootstrap_servers.trim().is_empty() {
            return Err(field_error(
                format!("{path}.bootstrap_servers"),
                "must not be empty",
            ));
        }
        if let Some(interval) = cluster.poll_interval {
            non_zero(&format!("{path}.poll_interval"), interval)?;
        }
        if let Some(timeout) = cluster.poll_timeout {
            non_zero(&format!("{path}.poll_timeout"), timeout)?;
        }
        let poll_interval = cluster.poll_interval.unwrap_or(raw.poll_interval);
        let kafka = resolve_kafka(&path, cluster.kafka, sources)?;
        let aws_msk_iam = match cluster.aws_msk_iam {
            Some(raw) => Some(aws::resolve(
                &format!("{path}.aws_msk_iam"),
                raw,
                &kafka,
                sources,
            )?),
            None => None,
        };
        clusters.push(ClusterConfig {
            kafka,
            aws_msk_iam,
            groups: cluster
                .groups
                .groups()
                .map_err(|e| field_error(format!("{path}.groups"), e.to_string()))?,
            topics: cluster
                .topics
                .topics()
                .map_err(|e| field_error(format!("{path}.topics"), e.to_string()))?,
            poll_interval,
            poll_timeout: cluster
                .poll_timeout
                .or(raw.poll_timeout)
                .unwrap_or(poll_interval),
            isolation: cluster.isolation,
            group_requests: cluster.group_requests,
            name: cluster.name,
            bootstrap_servers: cluster.bootstrap_servers,
        });
    }

    let mut compat = raw.compat;
    let mut seen = HashSet::new();
    compat.retain(|c| seen.insert(*c));

    Ok(Config {
        listen: raw.listen,
        poll_interval: raw.poll_interval,
        granularity: raw.granularity,
        max_series: raw.max_series,
        offset_fetch_concurrency: raw.offset_fetch_concurrency,
        config_refresh: raw.config_refresh,
        time_lag: raw.time_lag,
        status: raw.status,
        compat,
        web_config_file: raw.web_config_file.map(|p| sources.resolve_path(&p)),
        web: raw.web,
        shard: raw.shard,
        clusters,
    })
}

fn non_zero(path: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(field_error(path, "must be greater than zero"));
    }
    Ok(())
}

fn at_least(path: &str, value: usize, min: usize) -> Result<(), ConfigError> {
    if value < min {
        return Err(field_error(
            path,
            format!("must be at least {min}, got {value}"),
        ));
    }
    Ok(())
}
