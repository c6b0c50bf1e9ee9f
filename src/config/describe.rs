//! The `check-config` output: every effective setting, defaults filled in and secrets redacted,
//! written as a configuration file that loads back to the same settings.

use std::fmt::{self, Write as _};

use regex::Regex;

use super::Config;

impl Config {
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
        writeln!(out, "  min_time_lag: {}", d(status.min_time_lag))?;
        writeln!(out, "  inactive_after: {}", d(status.inactive_after))?;
        writeln!(out, "compat: [{}]", compat.join(", "))?;
        writeln!(out, "web_config_file: {web_config_file}")?;
        writeln!(out, "web:")?;
        writeln!(out, "  request_timeout: {}", d(self.web.request_timeout))?;
        writeln!(out, "  max_connections: {}", self.web.max_connections)?;
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
            writeln!(out, "    poll_timeout: {}", d(cluster.poll_timeout))?;
            writeln!(out, "    isolation: {}", cluster.isolation.as_str())?;
            writeln!(
                out,
                "    group_requests: {}",
                cluster.group_requests.as_str()
            )?;
            if let Some(msk) = &cluster.aws_msk_iam {
                writeln!(out, "    aws_msk_iam:")?;
                writeln!(out, "      region: {}", quoted(&msk.region))?;
                match &msk.profile {
                    Some(p) => writeln!(out, "      profile: {}", quoted(p))?,
                    None => writeln!(out, "      profile: null")?,
                }
            }
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
pub(super) fn quoted(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::config::tests::{parse_in, property, yaml};
    use crate::config::Compat;

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
            "isolation: read_committed\ngroup_requests: librdkafka\nkafka: {client.id: 'a \"quoted\" id', '9 lives': x}",
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
            "group_requests: librdkafka",
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
}
