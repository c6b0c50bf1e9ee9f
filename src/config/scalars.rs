//! Values that YAML holds as one string but lagwatch parses while deserializing, so that a bad one
//! is reported with its field path by `serde_path_to_error`: durations, the listen address and
//! regexes.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use regex::Regex;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A regex compiled while deserializing, so its error carries the element's path.
pub(super) struct Pattern(pub(super) Regex);

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

/// A humantime duration such as `30s`, `5m` or `1h 30m`.
pub(super) fn de_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
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

pub(super) fn de_opt_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(deserializer).map(Some)
}

/// `IP:PORT`, or `:PORT` for every IPv4 interface (the Go exporters' spelling).
pub(super) fn de_listen<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
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
