//! `lagwatch lag`: polls every configured cluster like the daemon does (one poll, or `--polls N`
//! polls `poll_interval` apart) and prints each group's partitions, in the spirit of
//! `kafka-consumer-groups --describe`, plus time lag, eviction countdown and status.
//!
//! With one poll the status rules that need a window cannot apply, so the status says only
//! `evicting`, `behind` (lag > `status.allowed_lag`) or `ok`; with more polls it is the group
//! status of `docs/status.md`.

use std::fmt::Write as _;

use regex::Regex;
use serde::Serialize;

use crate::config::Config;
use crate::human::seconds;
use crate::kafka::{BrokerRef, StageError};
use crate::model::analytics::Status;
use crate::model::Report;
use crate::poll::{log_stage_errors, log_unauthorized, ClusterPoller, Poller};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone)]
pub struct LagOptions {
    /// Only groups whose id matches (besides the configured selector).
    pub group: Option<Regex>,
    pub output: Output,
    /// Polls to make, `poll_interval` apart; at least 1.
    pub polls: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LagError {
    #[error("cluster {cluster}: {message}")]
    Connection { cluster: String, message: String },
    /// The metadata or offsets stage failed, so there is no report to print.
    #[error("cluster {cluster}: {} stage failed{}: {error}", error.stage.as_str(), at_broker(error.broker.as_ref()))]
    Poll {
        cluster: String,
        #[source]
        error: StageError,
    },
}

fn at_broker(broker: Option<&BrokerRef>) -> String {
    broker.map(|b| format!(" at {b}")).unwrap_or_default()
}

/// The status column: the group status of `docs/status.md` after several polls; after one,
/// only what one poll can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    Group(Status),
    /// One poll: lag above `status.allowed_lag` (the window rules need more polls).
    Behind,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Group(s) => s.as_str(),
            RowStatus::Behind => "behind",
        }
    }

    /// Exit code 0 needs every group at this.
    pub fn is_ok(self) -> bool {
        self == RowStatus::Group(Status::Ok)
    }
}

impl Serialize for RowStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One group's figures as printed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupRow {
    pub cluster: String,
    pub group: String,
    pub state: &'static str,
    pub members: Option<u32>,
    pub status: RowStatus,
    pub lag_messages: i64,
    pub lag_seconds: Option<f64>,
    pub eviction_seconds: Option<f64>,
    pub evicted_messages: i64,
    pub partitions: Vec<PartitionRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionRow {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub head: Option<i64>,
    pub lag_messages: i64,
    pub lag_seconds: Option<f64>,
    pub eviction_seconds: Option<f64>,
    pub evicted_messages: i64,
}

/// Polls, then returns the rows of every selected group.
pub fn collect(config: &Config, options: &LagOptions) -> Result<Vec<GroupRow>, LagError> {
    let polls = options.polls.max(1);
    let mut rows = Vec::new();
    for cluster in &config.clusters {
        let connection = |message: String| LagError::Connection {
            cluster: cluster.name.clone(),
            message,
        };
        let mut poller =
            ClusterPoller::new(config, cluster).map_err(|e| connection(e.to_string()))?;
        let mut last = None;
        for i in 0..polls {
            if i > 0 {
                std::thread::sleep(cluster.poll_interval);
            }
            let result = poller.poll();
            log_stage_errors(&cluster.name, &result.outcome.errors);
            log_unauthorized(&cluster.name, &result.outcome.unauthorized);
            match result.report {
                Some(report) => last = Some(report),
                None => {
                    return Err(match result.outcome.errors.into_iter().next() {
                        Some(error) => LagError::Poll {
                            cluster: cluster.name.clone(),
                            error,
                        },
                        None => connection("poll failed".to_string()),
                    });
                }
            }
        }
        if let Some(report) = last {
            rows.extend(group_rows(
                &cluster.name,
                &report,
                options,
                polls,
                config.status.allowed_lag,
            ));
        }
    }
    Ok(rows)
}

fn group_rows(
    cluster: &str,
    report: &Report,
    options: &LagOptions,
    polls: u32,
    allowed_lag: i64,
) -> Vec<GroupRow> {
    // Topics are sorted by name and partitions by id (see `model::Report`).
    let head = |topic: &str, partition: i32| {
        let t = &report.topics[report
            .topics
            .binary_search_by(|t| t.name.as_ref().cmp(topic))
            .ok()?];
        let p = t
            .partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()?;
        Some(t.partitions[p].latest)
    };
    report
        .groups
        .iter()
        .filter(|g| options.group.as_ref().is_none_or(|re| re.is_match(&g.id)))
        .map(|g| {
            let partitions: Vec<PartitionRow> = g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| PartitionRow {
                        topic: t.topic.to_string(),
                        partition: p.partition,
                        committed: p.committed_offset,
                        head: head(&t.topic, p.partition),
                        lag_messages: p.figures.lag_messages,
                        lag_seconds: p.figures.lag_seconds,
                        eviction_seconds: p.figures.eviction_seconds,
                        evicted_messages: p.figures.evicted_messages,
                    })
                })
                .collect();
            let behind = partitions.iter().any(|p| p.lag_messages > allowed_lag);
            let status = match (polls, g.status) {
                (_, Status::Evicting) => RowStatus::Group(Status::Evicting),
                (1, _) if behind => RowStatus::Behind,
                (1, _) => RowStatus::Group(Status::Ok),
                (_, s) => RowStatus::Group(s),
            };
            GroupRow {
                cluster: cluster.to_string(),
                group: g.id.clone(),
                state: g.state.as_str(),
                members: g.members,
                status,
                lag_messages: g.figures.lag_messages,
                lag_seconds: g.figures.lag_seconds,
                eviction_seconds: g.figures.eviction_seconds,
                evicted_messages: g.figures.evicted_messages,
                partitions,
            }
        })
        .collect()
}

/// Whether every group is ok (exit code 0) or not (1).
pub fn all_ok(rows: &[GroupRow]) -> bool {
    rows.iter().all(|r| r.status.is_ok())
}

/// Formats the rows as JSON (an array of groups).
pub fn to_json(rows: &[GroupRow]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Formats the rows as aligned columns, one line per partition.
pub fn to_table(rows: &[GroupRow]) -> String {
    const HEADER: [&str; 12] = [
        "CLUSTER",
        "GROUP",
        "STATUS",
        "MEMBERS",
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "HEAD",
        "LAG",
        "TIME-LAG",
        "EVICTION-IN",
        "EVICTED",
    ];
    let dash = || "-".to_string();
    let mut lines: Vec<[String; 12]> = vec![HEADER.map(str::to_string)];
    for g in rows {
        let members = g.members.map_or_else(dash, |m| m.to_string());
        if g.partitions.is_empty() {
            lines.push([
                g.cluster.clone(),
                g.group.clone(),
                g.status.as_str().to_string(),
                members.clone(),
                dash(),
                dash(),
                dash(),
                dash(),
                "0".into(),
                dash(),
                dash(),
                dash(),
            ]);
        }
        for p in &g.partitions {
            lines.push([
                g.cluster.clone(),
                g.group.clone(),
                g.status.as_str().to_string(),
                members.clone(),
                p.topic.clone(),
                p.partition.to_string(),
                p.committed.to_string(),
                p.head.map_or_else(dash, |h| h.to_string()),
                p.lag_messages.to_string(),
                p.lag_seconds.map_or_else(dash, seconds),
                p.eviction_seconds.map_or_else(dash, seconds),
                p.evicted_messages.to_string(),
            ]);
        }
    }
    let mut widths = [0usize; 12];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{cell:<w$}");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Figures, GroupPartitionReport, GroupReport, GroupState, GroupTopicReport, PartitionOffsets,
        TopicReport,
    };
    use std::sync::Arc;

    fn report(status: Status, lags: &[i64]) -> Report {
        let topic: Arc<str> = Arc::from("orders");
        Report {
            topics: vec![TopicReport {
                name: topic.clone(),
                partitions: (0..lags.len() as i32)
                    .map(|p| PartitionOffsets {
                        partition: p,
                        earliest: 0,
                        latest: 100,
                    })
                    .collect(),
                latest_offsets: 100 * lags.len() as i64,
                earliest_offsets: 0,
                retention_seconds: None,
                retention_bytes: None,
            }],
            groups: vec![GroupReport::from_topics(
                "billing".into(),
                GroupState::Stable,
                Some(1),
                0,
                status,
                vec![GroupTopicReport::from_partitions(
                    topic,
                    (0, 0),
                    lags.iter()
                        .enumerate()
                        .map(|(p, lag)| GroupPartitionReport {
                            partition: p as i32,
                            committed_offset: 100 - lag,
                            figures: Figures {
                                lag_messages: *lag,
                                lag_seconds: Some(*lag as f64 * 2.0),
                                ..Default::default()
                            },
                        })
                        .collect(),
                )],
            )],
        }
    }

    fn options(polls: u32) -> LagOptions {
        LagOptions {
            group: None,
            output: Output::Table,
            polls,
        }
    }

    #[test]
    fn status_column_after_one_poll_and_after_several() {
        // (polls, model status, partition lags, allowed lag, printed status, why)
        let cases = [
            (1, Status::Ok, vec![0, 0], 0, "ok", "caught up"),
            (
                1,
                Status::Ok,
                vec![0, 3],
                0,
                "behind",
                "one poll: lag > allowed_lag is all it can say",
            ),
            (1, Status::Ok, vec![1, 1], 1, "ok", "lag within allowed_lag"),
            (
                1,
                Status::Evicting,
                vec![5],
                0,
                "evicting",
                "eviction needs no window",
            ),
            (
                3,
                Status::Stall,
                vec![5],
                0,
                "stall",
                "several polls: the full rules",
            ),
            (
                3,
                Status::Ok,
                vec![5],
                0,
                "ok",
                "several polls: the model's verdict, not 'behind'",
            ),
        ];
        for (i, (polls, status, lags, allowed, want, why)) in cases.into_iter().enumerate() {
            let rows = group_rows("c", &report(status, &lags), &options(polls), polls, allowed);
            assert_eq!(rows[0].status.as_str(), want, "case {i}: {why}");
            assert_eq!(all_ok(&rows), want == "ok", "case {i}");
        }
    }

    #[test]
    fn table_and_json_show_every_partition() {
        let rows = group_rows("prod", &report(Status::Ok, &[0, 30]), &options(1), 1, 0);
        let table = to_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("CLUSTER  GROUP    STATUS"), "{table}");
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cells,
            ["prod", "billing", "behind", "1", "orders", "1", "70", "100", "30", "1m", "-", "0"]
        );
        let json: serde_json::Value = serde_json::from_str(&to_json(&rows)).expect("json");
        assert_eq!(json[0]["partitions"][1]["lag_messages"], 30);
        assert_eq!(json[0]["partitions"][1]["head"], 100);
        assert_eq!(json[0]["status"], "behind");
    }

    #[test]
    fn group_filter_narrows_the_rows() {
        let mut o = options(1);
        o.group = Some(Regex::new("^pay").expect("regex"));
        assert!(group_rows("c", &report(Status::Ok, &[1]), &o, 1, 0).is_empty());
    }
}
