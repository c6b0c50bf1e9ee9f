//! The describe_configs stage: retention and cleanup policy per topic, read when the topic set
//! changes or `config_refresh` passed.

use std::time::Instant;

use rdkafka::consumer::Consumer;

use super::error::{CollectError, StageError};
use super::{admin_sys, stage_timeout, ClusterCollector, Deadline, Stage};
use crate::model::TopicConfig;

/// Topic configuration keys lagwatch reads.
const CONFIG_KEYS: [&str; 3] = ["retention.ms", "retention.bytes", "cleanup.policy"];

impl ClusterCollector {
    /// Reads topic configs when the topic set changed or `config_refresh` passed; keeps the last
    /// good values on failure.
    pub(super) fn refresh_configs(
        &mut self,
        topics: &[(String, Vec<i32>)],
        deadline: &Deadline,
        errors: &mut Vec<StageError>,
    ) {
        let names: Vec<String> = topics.iter().map(|(n, _)| n.clone()).collect();
        let due = match &self.configs_read {
            None => true,
            Some((at, read_for)) => {
                *read_for != names || at.elapsed() >= self.settings.config_refresh
            }
        };
        if !due || names.is_empty() {
            return;
        }
        let Some(timeout) = stage_timeout(deadline, Stage::DescribeConfigs, errors) else {
            return;
        };
        // DescribeConfigs goes to a broker librdkafka picks, not one lagwatch knows: no broker field.
        match admin_sys::describe_topic_configs(
            self.consumer.client(),
            &names,
            &CONFIG_KEYS,
            timeout,
        ) {
            Ok(configs) => {
                for (topic, source) in configs.failed {
                    errors.push(StageError::new(
                        Stage::DescribeConfigs,
                        None,
                        CollectError::Topic { topic, source },
                    ));
                }
                self.configs = configs
                    .described
                    .into_iter()
                    .map(|t| (t.topic, topic_config(&t.entries)))
                    .collect();
                self.configs_read = Some((Instant::now(), names));
            }
            Err(e) => errors.push(StageError::new(Stage::DescribeConfigs, None, e)),
        }
    }
}

/// Parses the config entries lagwatch reads; unparsable numbers count as unknown.
fn topic_config(entries: &[(String, String)]) -> TopicConfig {
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    TopicConfig {
        retention_ms: get("retention.ms").and_then(|v| v.trim().parse().ok()),
        retention_bytes: get("retention.bytes").and_then(|v| v.trim().parse().ok()),
        cleanup_policy: get("cleanup.policy").map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_config_parses_known_keys_and_leaves_the_rest_unknown() {
        let entries = vec![
            ("retention.ms".to_string(), "3600000".to_string()),
            ("cleanup.policy".to_string(), "compact,delete".to_string()),
            ("retention.bytes".to_string(), "lots".to_string()),
        ];
        let c = topic_config(&entries);
        assert_eq!(c.retention_ms, Some(3_600_000));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.cleanup_policy.as_deref(), Some("compact,delete"));
        assert_eq!(topic_config(&[]), TopicConfig::default());
    }
}
