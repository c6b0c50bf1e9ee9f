//! Group status (PRODUCT.md §4, rules written out in `docs/status.md`): six rules, each a small
//! pure function of one partition's window, its facts this poll and the settings. A group's
//! status is the first rule, in rule order, that any of its partitions matches.

use std::time::Duration;

use super::settings::{window_len, AnalyticsSettings};
use super::window::PartitionWindow;

/// Label values of `kafka_consumergroup_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    Warn,
    Stall,
    Stop,
    Rewind,
    Evicting,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Ok,
        Status::Warn,
        Status::Stall,
        Status::Stop,
        Status::Rewind,
        Status::Evicting,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Stall => "stall",
            Status::Stop => "stop",
            Status::Rewind => "rewind",
            Status::Evicting => "evicting",
        }
    }

    /// The rule's position in the evaluation order (1 = `evicting` … 6 = `ok`): when partitions
    /// disagree, the lowest wins.
    pub fn rule(self) -> u8 {
        match self {
            Status::Evicting => 1,
            Status::Stop => 2,
            Status::Stall => 3,
            Status::Rewind => 4,
            Status::Warn => 5,
            Status::Ok => 6,
        }
    }
}

/// The settings the rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRules {
    /// W: observations a full window holds (2..=65534).
    pub window: u16,
    pub stop_after: Duration,
    pub eviction_warning: Duration,
}

impl StatusRules {
    pub fn from_settings(settings: &AnalyticsSettings) -> Self {
        StatusRules {
            window: window_len(settings),
            stop_after: settings.stop_after,
            eviction_warning: settings.eviction_warning,
        }
    }
}

/// One group-partition as the rules see it after this poll's observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionFacts<'a> {
    /// Includes this poll's observation.
    pub window: &'a PartitionWindow,
    /// Lag now > `allowed_lag`.
    pub behind: bool,
    /// The group's members now; `None` when it could not be described.
    pub members: Option<u32>,
    pub evicted_messages: i64,
    pub eviction_seconds: Option<f64>,
    /// Time retention of a deleting topic.
    pub retention: Option<Duration>,
    pub commit_stall_seconds: f64,
}

/// Rule 1: records were deleted unread, or will be soon: time to eviction below
/// min(`eviction_warning`, R/4), so that on a short-retention topic ordinary lag is not `evicting`.
pub fn is_evicting(f: &PartitionFacts, rules: &StatusRules) -> bool {
    if f.evicted_messages > 0 {
        return true;
    }
    let (Some(eviction_seconds), Some(retention)) = (f.eviction_seconds, f.retention) else {
        return false;
    };
    f.behind && eviction_seconds < rules.eviction_warning.min(retention / 4).as_secs_f64()
}

/// Rule 2: behind and nobody is consuming (no members at every observation of a full W and C
/// unchanged across it), or a stall has lasted `stop_after` (no full W needed).
pub fn is_stopped(f: &PartitionFacts, rules: &StatusRules) -> bool {
    let w = rules.window;
    let abandoned = f.window.memberless_across(w) && f.window.committed_unchanged_across(w);
    f.behind && (abandoned || f.commit_stall_seconds >= rules.stop_after.as_secs_f64())
}

/// Rule 3: the group has members now, is behind, and C did not change across a full W (alive
/// but stuck). Members unknown (describe failed) count as present: a behind partition with a
/// frozen commit must not come out `ok`.
pub fn is_stalled(f: &PartitionFacts, rules: &StatusRules) -> bool {
    f.members != Some(0) && f.behind && f.window.committed_unchanged_across(rules.window)
}

/// Rule 4: C decreased between two consecutive observations in W (W need not be full).
pub fn is_rewinding(f: &PartitionFacts, rules: &StatusRules) -> bool {
    f.window.rewound_within(rules.window)
}

/// Rule 5: behind, the lag never decreased across a full W and ended higher than it started,
/// and C advanced at least once in W: consuming, but falling behind.
pub fn is_warning(f: &PartitionFacts, rules: &StatusRules) -> bool {
    let w = rules.window;
    f.behind && f.window.lag_rising_across(w) && f.window.advanced_within(w)
}

/// The first rule this partition matches.
pub fn partition_status(f: &PartitionFacts, rules: &StatusRules) -> Status {
    if is_evicting(f, rules) {
        Status::Evicting
    } else if is_stopped(f, rules) {
        Status::Stop
    } else if is_stalled(f, rules) {
        Status::Stall
    } else if is_rewinding(f, rules) {
        Status::Rewind
    } else if is_warning(f, rules) {
        Status::Warn
    } else {
        Status::Ok
    }
}

/// The first rule any partition matches; `ok` without partitions.
pub fn group_status(partitions: impl IntoIterator<Item = Status>) -> Status {
    partitions
        .into_iter()
        .min_by_key(|s| s.rule())
        .unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::analytics::window::{Observation, NEVER};

    const HOUR: Duration = Duration::from_secs(3600);
    const RULES: StatusRules = StatusRules {
        window: 10,
        stop_after: Duration::from_secs(900),
        eviction_warning: HOUR,
    };

    /// A window of one observation: nothing full, nothing happened.
    fn fresh() -> PartitionWindow {
        PartitionWindow::first(
            0,
            &Observation {
                committed: 100,
                lag_messages: 50,
                behind: true,
                members: Some(1),
                observed_ms: 0,
            },
        )
    }

    fn facts(window: &PartitionWindow) -> PartitionFacts<'_> {
        PartitionFacts {
            window,
            behind: true,
            members: Some(1),
            evicted_messages: 0,
            eviction_seconds: None,
            retention: None,
            commit_stall_seconds: 0.0,
        }
    }

    #[test]
    fn status_labels() {
        let labels: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            labels,
            ["ok", "warn", "stall", "stop", "rewind", "evicting"]
        );
        let mut rules: Vec<u8> = Status::ALL.iter().map(|s| s.rule()).collect();
        rules.sort_unstable();
        assert_eq!(rules, [1, 2, 3, 4, 5, 6], "every status is one rule");
    }

    #[test]
    fn evicting_table() {
        let w = fresh();
        let week = Some(HOUR * 24 * 7);
        // (evicted, behind, eviction s, retention, expected, why)
        #[rustfmt::skip]
        let cases = [
            (5, false, None, Some(HOUR), true, "1: records already lost, even when not behind now"),
            (0, true, Some(600.0), Some(HOUR), true, "2: R = 1h: 600 s < min(1h, 15m)"),
            (0, true, Some(1_000.0), Some(HOUR), false, "3: R = 1h: 1000 s < 1h but ≥ R/4 = 900 s: normal lag on a short topic"),
            (0, true, Some(3_000.0), week, true, "4: R = 7d: 3000 s < min(1h, 42h)"),
            (0, true, Some(4_000.0), week, false, "5: R = 7d: over an hour left"),
            (0, false, None, Some(HOUR), false, "6: not behind: no countdown"),
            (0, true, None, Some(HOUR), false, "7: T(C) unknown this poll: no claim"),
            (0, true, Some(0.0), None, false, "8: no time retention (compact topic)"),
        ];
        for (evicted, behind, eviction, retention, want, why) in cases {
            let f = PartitionFacts {
                behind,
                evicted_messages: evicted,
                eviction_seconds: eviction,
                retention,
                ..facts(&w)
            };
            assert_eq!(is_evicting(&f, &RULES), want, "{why}");
        }
    }

    #[test]
    fn stopped_table() {
        let w = |members_zero, committed_unchanged| PartitionWindow {
            members_zero,
            committed_unchanged,
            ..fresh()
        };
        // (window, behind, members, stall s, expected, why)
        #[rustfmt::skip]
        let cases = [
            (w(10, 10), true, Some(0), 0.0, true, "1: nobody at every poll of W and C frozen across W"),
            (w(9, 10), true, Some(0), 0.0, false, "2: member-less for 9 of 10: W not full of it"),
            (w(10, 3), true, Some(0), 0.0, false, "3: member-less but C advances: assign() consumers"),
            (w(10, 10), false, Some(0), 0.0, false, "4: caught up and idle is not stopped"),
            (w(0, 1), true, Some(3), 900.0, true, "5: stalled for stop_after: escalates, no full W needed"),
            (w(0, 1), true, Some(3), 899.0, false, "6: one second short of stop_after"),
            (w(0, 10), false, Some(3), 0.0, false, "7: not behind: stall_for is 0"),
        ];
        for (window, behind, members, stall, want, why) in cases {
            let f = PartitionFacts {
                behind,
                members,
                commit_stall_seconds: stall,
                ..facts(&window)
            };
            assert_eq!(is_stopped(&f, &RULES), want, "{why}");
        }
    }

    #[test]
    fn stalled_table() {
        let w = |committed_unchanged| PartitionWindow {
            committed_unchanged,
            ..fresh()
        };
        // (window, behind, members, expected, why)
        #[rustfmt::skip]
        let cases = [
            (w(10), true, Some(2), true, "1: members, behind, C frozen across W"),
            (w(9), true, Some(2), false, "2: W not full of the frozen C"),
            (w(10), true, Some(0), false, "3: no members now: rule 2's business"),
            (w(10), true, None, true, "4: members unknown: a frozen behind commit is not ok"),
            (w(10), false, Some(2), false, "5: caught up: nothing to commit"),
        ];
        for (window, behind, members, want, why) in cases {
            let f = PartitionFacts {
                behind,
                members,
                ..facts(&window)
            };
            assert_eq!(is_stalled(&f, &RULES), want, "{why}");
        }
    }

    #[test]
    fn rewinding_table() {
        let w = |since_rewind| PartitionWindow {
            since_rewind,
            ..fresh()
        };
        // (window, behind, expected, why)
        #[rustfmt::skip]
        let cases = [
            (w(0), true, true, "1: C went back at this poll"),
            (w(8), true, true, "2: 8 observations ago: both ends still in W = 10"),
            (w(9), true, false, "3: 9 ago: the observation before it left W"),
            (w(NEVER), true, false, "4: never went back"),
            (w(0), false, true, "5: a rewind is a rewind whether behind or not"),
        ];
        for (window, behind, want, why) in cases {
            let f = PartitionFacts {
                behind,
                ..facts(&window)
            };
            assert_eq!(is_rewinding(&f, &RULES), want, "{why}");
        }
    }

    #[test]
    fn warning_table() {
        let w = |lag_not_decreasing, lag_unchanged, since_advance| PartitionWindow {
            lag_not_decreasing,
            lag_unchanged,
            since_advance,
            ..fresh()
        };
        // (window, behind, expected, why)
        #[rustfmt::skip]
        let cases = [
            (w(10, 1, 0), true, true, "1: lag up across W while C advances"),
            (w(9, 1, 0), true, false, "2: lag fell 9 observations ago: not across a full W"),
            (w(10, 10, 0), true, false, "3: flat lag: keeping up"),
            (w(10, 1, NEVER), true, false, "4: C never advanced: not consuming (stall/stop)"),
            (w(10, 1, 9), true, false, "5: last advance left W"),
            (w(10, 1, 0), false, false, "6: within allowed_lag"),
        ];
        for (window, behind, want, why) in cases {
            let f = PartitionFacts {
                behind,
                ..facts(&window)
            };
            assert_eq!(is_warning(&f, &RULES), want, "{why}");
        }
    }

    #[test]
    fn partition_status_takes_the_first_matching_rule() {
        let all = PartitionWindow {
            members_zero: 0,
            committed_unchanged: 10,
            since_rewind: 0,
            lag_not_decreasing: 10,
            lag_unchanged: 1,
            since_advance: 0,
            ..fresh()
        };
        // (evicted, stall s, members, expected, why)
        #[rustfmt::skip]
        let cases = [
            (1, 900.0, Some(1), Status::Evicting, "1: evicting beats everything"),
            (0, 900.0, Some(1), Status::Stop, "2: stop beats stall"),
            (0, 0.0, Some(1), Status::Stall, "3: stall beats rewind"),
            (0, 0.0, Some(0), Status::Rewind, "4: no members now, W not member-less: rewind"),
        ];
        for (evicted, stall, members, want, why) in cases {
            let f = PartitionFacts {
                evicted_messages: evicted,
                commit_stall_seconds: stall,
                members,
                ..facts(&all)
            };
            assert_eq!(partition_status(&f, &RULES), want, "{why}");
        }
        let warn_only = PartitionWindow {
            lag_not_decreasing: 10,
            lag_unchanged: 1,
            since_advance: 0,
            ..fresh()
        };
        assert_eq!(partition_status(&facts(&warn_only), &RULES), Status::Warn);
        assert_eq!(partition_status(&facts(&fresh()), &RULES), Status::Ok);
    }

    #[test]
    fn group_status_table() {
        use Status::*;
        // (partition statuses, expected, why)
        #[rustfmt::skip]
        let cases: [(&[Status], Status, &str); 4] = [
            (&[Ok, Warn, Rewind], Rewind, "1: rule 4 comes before rule 5"),
            (&[Stall, Evicting, Ok], Evicting, "2: rule 1 first"),
            (&[Ok, Ok], Ok, "3: all fine"),
            (&[], Ok, "4: no partitions with a commit"),
        ];
        for (statuses, want, why) in cases {
            assert_eq!(group_status(statuses.iter().copied()), want, "{why}");
        }
    }
}
