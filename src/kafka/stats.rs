//! Kafka requests counted from librdkafka's statistics, per broker.
//!
//! librdkafka reports cumulative per-broker request counts (`brokers.*.req`) every
//! `statistics.interval.ms` on the handle's main queue. The counter here adds each report's
//! deltas, so `lagwatch_kafka_requests_total` survives reconnects and handle re-creation.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::consumer::ConsumerContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

use super::msk_iam::MskIamTokenSource;
use super::oauth::{Method, TokenSource};
use crate::config::AwsMskIam;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The part of a librdkafka statistics report the request counter needs.
#[derive(Deserialize)]
struct RequestStats<'a> {
    #[serde(borrow, default)]
    brokers: HashMap<Cow<'a, str>, BrokerRequests<'a>>,
}

#[derive(Deserialize)]
struct BrokerRequests<'a> {
    /// `host:port/id`.
    #[serde(borrow)]
    name: Cow<'a, str>,
    nodeid: i32,
    /// Cumulative requests sent, by request type.
    #[serde(borrow, default)]
    req: HashMap<Cow<'a, str>, i64>,
}

/// Cumulative requests per broker label: the node id, or `bootstrap` for bootstrap connections.
#[derive(Debug, Default)]
pub struct RequestCounter {
    /// Last cumulative count seen per handle and librdkafka broker name (`host:port/id`).
    last: HashMap<(&'static str, String), u64>,
    totals: BTreeMap<String, u64>,
}

impl RequestCounter {
    /// Adds one statistics report of `handle`: `(broker name, node id, cumulative requests)` per broker.
    pub fn observe<'a>(
        &mut self,
        handle: &'static str,
        brokers: impl IntoIterator<Item = (&'a str, i32, u64)>,
    ) {
        for (name, node_id, cumulative) in brokers {
            let previous = self
                .last
                .insert((handle, name.to_string()), cumulative)
                .unwrap_or(0);
            // A smaller count means librdkafka restarted its counters (new handle): count it whole.
            let delta = if cumulative >= previous {
                cumulative - previous
            } else {
                cumulative
            };
            let label = if node_id < 0 {
                "bootstrap".to_string()
            } else {
                node_id.to_string()
            };
            *self.totals.entry(label).or_insert(0) += delta;
        }
    }

    /// Adds one librdkafka statistics report (JSON) of `handle`.
    pub fn observe_statistics(
        &mut self,
        handle: &'static str,
        statistics: &[u8],
    ) -> Result<(), serde_json::Error> {
        let report: RequestStats<'_> = serde_json::from_slice(statistics)?;
        self.observe(
            handle,
            report.brokers.values().map(|b| {
                let requests: i64 = b.req.values().sum();
                (
                    b.name.as_ref(),
                    b.nodeid,
                    u64::try_from(requests).unwrap_or(0),
                )
            }),
        );
        Ok(())
    }

    /// Adds requests lagwatch's own protocol path sent to the broker labelled `label` (a node
    /// id, or `bootstrap`), counted as they are written.
    pub fn add(&mut self, label: &str, requests: u64) {
        *self.totals.entry(label.to_string()).or_insert(0) += requests;
    }

    pub fn totals(&self) -> BTreeMap<String, u64> {
        self.totals.clone()
    }
}

/// The librdkafka context of a cluster's handles: logs through `tracing`, counts requests into
/// a counter shared by the cluster's handles, and answers librdkafka's OAUTHBEARER token
/// refresh requests with AWS MSK IAM tokens when the cluster has `aws_msk_iam`.
#[derive(Debug)]
pub struct StatsContext {
    pub cluster: String,
    /// Which of the cluster's handles this is (`admin`, `reader`).
    handle: &'static str,
    requests: Arc<Mutex<RequestCounter>>,
    /// The tokens librdkafka's refresh hook asks for: the cluster's AWS MSK IAM ones.
    tokens: Option<TokenSource>,
}

impl StatsContext {
    pub fn new(
        cluster: &str,
        handle: &'static str,
        requests: Arc<Mutex<RequestCounter>>,
    ) -> StatsContext {
        StatsContext {
            cluster: cluster.to_string(),
            handle,
            requests,
            tokens: None,
        }
    }

    /// This context with `settings`' MSK IAM token source, when there are settings.
    pub fn with_msk_iam(mut self, settings: Option<&AwsMskIam>) -> StatsContext {
        self.tokens = settings.map(|s| TokenSource::new(Method::MskIam(MskIamTokenSource::new(s))));
        self
    }

    /// This context with its own MSK IAM token source.
    pub fn with_token_source(mut self, source: MskIamTokenSource) -> StatsContext {
        self.tokens = Some(TokenSource::new(Method::MskIam(source)));
        self
    }
}

impl ClientContext for StatsContext {
    // librdkafka asks for a token only for OAUTHBEARER without its own token source (not for
    // `sasl.oauthbearer.method: oidc`, nor with `enable.sasl.oauthbearer.unsecure.jwt`): at
    // start and at 80 % of each token's lifetime, on the handle's main queue.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let Some(source) = &self.tokens else {
            return Err("no OAUTHBEARER token source: set sasl.oauthbearer.method: oidc or the cluster's aws_msk_iam".into());
        };
        let token = source.token(SystemTime::now())?;
        let lifetime_ms = token
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        tracing::debug!(
            cluster = self.cluster.as_str(),
            handle = self.handle,
            expires_in_ms = lifetime_ms - now_ms(),
            "made an OAUTHBEARER token"
        );
        Ok(OAuthToken {
            token: token.value,
            principal_name: token.principal,
            lifetime_ms,
        })
    }

    // Only the per-broker request counts are read: the rest of a report (every topic and
    // partition the handle knows, thousands of them on a big cluster) is skipped, not built.
    fn stats_raw(&self, statistics: &[u8]) {
        let mut counter = match self.requests.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = counter.observe_statistics(self.handle, statistics) {
            tracing::warn!(cluster = self.cluster.as_str(), error = %e, "unreadable librdkafka statistics");
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let cluster = self.cluster.as_str();
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(cluster, facility = fac, "librdkafka: {log_message}")
            }
            L::Warning => tracing::warn!(cluster, facility = fac, "librdkafka: {log_message}"),
            L::Notice | L::Info => {
                tracing::info!(cluster, facility = fac, "librdkafka: {log_message}")
            }
            L::Debug => tracing::debug!(cluster, facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let cluster = self.cluster.as_str();
        // A refused SASL login (bad credentials, a token the broker rejects) or a token
        // librdkafka could not get or would not send: the cluster stays down until the
        // credentials change, so it is an error of its own, with librdkafka's cause (the
        // broker's or the token endpoint's words, never the credentials themselves).
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Authentication) {
            tracing::error!(cluster, cause = reason, "Kafka authentication failed");
        } else {
            tracing::warn!(cluster, %error, "librdkafka: {reason}");
        }
    }
}

impl ConsumerContext for StatsContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_accumulate_per_node_and_survive_counter_resets() {
        let mut c = RequestCounter::default();
        c.observe("admin", [("h:9092/bootstrap", -1, 3)]);
        c.observe(
            "admin",
            [("h:9092/bootstrap", -1, 5), ("h:9092/111", 111, 10)],
        );
        c.observe(
            "admin",
            [("h:9092/bootstrap", -1, 5), ("h:9092/111", 111, 14)],
        );
        // A second handle to the same broker counts on its own: 3 more requests.
        c.observe("reader", [("h:9092/111", 111, 3)]);
        // A re-created handle starts again from zero: its 2 requests are new, not -12.
        c.observe("admin", [("h:9092/111", 111, 2)]);
        let totals = c.totals();
        assert_eq!(totals.get("bootstrap"), Some(&5));
        assert_eq!(totals.get("111"), Some(&19));
        assert_eq!(totals.len(), 2);
        // The native path adds its own requests to the same labels.
        c.add("111", 2);
        c.add("bootstrap", 1);
        assert_eq!(c.totals().get("111"), Some(&21));
        assert_eq!(c.totals().get("bootstrap"), Some(&6));
    }

    #[test]
    fn a_statistics_report_counts_the_requests_of_each_broker_and_skips_the_rest() {
        let report = br#"{"name": "rdkafka#consumer-1", "ts": 1, "msg_cnt": 0,
            "brokers": {
                "h:9092/bootstrap": {"name": "h:9092/bootstrap", "nodeid": -1,
                    "req": {"Metadata": 2, "ApiVersion": 1}, "rtt": {"min": 0}},
                "h:9092/7": {"name": "h:9092/7", "nodeid": 7, "state": "UP",
                    "req": {"ListOffsets": 8, "Fetch": 3}, "toppars": {"t-0": {"partition": 0}}}},
            "topics": {"t": {"topic": "t", "partitions": {"0": {"partition": 0, "hi_offset": 9}}}}}"#;
        let mut c = RequestCounter::default();
        c.observe_statistics("admin", report).unwrap();
        assert_eq!(c.totals().get("bootstrap"), Some(&3));
        assert_eq!(c.totals().get("7"), Some(&11));
        assert_eq!(c.totals().len(), 2);
        // Broker names with JSON escapes are read too; a report that is no JSON is an error.
        let escaped =
            br#"{"brokers": {"h\/x": {"name": "h:9092\/7", "nodeid": 7, "req": {"Fetch": 12}}}}"#;
        c.observe_statistics("admin", escaped).unwrap();
        assert_eq!(c.totals().get("7"), Some(&12));
        assert!(c.observe_statistics("admin", b"{").is_err());
    }
}
