//! The file as written: serde structs that reject unknown keys, and the defaults of every key the
//! typed sections ([`TimeLagConfig`], [`StatusConfig`], [`ShardConfig`], [`HttpLimits`]) do not
//! default themselves.
//! Nothing here checks values against each other; `validate` in the parent module does.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::scalars::{de_duration, de_listen, de_opt_duration, Pattern};
use super::secrets::RawKafka;
use super::{
    Compat, Granularity, GroupRequests, HttpLimits, Isolation, Selector, ShardConfig, StatusConfig,
    TimeLagConfig,
};

/// Selector lists used where the file leaves one out.
const DEFAULT_INCLUDE: &[&str] = &[".*"];
const DEFAULT_GROUP_EXCLUDE: &[&str] = &[];
/// Internal topics (`__consumer_offsets`, `__transaction_state`) hold no application data.
const DEFAULT_TOPIC_EXCLUDE: &[&str] = &["^__"];

#[derive(Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping of lagwatch settings"
)]
pub(super) struct RawConfig {
    #[serde(deserialize_with = "de_listen")]
    pub(super) listen: SocketAddr,
    #[serde(deserialize_with = "de_duration")]
    pub(super) poll_interval: Duration,
    #[serde(deserialize_with = "de_opt_duration")]
    pub(super) poll_timeout: Option<Duration>,
    pub(super) granularity: Granularity,
    pub(super) max_series: usize,
    pub(super) offset_fetch_concurrency: usize,
    #[serde(deserialize_with = "de_duration")]
    pub(super) config_refresh: Duration,
    pub(super) time_lag: TimeLagConfig,
    pub(super) status: StatusConfig,
    pub(super) compat: Vec<Compat>,
    pub(super) web_config_file: Option<PathBuf>,
    pub(super) web: HttpLimits,
    pub(super) shard: ShardConfig,
    /// Defaults to empty only so that validation reports the missing list in its own words.
    pub(super) clusters: Vec<RawCluster>,
}

/// The defaults of PRODUCT.md §6.
impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9308)),
            poll_interval: Duration::from_secs(30),
            poll_timeout: None,
            granularity: Granularity::default(),
            max_series: 100_000,
            offset_fetch_concurrency: 16,
            config_refresh: Duration::from_secs(10 * 60),
            time_lag: TimeLagConfig::default(),
            status: StatusConfig::default(),
            compat: Vec::new(),
            web_config_file: None,
            web: HttpLimits::default(),
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
pub(super) struct RawCluster {
    pub(super) name: String,
    pub(super) bootstrap_servers: String,
    #[serde(default)]
    pub(super) kafka: RawKafka,
    #[serde(default)]
    pub(super) groups: RawSelector,
    #[serde(default)]
    pub(super) topics: RawSelector,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub(super) poll_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub(super) poll_timeout: Option<Duration>,
    #[serde(default)]
    pub(super) isolation: Isolation,
    #[serde(default)]
    pub(super) group_requests: GroupRequests,
    #[serde(default)]
    pub(super) aws_msk_iam: Option<super::aws::RawAwsMskIam>,
}

/// A selector as written; a missing list takes its default, which differs for groups and topics.
#[derive(Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with include and exclude regex lists"
)]
pub(super) struct RawSelector {
    include: Option<Vec<Pattern>>,
    exclude: Option<Vec<Pattern>>,
}

impl RawSelector {
    /// The `groups` selector; by default every group.
    pub(super) fn groups(self) -> Result<Selector, regex::Error> {
        self.resolve(DEFAULT_INCLUDE, DEFAULT_GROUP_EXCLUDE)
    }

    /// The `topics` selector; by default every topic but the internal ones.
    pub(super) fn topics(self) -> Result<Selector, regex::Error> {
        self.resolve(DEFAULT_INCLUDE, DEFAULT_TOPIC_EXCLUDE)
    }

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
