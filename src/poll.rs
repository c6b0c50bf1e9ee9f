//! One complete poll of one cluster, shared by the daemon's poll loops (`app`) and `lagwatch
//! lag`: collect a snapshot, read the record timestamps the model asks for, finish the model
//! into a report. Blocking; callers run it off the async workers.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::config::{ClusterConfig, Config};
use crate::kafka::{
    ClusterCollector, CollectError, CollectorSettings, PollOutcome, StageError, Unauthorized,
};
use crate::model::analytics::{AnalyticsSettings, ClusterAnalytics, Event};
use crate::model::Report;

/// The analytics thresholds and bounds of the configuration. Every field is named, so a setting
/// added to the model must be given its source here rather than fall back to a default unnoticed.
pub fn analytics_settings(config: &Config) -> AnalyticsSettings {
    AnalyticsSettings {
        history: config.time_lag.history,
        max_reads_per_poll: config.time_lag.max_reads_per_poll,
        window: config.status.window,
        allowed_lag: config.status.allowed_lag,
        stop_after: config.status.stop_after,
        eviction_warning: config.status.eviction_warning,
        min_time_lag: config.status.min_time_lag,
        inactive_after: config.status.inactive_after,
        // No configuration key sets it.
        timestamp_cache: AnalyticsSettings::DEFAULT.timestamp_cache,
    }
}

/// The result of one complete poll: collection, timestamp reads, model.
pub struct PollResult {
    pub outcome: PollOutcome,
    /// `None` when the metadata or offsets stage failed.
    pub report: Option<Report>,
    pub events: Vec<Event>,
    pub timestamp_reads_pending: usize,
}

/// One poll of one cluster, both phases: collect, read the record timestamps the model asks
/// for, finish the model. Blocking.
fn poll_once(collector: &mut ClusterCollector, analytics: &mut ClusterAnalytics) -> PollResult {
    let deadline = collector.deadline();
    let mut outcome = collector.poll(&deadline);
    let Some(snapshot) = outcome.snapshot.take() else {
        return PollResult {
            outcome,
            report: None,
            events: Vec::new(),
            timestamp_reads_pending: 0,
        };
    };
    let plan = analytics.plan_reads(&snapshot);
    let reads = collector.read_timestamps(&plan.reads, &deadline, &mut outcome.errors);
    analytics.no_record_before_head(&snapshot, &reads.no_record_before_head);
    let result = analytics.finish(&snapshot, &reads.timestamps, SystemTime::now());
    outcome.snapshot = Some(snapshot);
    PollResult {
        outcome,
        report: Some(result.report),
        events: result.events,
        timestamp_reads_pending: result.timestamp_reads_pending,
    }
}

/// One cluster's polls as the daemon's poll loop drives them. The loop owns the timing (ticks,
/// staleness, readiness, shutdown) and is written against this trait so that timing can be
/// tested with a scripted poller on a paused clock; at runtime it is a [`ClusterPoller`].
pub trait Poller: Send + 'static {
    /// One complete poll. Blocking: the loop runs it on a blocking thread.
    fn poll(&mut self) -> PollResult;
    /// Cumulative requests by broker since start (`lagwatch_kafka_requests_total`).
    fn requests(&self) -> BTreeMap<String, u64>;
}

/// A cluster's Kafka client and the analytics state kept across its polls.
pub struct ClusterPoller {
    collector: ClusterCollector,
    analytics: ClusterAnalytics,
}

impl ClusterPoller {
    /// Creates the client of `cluster`, one of `config`'s clusters. Blocking.
    pub fn new(config: &Config, cluster: &ClusterConfig) -> Result<ClusterPoller, CollectError> {
        let collector = ClusterCollector::new(CollectorSettings {
            cluster: cluster.clone(),
            shard: config.shard.clone(),
            offset_fetch_concurrency: config.offset_fetch_concurrency,
            config_refresh: config.config_refresh,
        })?;
        Ok(ClusterPoller {
            collector,
            analytics: ClusterAnalytics::new(analytics_settings(config)),
        })
    }
}

/// Logs each failed stage of a poll with the cluster, stage and broker as fields.
pub fn log_stage_errors(cluster: &str, errors: &[StageError]) {
    for e in errors {
        tracing::warn!(
            cluster,
            stage = e.stage.as_str(),
            broker = e.broker.as_ref().map(tracing::field::display),
            error = %e,
            "poll stage failed"
        );
    }
}

/// Says which selected topics and groups Kafka refused to describe, once per poll while any
/// are: their series are absent, and a group whose topic is hidden shows no lag on it.
pub fn log_unauthorized(cluster: &str, unauthorized: &Unauthorized) {
    if unauthorized.is_empty() {
        return;
    }
    tracing::warn!(
        cluster,
        topics = unauthorized.topics.join(", "),
        groups = unauthorized.groups.join(", "),
        "selected topics or groups hidden by Kafka ACLs (no Describe permission)"
    );
}

impl Poller for ClusterPoller {
    fn poll(&mut self) -> PollResult {
        poll_once(&mut self.collector, &mut self.analytics)
    }

    fn requests(&self) -> BTreeMap<String, u64> {
        self.collector.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_time_lag_or_status_gets_the_model_defaults() {
        let config =
            Config::from_yaml("clusters: [{name: local, bootstrap_servers: \"127.0.0.1:9092\"}]")
                .unwrap();
        assert_eq!(analytics_settings(&config), AnalyticsSettings::default());
    }
}
