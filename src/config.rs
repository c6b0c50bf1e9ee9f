//! Configuration: the YAML file (PRODUCT.md §6) parsed, validated and resolved once at start into
//! typed settings. This is the only module that reads environment variables or secret files; every
//! other module receives plain values.
//!
//! Loading runs in two steps. The text is first parsed into a YAML value tree (syntax errors carry
//! a line and column), then deserialized through `serde_path_to_error` into private `Raw*` structs
//! that reject unknown keys, so a structural or value error names its field path
//! (`clusters[0].poll_interval: invalid duration "3x"`). Cross-field rules, secret resolution and
//! the rejected librdkafka properties are then checked with hand-built paths in the same format.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Selector lists used where the file leaves one out.
const DEFAULT_INCLUDE: &[&str] = &[".*"];
const DEFAULT_GROUP_EXCLUDE: &[&str] = &[];
/// Internal topics (`__consumer_offsets`, `__transaction_state`) hold no application data.
const DEFAULT_TOPIC_EXCLUDE: &[&str] = &["^__"];

/// librdkafka properties lagwatch sets itself, with the reason shown when a file sets one.
const REJECTED_PROPERTIES: &[(&str, &str)] = &[
    ("group.id", "lagwatch sets this property itself"),
    (
        "enable.auto.commit",
        "lagwatch sets this property itself (it never commits)",
    ),
    (
        "statistics.interval.ms",
        "lagwatch sets this property itself (it counts requests from statistics)",
    ),
    ("enable.partition.eof", "lagwatch sets this property itself"),
    (
        "bootstrap.servers",
        "set `bootstrap_servers` on the cluster instead",
    ),
    (
        "metadata.broker.list",
        "set `bootstrap_servers` on the cluster instead",
    ),
    ("isolation.level", "set `isolation` on the cluster instead"),
];

/// Exact librdkafka property names that hold secrets but contain none of [`SECRET_MARKERS`].
const SECRET_PROPERTIES: &[&str] = &[
    "ssl.key.pem",
    "ssl_key",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.extensions",
];

/// Substrings of property names that mark a secret; generous on purpose (a redacted non-secret
/// costs a little debugging, a leaked secret costs a rotation).
const SECRET_MARKERS: &[&str] = &["password", "secret", "passphrase", "credential", "private"];

/// Printed instead of a secret value by `Debug` and [`Config::describe`].
const REDACTED: &str = "<redacted>";

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
    pub shard: ShardConfig,
    /// At least one; names are unique and non-empty.
    pub clusters: Vec<ClusterConfig>,
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
        TimeLagConfig {
            max_reads_per_poll: 1000,
            history: 64,
        }
    }
}

/// Parameters of the consumer-group status rules (PRODUCT.md §4, `docs/status.md`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with window, allowed_lag, stop_after and eviction_warning"
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
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            window: 10,
            allowed_lag: 0,
            stop_after: Duration::from_secs(15 * 60),
            eviction_warning: Duration::from_secs(60 * 60),
        }
    }
}

/// This replica's share of the groups: a group belongs to shard FNV-1a-64(group id) mod `count`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with index and count"
)]
pub struct ShardConfig {
    /// In `0..count`.
    pub index: u64,
    /// At least 1.
    pub count: u64,
}

impl ShardConfig {
    /// Whether this replica owns `group`: FNV-1a-64 of the group id, mod `count`, is `index`.
    pub fn owns(&self, group: &str) -> bool {
        fnv1a_64(group.as_bytes()) % self.count.max(1) == self.index
    }
}

/// FNV-1a, 64-bit: small, stable across versions and platforms, so every replica agrees.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(PRIME)
    })
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig { index: 0, count: 1 }
    }
}

/// One Kafka cluster to monitor.
#[derive(Clone, Debug)]
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
    pub isolation: Isolation,
}

/// A resolved librdkafka property value.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaValue {
    pub value: String,
    /// The value must never be shown: the key holds a secret ([`is_secret_property`]) or the value
    /// was kept out of the file with `{env: NAME}` or `{file: PATH}`.
    pub secret: bool,
}

impl KafkaValue {
    /// The value as it may be shown to a human: `<redacted>` for secrets.
    fn shown(&self) -> &str {
        if self.secret {
            REDACTED
        } else {
            &self.value
        }
    }
}

impl fmt::Debug for KafkaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaValue")
            .field("value", &self.shown())
            .field("secret", &self.secret)
            .finish()
    }
}

/// Which names (groups or topics) are monitored.
#[derive(Clone, Debug)]
pub struct Selector {
    pub include: Vec<Regex>,
    pub exclude: Vec<Regex>,
}

impl Selector {
    /// True when any include pattern matches anywhere in `name` and no exclude pattern does.
    pub fn matches(&self, name: &str) -> bool {
        self.include.iter().any(|re| re.is_match(name))
            && !self.exclude.iter().any(|re| re.is_match(name))
    }
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

/// True when the librdkafka property `key` holds a secret whose value must never be shown.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_PROPERTIES.contains(&key.as_str())
        || SECRET_MARKERS.iter().any(|marker| key.contains(marker))
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

    /// Human-readable summary for `check-config`: every effective setting with defaults filled
    /// in and secrets shown as `<redacted>`. The output is itself a valid configuration file.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, so the fmt::Result is discarded.
        let _ = self.write_description(&mut out);
        out
    }

    fn write_description(&self, out: &mut String) -> fmt::Result {
        let d = humantime::format_duration;
        let (time_lag, status) = (&self.time_lag, &self.status);
        let compat: Vec<&str> = self.compat.iter().map(|c| c.as_str()).collect();
        let web_config_file = match &self.web_config_file {
            Some(path) => quoted(&path.to_string_lossy()),
            None => "null".to_owned(),
        };
        writeln!(
            out,
            "# effective configuration: defaults filled in, secrets redacted"
        )?;
        writeln!(out, "listen: {}", quoted(&self.listen.to_string()))?;
        writeln!(out, "poll_interval: {}", d(self.poll_interval))?;
        writeln!(out, "granularity: {}", self.granularity.as_str())?;
        writeln!(out, "max_series: {}", self.max_series)?;
        writeln!(
            out,
            "offset_fetch_concurrency: {}",
            self.offset_fetch_concurrency
        )?;
        writeln!(out, "config_refresh: {}", d(self.config_refresh))?;
        writeln!(out, "time_lag:")?;
        writeln!(out, "  max_reads_per_poll: {}", time_lag.max_reads_per_poll)?;
        writeln!(out, "  history: {}", time_lag.history)?;
        writeln!(out, "status:")?;
        writeln!(out, "  window: {}", status.window)?;
        writeln!(out, "  allowed_lag: {}", status.allowed_lag)?;
        writeln!(out, "  stop_after: {}", d(status.stop_after))?;
        writeln!(out, "  eviction_warning: {}", d(status.eviction_warning))?;
        writeln!(out, "compat: [{}]", compat.join(", "))?;
        writeln!(out, "web_config_file: {web_config_file}")?;
        writeln!(out, "shard:")?;
        writeln!(out, "  index: {}", self.shard.index)?;
        writeln!(out, "  count: {}", self.shard.count)?;
        writeln!(out, "clusters:")?;
        for cluster in &self.clusters {
            writeln!(out, "  - name: {}", quoted(&cluster.name))?;
            writeln!(
                out,
                "    bootstrap_servers: {}",
                quoted(&cluster.bootstrap_servers)
            )?;
            writeln!(out, "    poll_interval: {}", d(cluster.poll_interval))?;
            writeln!(out, "    isolation: {}", cluster.isolation.as_str())?;
            for (key, selector) in [("groups", &cluster.groups), ("topics", &cluster.topics)] {
                writeln!(out, "    {key}:")?;
                writeln!(
                    out,
                    "      include: [{}]",
                    quoted_patterns(&selector.include)
                )?;
                writeln!(
                    out,
                    "      exclude: [{}]",
                    quoted_patterns(&selector.exclude)
                )?;
            }
            writeln!(
                out,
                "    kafka:{}",
                if cluster.kafka.is_empty() { " {}" } else { "" }
            )?;
            for (key, value) in &cluster.kafka {
                writeln!(out, "      {}: {}", yaml_key(key), quoted(value.shown()))?;
            }
        }
        Ok(())
    }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// Property names as written where YAML reads them back as the same string, else quoted.
fn yaml_key(key: &str) -> String {
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if plain {
        key.to_owned()
    } else {
        quoted(key)
    }
}

fn quoted_patterns(patterns: &[Regex]) -> String {
    patterns
        .iter()
        .map(|re| quoted(re.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where `{env: NAME}` and `{file: PATH}` values come from; injected so tests need not touch the
/// process environment.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Result<String, std::env::VarError>,
    /// Directory relative paths are resolved against; `None` = the working directory.
    base_dir: Option<&'a Path>,
}

impl Sources<'_> {
    /// The process environment and files relative to `base_dir`.
    fn process(base_dir: Option<&Path>) -> Sources<'_> {
        Sources {
            env: &|name| std::env::var(name),
            base_dir,
        }
    }

    fn resolve_path(&self, path: &Path) -> PathBuf {
        match self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }
}

#[derive(Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping of lagwatch settings"
)]
struct RawConfig {
    #[serde(deserialize_with = "de_listen")]
    listen: SocketAddr,
    #[serde(deserialize_with = "de_duration")]
    poll_interval: Duration,
    granularity: Granularity,
    max_series: usize,
    offset_fetch_concurrency: usize,
    #[serde(deserialize_with = "de_duration")]
    config_refresh: Duration,
    time_lag: TimeLagConfig,
    status: StatusConfig,
    compat: Vec<Compat>,
    web_config_file: Option<PathBuf>,
    shard: ShardConfig,
    /// Defaults to empty only so that validation reports the missing list in its own words.
    clusters: Vec<RawCluster>,
}

/// The defaults of PRODUCT.md §6.
impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9308)),
            poll_interval: Duration::from_secs(30),
            granularity: Granularity::Topic,
            max_series: 100_000,
            offset_fetch_concurrency: 16,
            config_refresh: Duration::from_secs(10 * 60),
            time_lag: TimeLagConfig::default(),
            status: StatusConfig::default(),
            compat: Vec::new(),
            web_config_file: None,
            shard: ShardConfig::default(),
            clusters: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a cluster mapping with name and bootstrap_servers"
)]
struct RawCluster {
    name: String,
    bootstrap_servers: String,
    #[serde(default)]
    kafka: RawKafka,
    #[serde(default)]
    groups: RawSelector,
    #[serde(default)]
    topics: RawSelector,
    #[serde(default, deserialize_with = "de_opt_duration")]
    poll_interval: Option<Duration>,
    #[serde(default)]
    isolation: Isolation,
}

/// A selector as written; a missing list takes its default, which differs for groups and topics.
#[derive(Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with include and exclude regex lists"
)]
struct RawSelector {
    include: Option<Vec<Pattern>>,
    exclude: Option<Vec<Pattern>>,
}

impl RawSelector {
    /// Fills a list left out with `default_*`, patterns known to compile.
    fn resolve(
        self,
        default_include: &[&str],
        default_exclude: &[&str],
    ) -> Result<Selector, regex::Error> {
        let list = |given: Option<Vec<Pattern>>, default: &[&str]| match given {
            Some(patterns) => Ok(patterns.into_iter().map(|p| p.0).collect()),
            None => default.iter().map(|p| Regex::new(p)).collect(),
        };
        Ok(Selector {
            include: list(self.include, default_include)?,
            exclude: list(self.exclude, default_exclude)?,
        })
    }
}

/// A regex compiled while deserializing, so its error carries the element's path.
struct Pattern(Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Regex::new(&text).map(Pattern).map_err(|e| {
            // A syntax error spans several lines (pattern, caret, reason); keep the reason so
            // every configuration error stays on one line.
            let message = e.to_string();
            let reason = message.lines().last().unwrap_or_default();
            let reason = reason.trim_start_matches("error: ");
            de::Error::custom(format!("invalid regex {text:?}: {reason}"))
        })
    }
}

/// `kafka:` as written: properties in file order.
#[derive(Default)]
struct RawKafka(Vec<(String, RawKafkaValue)>);

impl<'de> Deserialize<'de> for RawKafka {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;
        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = RawKafka;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of librdkafka properties")
            }
            // `kafka:` with nothing after it is YAML null: no properties.
            fn visit_unit<E: de::Error>(self) -> Result<RawKafka, E> {
                Ok(RawKafka::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKafka, A::Error> {
                let mut properties = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<RawKafkaValue>()?;
                    properties.push((key, value));
                }
                Ok(RawKafka(properties))
            }
        }
        deserializer.deserialize_any(PropertiesVisitor)
    }
}

/// One property value as written: a scalar, or where to read it from.
enum RawKafkaValue {
    Literal(String),
    Env(String),
    File(PathBuf),
}

/// The mapping form of a property value: exactly one of the two keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "{env: NAME} or {file: PATH}")]
struct RawValueSource {
    env: Option<String>,
    file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for RawKafkaValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = RawKafkaValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean, {env: NAME} or {file: PATH}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKafkaValue, E> {
                Ok(RawKafkaValue::Literal(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawKafkaValue, E> {
                Ok(RawKafkaValue::Literal(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawKafkaValue, E> {
                Ok(RawKafkaValue::Literal(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawKafkaValue, E> {
                Ok(RawKafkaValue::Literal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawKafkaValue, E> {
                Ok(RawKafkaValue::Literal(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawKafkaValue, A::Error> {
                let source =
                    RawValueSource::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (source.env, source.file) {
                    (Some(name), None) => Ok(RawKafkaValue::Env(name)),
                    (None, Some(path)) => Ok(RawKafkaValue::File(path)),
                    _ => Err(de::Error::custom(
                        "expected exactly one of {env: NAME} or {file: PATH}",
                    )),
                }
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// A humantime duration such as `30s`, `5m` or `1h 30m`.
fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"30s\", \"5m\" or \"1h 30m\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            humantime::parse_duration(v).map_err(|_| E::custom(format!("invalid duration {v:?}")))
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(deserializer).map(Some)
}

/// `IP:PORT`, or `:PORT` for every IPv4 interface (the Go exporters' spelling).
fn de_listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.clone(),
    };
    full.parse().map_err(|_| {
        de::Error::custom(format!(
            "invalid socket address {text:?} (expected IP:PORT, such as \"0.0.0.0:9308\")"
        ))
    })
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
    non_zero("config_refresh", raw.config_refresh)?;
    non_zero("status.stop_after", raw.status.stop_after)?;
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
        clusters.push(ClusterConfig {
            kafka: resolve_kafka(&path, cluster.kafka, sources)?,
            groups: cluster
                .groups
                .resolve(DEFAULT_INCLUDE, DEFAULT_GROUP_EXCLUDE)
                .map_err(|e| field_error(format!("{path}.groups"), e.to_string()))?,
            topics: cluster
                .topics
                .resolve(DEFAULT_INCLUDE, DEFAULT_TOPIC_EXCLUDE)
                .map_err(|e| field_error(format!("{path}.topics"), e.to_string()))?,
            poll_interval: cluster.poll_interval.unwrap_or(raw.poll_interval),
            isolation: cluster.isolation,
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

/// Rejects properties lagwatch owns and duplicates, then reads `{env}` and `{file}` values.
/// Error messages name keys, variables and files, never values.
fn resolve_kafka(
    cluster_path: &str,
    raw: RawKafka,
    sources: &Sources<'_>,
) -> Result<Vec<(String, KafkaValue)>, ConfigError> {
    let mut seen = HashSet::new();
    let mut resolved = Vec::with_capacity(raw.0.len());
    for (key, value) in raw.0 {
        let path = format!("{cluster_path}.kafka.{key}");
        let normalized = key.trim().to_ascii_lowercase();
        if let Some((_, reason)) = REJECTED_PROPERTIES
            .iter()
            .find(|(name, _)| *name == normalized)
        {
            return Err(field_error(path, *reason));
        }
        if !seen.insert(normalized) {
            return Err(field_error(path, "property set twice"));
        }
        let secret_key = is_secret_property(&key);
        let value = match value {
            RawKafkaValue::Literal(value) => KafkaValue {
                value,
                secret: secret_key,
            },
            RawKafkaValue::Env(name) => {
                let value = (sources.env)(&name).map_err(|e| {
                    let why = match e {
                        std::env::VarError::NotPresent => "is not set",
                        std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                    };
                    field_error(&path, format!("environment variable {name:?} {why}"))
                })?;
                KafkaValue {
                    value,
                    secret: true,
                }
            }
            RawKafkaValue::File(file) => {
                let file = sources.resolve_path(&file);
                let contents = std::fs::read_to_string(&file).map_err(|e| {
                    field_error(
                        &path,
                        format!(
                            "cannot read secret file {}: {e}",
                            quoted(&file.to_string_lossy())
                        ),
                    )
                })?;
                let value = contents.trim_end_matches(['\n', '\r']).to_owned();
                KafkaValue {
                    value,
                    secret: true,
                }
            }
        };
        resolved.push((key, value));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::env::VarError;

    /// PRODUCT.md §6, exactly as written.
    const MINIMAL: &str = r#"
listen: "0.0.0.0:9308"
poll_interval: 30s
granularity: topic
clusters:
  - name: local
    bootstrap_servers: "127.0.0.1:9092"
    kafka: {}                 # any librdkafka property: security.protocol, sasl.*, ssl.*
    groups: { include: [".*"], exclude: [] }
    topics: { include: [".*"], exclude: ["^__"] }
"#;

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml");
    const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lagwatch.yaml");
    const DOCS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ));

    /// A file: `top` lines, then `clusters:` with one cluster `local` holding the `cluster` lines.
    fn yaml(top: &str, cluster: &str) -> String {
        let cluster: String = cluster
            .lines()
            .map(|line| format!("    {line}\n"))
            .collect();
        let local = "  - name: local\n    bootstrap_servers: \"127.0.0.1:9092\"\n";
        format!("{top}\nclusters:\n{local}{cluster}")
    }

    /// Parses with a fake environment holding `vars`, relative paths against `base_dir`.
    fn parse_in(
        text: &str,
        vars: &[(&str, &str)],
        base_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let env = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
                .ok_or(VarError::NotPresent)
        };
        parse(
            text,
            &Sources {
                env: &env,
                base_dir,
            },
        )
    }

    fn error(text: &str) -> String {
        match parse_in(text, &[], None) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A fresh directory for this test's files.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lagwatch-config-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn patterns(regexes: &[Regex]) -> Vec<&str> {
        regexes.iter().map(Regex::as_str).collect()
    }

    fn property<'a>(cluster: &'a ClusterConfig, key: &str) -> &'a KafkaValue {
        &cluster.kafka.iter().find(|(k, _)| k == key).unwrap().1
    }

    /// The defaults of PRODUCT.md §6, written out rather than taken from the constants above, so a
    /// changed constant fails here.
    fn assert_defaults(config: &Config) {
        assert_eq!(config.listen, "0.0.0.0:9308".parse::<SocketAddr>().unwrap());
        assert_eq!(config.poll_interval, Duration::from_secs(30));
        assert_eq!(config.granularity, Granularity::Topic);
        assert_eq!(config.max_series, 100_000);
        assert_eq!(config.offset_fetch_concurrency, 16);
        assert_eq!(config.config_refresh, Duration::from_secs(600));
        assert_eq!(
            config.time_lag,
            TimeLagConfig {
                max_reads_per_poll: 1000,
                history: 64
            }
        );
        assert_eq!(
            config.status,
            StatusConfig {
                window: 10,
                allowed_lag: 0,
                stop_after: Duration::from_secs(900),
                eviction_warning: Duration::from_secs(3600),
            }
        );
        assert_eq!(config.compat, vec![]);
        assert_eq!(config.web_config_file, None);
        assert_eq!(config.shard, ShardConfig { index: 0, count: 1 });
        for cluster in &config.clusters {
            assert_eq!(
                cluster.poll_interval, config.poll_interval,
                "cluster {}",
                cluster.name
            );
            assert_eq!(cluster.isolation, Isolation::ReadUncommitted);
            assert!(cluster.kafka.is_empty());
            assert_eq!(patterns(&cluster.groups.include), [".*"]);
            assert_eq!(patterns(&cluster.groups.exclude), [] as [&str; 0]);
            assert_eq!(patterns(&cluster.topics.include), [".*"]);
            assert_eq!(patterns(&cluster.topics.exclude), ["^__"]);
        }
    }

    #[test]
    fn minimal_and_bare_files_get_the_defaults() {
        // The §6 minimal file spells some defaults out; the bare file relies on all of them.
        for text in [MINIMAL, &yaml("", "")] {
            let config = parse_in(text, &[], None).unwrap();
            assert_defaults(&config);
            assert_eq!(config.clusters.len(), 1);
            assert_eq!(config.clusters[0].name, "local");
            assert_eq!(config.clusters[0].bootstrap_servers, "127.0.0.1:9092");
        }
    }

    #[test]
    fn example_file_shows_exactly_the_defaults() {
        let config = Config::load(Path::new(EXAMPLE)).unwrap();
        assert_defaults(&config);
    }

    #[test]
    fn demo_file_parses() {
        let config = Config::load(Path::new(DEMO)).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9308".parse::<SocketAddr>().unwrap());
        assert_eq!(config.poll_interval, Duration::from_secs(5));
        assert_eq!(config.granularity, Granularity::Partition);
        let clusters: Vec<(&str, &str, Duration)> = config
            .clusters
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.bootstrap_servers.as_str(),
                    c.poll_interval,
                )
            })
            .collect();
        assert_eq!(
            clusters,
            [("demo", "127.0.0.1:19092", Duration::from_secs(5))]
        );
        for cluster in &config.clusters {
            assert!(cluster.kafka.is_empty());
            assert_eq!(patterns(&cluster.groups.include), [".*"]);
            assert_eq!(patterns(&cluster.topics.exclude), ["^__"]);
        }
    }

    /// The unknown-field error lists every accepted key of a mapping; each must appear in the
    /// example file and in the docs, so neither can fall behind the code.
    #[test]
    fn example_and_docs_show_every_key() {
        let example = std::fs::read_to_string(EXAMPLE).unwrap();
        let probes = [
            ("top level", yaml("zz_probe: 1", "")),
            ("time_lag", yaml("time_lag: {zz_probe: 1}", "")),
            ("status", yaml("status: {zz_probe: 1}", "")),
            ("shard", yaml("shard: {zz_probe: 1}", "")),
            ("cluster", yaml("", "zz_probe: 1")),
            ("selector", yaml("", "groups: {zz_probe: 1}")),
        ];
        for (mapping, text) in probes {
            let message = error(&text);
            // "expected `a` or `b`" for two keys, "expected one of `a`, `b`, `c`" for more.
            let (_, listed) = message
                .split_once("expected ")
                .unwrap_or_else(|| panic!("{message}"));
            let listed = listed.trim_start_matches("one of ").replace(" or ", ", ");
            let keys: Vec<&str> = listed.split(", ").map(|k| k.trim_matches('`')).collect();
            assert!(keys.len() >= 2, "{mapping}: {message}");
            for key in keys {
                assert!(
                    example.contains(&format!("{key}:")),
                    "{mapping}: `{key}` missing from example.yaml"
                );
                // As `key`, `parent.key` or `key.child` in a table row.
                let documented = [format!("`{key}`"), format!(".{key}`"), format!("`{key}.")];
                assert!(
                    documented.iter().any(|d| DOCS.contains(d)),
                    "{mapping}: `{key}` missing from docs"
                );
            }
        }
    }

    #[test]
    fn unknown_keys_are_errors_naming_their_path() {
        // (top-level lines, cluster lines, message prefix: serde lists the valid keys after it)
        let cases = [
            (
                "pol_interval: 30s",
                "",
                "pol_interval: unknown field `pol_interval`",
            ),
            (
                "",
                "pol_interval: 5s",
                "clusters[0].pol_interval: unknown field `pol_interval`",
            ),
            (
                "status: {windw: 3}",
                "",
                "status.windw: unknown field `windw`",
            ),
            (
                "",
                "topics: {includes: [a]}",
                "clusters[0].topics.includes: unknown field",
            ),
            (
                "",
                "kafka: {a.password: {envv: PW}}",
                "clusters[0].kafka.a.password.envv: unknown",
            ),
        ];
        for (top, cluster, expected) in cases {
            let message = error(&yaml(top, cluster));
            assert!(
                message.starts_with(expected),
                "{message:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn bad_values_are_errors_naming_their_path() {
        // (top-level lines, cluster lines, the whole message)
        let cases = [
            (
                "",
                "poll_interval: 3x",
                r#"clusters[0].poll_interval: invalid duration "3x""#,
            ),
            (
                "poll_interval: 30",
                "",
                "poll_interval: invalid type: integer `30`, \
                 expected a duration such as \"30s\", \"5m\" or \"1h 30m\"",
            ),
            (
                "poll_interval: 0s",
                "",
                "poll_interval: must be greater than zero",
            ),
            (
                "",
                "poll_interval: 0s",
                "clusters[0].poll_interval: must be greater than zero",
            ),
            (
                "config_refresh: 0s",
                "",
                "config_refresh: must be greater than zero",
            ),
            (
                "status: {stop_after: 0s}",
                "",
                "status.stop_after: must be greater than zero",
            ),
            (
                "granularity: topics",
                "",
                "granularity: unknown variant `topics`, \
                 expected one of `group`, `topic`, `partition`",
            ),
            (
                "compat: [kafka_exporter]",
                "",
                "compat[0]: unknown variant `kafka_exporter`, expected `kafka_lag_exporter`",
            ),
            (
                "",
                "isolation: committed",
                "clusters[0].isolation: unknown variant `committed`, \
                 expected `read_uncommitted` or `read_committed`",
            ),
            (
                "listen: localhost:9308",
                "",
                "listen: invalid socket address \"localhost:9308\" \
                 (expected IP:PORT, such as \"0.0.0.0:9308\")",
            ),
            (
                "max_series: many",
                "",
                r#"max_series: invalid type: string "many", expected usize"#,
            ),
            ("max_series: 0", "", "max_series: must be at least 1, got 0"),
            (
                "offset_fetch_concurrency: 0",
                "",
                "offset_fetch_concurrency: must be at least 1, got 0",
            ),
            (
                "time_lag: {history: 1}",
                "",
                "time_lag.history: must be at least 2, got 1",
            ),
            (
                "status: {window: 1}",
                "",
                "status.window: must be at least 2, got 1",
            ),
            (
                "status: {allowed_lag: -1}",
                "",
                "status.allowed_lag: must be at least 0, got -1",
            ),
            (
                "shard: {index: 3, count: 3}",
                "",
                "shard.index: must be less than shard.count (3), got 3",
            ),
            (
                "shard: {count: 0}",
                "",
                "shard.count: must be at least 1, got 0",
            ),
            (
                "",
                "kafka: {socket.timeout.ms: [1]}",
                "clusters[0].kafka.socket.timeout.ms: invalid type: sequence, \
                 expected a string, number, boolean, {env: NAME} or {file: PATH}",
            ),
            (
                "",
                "kafka: {sasl.password: {env: A, file: b}}",
                "clusters[0].kafka.sasl.password: \
                 expected exactly one of {env: NAME} or {file: PATH}",
            ),
        ];
        for (top, cluster, expected) in cases {
            let text = yaml(top, cluster);
            assert_eq!(error(&text), expected, "for {text:?}");
        }
    }

    #[test]
    fn bad_documents_and_cluster_lists_are_errors() {
        let two_named_a =
            "clusters: [{name: a, bootstrap_servers: b}, {name: a, bootstrap_servers: c}]";
        let cases = [
            ("clusters: []", "clusters: at least one cluster is required"),
            (
                "listen: \":9308\"",
                "clusters: at least one cluster is required",
            ),
            (
                "clusters: [{name: a}]",
                "clusters[0]: missing field `bootstrap_servers`",
            ),
            (
                two_named_a,
                r#"clusters[1].name: duplicate cluster name "a""#,
            ),
            (
                "clusters: [{name: \" \", bootstrap_servers: b}]",
                "clusters[0].name: must not be empty",
            ),
            (
                "- a\n- b",
                "the configuration must be a YAML mapping of settings",
            ),
            ("", "the configuration must be a YAML mapping of settings"),
        ];
        for (text, expected) in cases {
            assert_eq!(error(text), expected, "for {text:?}");
        }
        // Syntax errors come from the YAML parser, with a position instead of a path.
        let message = error("clusters: [\n");
        assert!(
            message.starts_with("invalid YAML: ") && message.contains("line "),
            "{message}"
        );
        // Regex syntax errors span lines (pattern, caret, reason); only the reason is kept.
        let message = error(&yaml("", "groups: {include: [\".*\", \"(\"]}"));
        let expected = r#"clusters[0].groups.include[1]: invalid regex "(": unclosed group"#;
        assert_eq!(message, expected);
    }

    #[test]
    fn cluster_poll_interval_overrides_the_top_level_one() {
        let text = "poll_interval: 1m
clusters:
  - {name: a, bootstrap_servers: x, poll_interval: 1h 30m}
  - {name: b, bootstrap_servers: y}";
        let config = parse_in(text, &[], None).unwrap();
        assert_eq!(config.poll_interval, Duration::from_secs(60));
        assert_eq!(
            config.clusters[0].poll_interval,
            Duration::from_secs(90 * 60)
        );
        // No override: the top-level value, not the built-in default.
        assert_eq!(config.clusters[1].poll_interval, Duration::from_secs(60));
    }

    #[test]
    fn kafka_values_are_resolved_in_file_order() {
        let dir = scratch_dir("kafka-values");
        std::fs::write(dir.join("key.pem"), "-----KEY-----\n\n").unwrap();
        std::fs::write(dir.join("user"), "alice\r\n").unwrap();
        let kafka = "kafka:
  security.protocol: SASL_SSL
  socket.timeout.ms: 6000
  enable.ssl.certificate.verification: false
  sasl.password: {env: KAFKA_PW}
  ssl.key.pem: {file: key.pem}
  sasl.username: {file: user}";
        let text = yaml("", kafka);
        let config = parse_in(&text, &[("KAFKA_PW", "hunter2")], Some(&dir)).unwrap();
        let got: Vec<(&str, &str, bool)> = config.clusters[0]
            .kafka
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str(), v.secret))
            .collect();
        assert_eq!(
            got,
            [
                ("security.protocol", "SASL_SSL", false),
                ("socket.timeout.ms", "6000", false),
                ("enable.ssl.certificate.verification", "false", false),
                ("sasl.password", "hunter2", true),
                // Trailing newlines are trimmed, inner content kept.
                ("ssl.key.pem", "-----KEY-----", true),
                // Not a secret by name, but kept out of the file on purpose: treated as one.
                ("sasl.username", "alice", true),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unresolvable_secrets_are_errors_naming_path_and_source() {
        let cases = [
            (
                yaml(
                    "",
                    "kafka: {sasl.password: {env: LAGWATCH_TEST_UNSET_7F3A}}",
                ),
                "clusters[0].kafka.sasl.password: \
                 environment variable \"LAGWATCH_TEST_UNSET_7F3A\" is not set",
            ),
            (
                yaml(
                    "",
                    "kafka: {ssl.key.pem: {file: /nonexistent/lagwatch/key.pem}}",
                ),
                "clusters[0].kafka.ssl.key.pem: \
                 cannot read secret file \"/nonexistent/lagwatch/key.pem\": ",
            ),
        ];
        for (text, expected) in cases {
            // Through the public entry point, which reads the real environment.
            let message = Config::from_yaml(&text).unwrap_err().to_string();
            assert!(
                message.starts_with(expected),
                "got {message:?}, want prefix {expected:?}"
            );
        }
    }

    #[test]
    fn secrets_never_appear_in_describe_debug_or_errors() {
        let kafka = "kafka:
  sasl.password: hunter2
  sasl.oauthbearer.client.secret: {env: CS}
  security.protocol: SASL_SSL";
        let text = yaml("", kafka);
        let config = parse_in(&text, &[("CS", "s3cr3t-value")], None).unwrap();
        let cluster = &config.clusters[0];
        assert_eq!(property(cluster, "sasl.password").value, "hunter2");
        for shown in [
            config.describe(),
            format!("{config:?}"),
            format!("{config:#?}"),
        ] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("s3cr3t-value"),
                "{shown}"
            );
            assert!(shown.contains(REDACTED), "{shown}");
            assert!(
                shown.contains("SASL_SSL"),
                "non-secrets stay visible: {shown}"
            );
        }
        // An error later in the file must not echo earlier secret values.
        let failing = yaml("", "kafka: {sasl.password: hunter2, group.id: x}");
        assert!(!error(&failing).contains("hunter2"));
    }

    #[test]
    fn properties_lagwatch_sets_are_rejected() {
        let cases = [
            ("group.id", "lagwatch sets this property itself"),
            (
                "enable.auto.commit",
                "lagwatch sets this property itself (it never commits)",
            ),
            (
                "statistics.interval.ms",
                "lagwatch sets this property itself (it counts requests from statistics)",
            ),
            ("enable.partition.eof", "lagwatch sets this property itself"),
            (
                "bootstrap.servers",
                "set `bootstrap_servers` on the cluster instead",
            ),
            (
                "metadata.broker.list",
                "set `bootstrap_servers` on the cluster instead",
            ),
            ("isolation.level", "set `isolation` on the cluster instead"),
        ];
        for (key, reason) in cases {
            let text = yaml("", &format!("kafka: {{client.id: lagwatch, {key}: x}}"));
            assert_eq!(error(&text), format!("clusters[0].kafka.{key}: {reason}"));
        }
    }

    #[test]
    fn selectors_match_anywhere_and_exclude_wins() {
        let text = yaml(
            "",
            "groups: {include: [\"^payments-\", billing], exclude: [\"-test$\"]}\ntopics: {}",
        );
        let config = parse_in(&text, &[], None).unwrap();
        let (groups, topics) = (&config.clusters[0].groups, &config.clusters[0].topics);
        let cases = [
            // (selector, name, expected, why)
            (
                groups,
                "payments-api",
                true,
                "anchored include matches at the start",
            ),
            (
                groups,
                "old-payments-api",
                false,
                "^ anchors: not at the start",
            ),
            (
                groups,
                "eu-billing-worker",
                true,
                "unanchored include matches anywhere",
            ),
            (
                groups,
                "payments-api-test",
                false,
                "exclude wins over include",
            ),
            (groups, "shipping", false, "no include matches"),
            (
                topics,
                "orders",
                true,
                "default include .* matches everything",
            ),
            (
                topics,
                "__consumer_offsets",
                false,
                "default exclude ^__ drops internal topics",
            ),
            (
                topics,
                "__transaction_state",
                false,
                "default exclude ^__ drops internal topics",
            ),
            (topics, "orders__v2", true, "^__ only excludes the prefix"),
        ];
        for (selector, name, expected, why) in cases {
            assert_eq!(selector.matches(name), expected, "{name}: {why}");
        }
        let defaults = parse_in(&yaml("", ""), &[], None).unwrap();
        assert!(
            defaults.clusters[0].groups.matches("__anything"),
            "default groups exclude nothing"
        );
        // An explicit empty exclude list replaces the default one.
        let all_topics = parse_in(&yaml("", "topics: {exclude: []}"), &[], None).unwrap();
        assert!(all_topics.clusters[0].topics.matches("__consumer_offsets"));
    }

    #[test]
    fn secret_property_names() {
        let cases = [
            ("sasl.password", true),
            ("ssl.key.password", true),
            ("ssl.keystore.password", true),
            ("ssl.key.pem", true),
            ("ssl_key", true),
            ("sasl.oauthbearer.config", true),
            ("sasl.oauthbearer.client.secret", true),
            ("sasl.oauthbearer.assertion.private.key.passphrase", true),
            ("SASL.PASSWORD", true),
            ("security.protocol", false),
            ("sasl.username", false),
            ("ssl.ca.location", false),
            ("ssl.certificate.pem", false),
        ];
        for (key, expected) in cases {
            assert_eq!(is_secret_property(key), expected, "{key}");
        }
    }

    #[test]
    fn describe_is_a_config_that_loads_to_the_same_settings() {
        let top = r#"listen: ":9400"
poll_interval: 1h 30m
granularity: partition
compat: [kafka_lag_exporter, kafka_lag_exporter]
shard: {index: 1, count: 4}
web_config_file: web.yml"#;
        let text = yaml(
            top,
            "isolation: read_committed\nkafka: {client.id: 'a \"quoted\" id', '9 lives': x}",
        );
        let config = parse_in(&text, &[], None).unwrap();
        let described = config.describe();
        let reloaded = parse_in(&described, &[], None).unwrap();
        assert_eq!(reloaded.describe(), described);
        assert_eq!(config.listen, "0.0.0.0:9400".parse::<SocketAddr>().unwrap());
        assert_eq!(
            config.compat,
            [Compat::KafkaLagExporter],
            "duplicates collapse"
        );
        for line in [
            "poll_interval: 1h 30m",
            "granularity: partition",
            "isolation: read_committed",
            "  index: 1",
            "exclude: [\"^__\"]",
            "      client.id: \"a \\\"quoted\\\" id\"",
            "      \"9 lives\": \"x\"",
        ] {
            assert!(
                described.contains(line),
                "{line:?} missing from\n{described}"
            );
        }
        assert_eq!(
            property(&reloaded.clusters[0], "client.id").value,
            "a \"quoted\" id"
        );
    }

    #[test]
    fn load_names_the_file_and_resolves_relative_paths_against_its_directory() {
        let missing = Path::new("/nonexistent/lagwatch.yaml");
        let message = Config::load(missing).unwrap_err().to_string();
        assert!(
            message.starts_with("cannot read config file /nonexistent/lagwatch.yaml: "),
            "{message}"
        );

        let dir = scratch_dir("load");
        std::fs::write(dir.join("pw"), "from-file\n").unwrap();
        let file = dir.join("lagwatch.yaml");
        std::fs::write(
            &file,
            yaml(
                "web_config_file: web.yml",
                "kafka: {sasl.password: {file: pw}}",
            ),
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.web_config_file, Some(dir.join("web.yml")));
        assert_eq!(
            property(&config.clusters[0], "sasl.password").value,
            "from-file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn granularity_orders_coarse_to_fine_and_spells_as_yaml() {
        assert!(
            Granularity::Group < Granularity::Topic && Granularity::Topic < Granularity::Partition
        );
        for granularity in [
            Granularity::Group,
            Granularity::Topic,
            Granularity::Partition,
        ] {
            let text = yaml(&format!("granularity: {}", granularity.as_str()), "");
            assert_eq!(parse_in(&text, &[], None).unwrap().granularity, granularity);
        }
    }

    #[test]
    fn shards_split_groups_by_fnv1a_64() {
        // Published FNV-1a-64 test vectors.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        let shards: Vec<ShardConfig> = (0..3)
            .map(|index| ShardConfig { index, count: 3 })
            .collect();
        for group in ["billing", "search", "a", "", "payments-v2"] {
            let owners = shards.iter().filter(|s| s.owns(group)).count();
            assert_eq!(owners, 1, "{group:?} belongs to exactly one shard");
        }
        assert!(
            ShardConfig::default().owns("anything"),
            "one shard owns every group"
        );
        // "a" hashes to ...ec8c, which is even: shard 0 of 2.
        assert!(ShardConfig { index: 0, count: 2 }.owns("a"));
    }
}
