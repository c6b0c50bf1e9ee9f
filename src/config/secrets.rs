//! The `kafka:` mapping of a cluster: librdkafka properties lagwatch refuses because it sets them
//! itself, values read from `{env: NAME}` or `{file: PATH}`, and which values are secrets that
//! `Debug`, logs and `check-config` show only as `<redacted>`.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::describe::quoted;
use super::{field_error, ConfigError};

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

/// True when the librdkafka property `key` holds a secret whose value must never be shown.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_PROPERTIES.contains(&key.as_str())
        || SECRET_MARKERS.iter().any(|marker| key.contains(marker))
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
    pub(super) fn shown(&self) -> &str {
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

/// Where `{env: NAME}` and `{file: PATH}` values come from; injected so tests need not touch the
/// process environment.
pub(super) struct Sources<'a> {
    pub(super) env: &'a dyn Fn(&str) -> Result<String, std::env::VarError>,
    /// Directory relative paths are resolved against; `None` = the working directory.
    pub(super) base_dir: Option<&'a Path>,
}

impl Sources<'_> {
    /// The process environment and files relative to `base_dir`.
    pub(super) fn process(base_dir: Option<&Path>) -> Sources<'_> {
        Sources {
            env: &|name| std::env::var(name),
            base_dir,
        }
    }

    pub(super) fn resolve_path(&self, path: &Path) -> PathBuf {
        match self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }
}

/// `kafka:` as written: properties in file order.
#[derive(Default)]
pub(super) struct RawKafka(Vec<(String, RawKafkaValue)>);

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

/// Rejects properties lagwatch owns and duplicates, then reads `{env}` and `{file}` values.
/// Error messages name keys, variables and files, never values.
pub(super) fn resolve_kafka(
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
    use crate::config::tests::{error, parse_in, property, scratch_dir, yaml, DOCS};
    use crate::config::Config;

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

    /// The table itself is the list of cases; the docs must list every entry, so they cannot fall
    /// behind it. Two messages are spelled out to pin the wording users see.
    #[test]
    fn properties_lagwatch_sets_are_rejected() {
        for (key, reason) in REJECTED_PROPERTIES {
            let text = yaml("", &format!("kafka: {{client.id: lagwatch, {key}: x}}"));
            assert_eq!(error(&text), format!("clusters[0].kafka.{key}: {reason}"));
            assert!(
                DOCS.contains(&format!("`{key}`")),
                "{key} missing from docs"
            );
        }
        let cases = [
            (
                "Group.ID",
                "clusters[0].kafka.Group.ID: lagwatch sets this property itself",
            ),
            (
                "isolation.level",
                "clusters[0].kafka.isolation.level: set `isolation` on the cluster instead",
            ),
        ];
        for (key, expected) in cases {
            assert_eq!(error(&yaml("", &format!("kafka: {{{key}: x}}"))), expected);
        }
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
}
