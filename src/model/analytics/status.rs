//! Group status (PRODUCT.md §4, rules written out in `docs/status.md`): seven rules, each a small
//! pure function of one partition's window, its facts this poll and the settings. A group's
//! status is the first rule, in rule order, that any of its partitions matches; rule 1
//! (`inactive`) is about the whole group.

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
    Inactive,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Ok,
        Status::Warn,
        Status::Stall,
        Status::Stop,
        Status::Rewind,
        Status::Evicting,
        Status::Inactive,
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
            Status::Inactive => "inactive",
        }
    }

    /// The rule's position in the evaluation order (1 = `inactive` … 7 = `ok`): when partitions
    /// disagree, the lowest wins.
    pub fn rule(self) -> u8 {
        match self {
            Status::Inactive => 1,
            Status::Evicting => 2,
            Status::Stop => 3,
            Status::Stall => 4,
            Status::Rewind => 5,
            Status::Warn => 6,
            Status::Ok => 7,
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
    /// Time lag below which a partition is never `warn` or `stall` (nor escalates to `stop`).
    pub min_time_lag: Duration,
    /// Commits frozen this long on a member-less group make it `inactive`; zero: never.
    pub inactive_after: Duration,
}

impl StatusRules {
    pub fn from_settings(settings: &AnalyticsSettings) -> Self {
        StatusRules {
            window: window_len(settings),
            stop_after: settings.stop_after,
            eviction_warning: settings.eviction_warning,
            min_time_lag: settings.min_time_lag,
            inactive_after: settings.inactive_after,
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
    /// Time lag now; `None` when the timestamp of the record at C is not known yet.
    pub lag_seconds: Option<f64>,
    /// A share group's partition: C is the share-partition start offset, which nobody commits,
    /// so a stall does not escalate to `stop` (`commit_stall_seconds` still stands in for an
    /// unknown time lag: the record at the start offset was written before it stopped moving).
    pub share: bool,
}

/// Rule 1, about the whole group: no members now (unknown is not none), and no partition's C
/// has changed for `inactive_after` (`frozen_seconds`: the least time since any of the group's
/// partitions' C last changed; `None` without partitions). An abandoned group: still measured,
/// never paged on. `inactive_after` 0 turns the rule off.
pub fn is_inactive(members: Option<u32>, frozen_seconds: Option<f64>, rules: &StatusRules) -> bool {
    let after = rules.inactive_after.as_secs_f64();
    after > 0.0 && members == Some(0) && frozen_seconds.is_some_and(|s| s >= after)
}

/// The gate of `warn`, `stall` and a stall's escalation to `stop`: the partition's time lag now
/// is at least `min_time_lag`, so that message lag alone (a busy topic, a transaction marker on
/// an idle one) never raises them. While the time lag is unknown, `stall_for` stands in: when C
/// last moved or the partition fell behind, the record at C was already written, so the time
/// lag is at least `stall_for`.
pub fn time_lag_reached(f: &PartitionFacts, rules: &StatusRules) -> bool {
    f.lag_seconds.unwrap_or(f.commit_stall_seconds) >= rules.min_time_lag.as_secs_f64()
}

/// Rule 2: records were deleted unread, or will be soon: time to eviction below
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

/// Rule 3: behind and nobody is consuming (no members at every observation of a full W and C
/// unchanged across it), or a stall has lasted `stop_after` (no full W needed) with the time
/// lag at `min_time_lag`. A share group has no commit to stall: only the first branch.
pub fn is_stopped(f: &PartitionFacts, rules: &StatusRules) -> bool {
    let w = rules.window;
    let abandoned = f.window.memberless_across(w) && f.window.committed_unchanged_across(w);
    let lasting_stall = !f.share
        && f.commit_stall_seconds >= rules.stop_after.as_secs_f64()
        && time_lag_reached(f, rules);
    f.behind && (abandoned || lasting_stall)
}

/// Rule 4: the group has members now, is behind by at least `min_time_lag`, and C did not
/// change across a full W (alive but stuck). Members unknown (describe failed) count as present:
/// a behind partition with a frozen commit must not come out `ok`.
pub fn is_stalled(f: &PartitionFacts, rules: &StatusRules) -> bool {
    f.members != Some(0)
        && f.behind
        && f.window.committed_unchanged_across(rules.window)
        && time_lag_reached(f, rules)
}

/// Rule 5: C decreased between two consecutive observations in W (W need not be full).
pub fn is_rewinding(f: &PartitionFacts, rules: &StatusRules) -> bool {
    f.window.rewound_within(rules.window)
}

/// Rule 6: behind, the lag never decreased across a full W and ended higher than it started,
/// C advanced at least once in W, and the time lag is at least `min_time_lag`: consuming, but
/// falling behind by enough to matter.
pub fn is_warning(f: &PartitionFacts, rules: &StatusRules) -> bool {
    let w = rules.window;
    f.behind
        && f.window.lag_rising_across(w)
        && f.window.advanced_within(w)
        && time_lag_reached(f, rules)
}

/// The first partition rule (2 to 7) this partition matches.
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
    const DAY: Duration = Duration::from_secs(24 * 3600);
    const RULES: StatusRules = StatusRules {
        window: 10,
        stop_after: Duration::from_secs(900),
        eviction_warning: HOUR,
        min_time_lag: Duration::from_secs(60),
        inactive_after: DAY,
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

    /// A full window over which the lag rose while C advanced: rule 6's window.
    fn rising() -> PartitionWindow {
        PartitionWindow {
            lag_not_decreasing: 10,
            lag_unchanged: 1,
            since_advance: 0,
            ..fresh()
        }
    }

    /// C unchanged at the last `n` observations.
    fn frozen(n: u16) -> PartitionWindow {
        PartitionWindow {
            committed_unchanged: n,
            ..fresh()
        }
    }

    /// Behind with a time lag of 10 minutes: past the `min_time_lag` gate, so the window
    /// decides.
    fn facts(window: &PartitionWindow) -> PartitionFacts<'_> {
        PartitionFacts {
            window,
            behind: true,
            members: Some(1),
            evicted_messages: 0,
            eviction_seconds: None,
            retention: None,
            commit_stall_seconds: 0.0,
            lag_seconds: Some(600.0),
            share: false,
        }
    }

    #[test]
    fn status_labels() {
        let labels: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            labels,
            ["ok", "warn", "stall", "stop", "rewind", "evicting", "inactive"]
        );
        let mut rules: Vec<u8> = Status::ALL.iter().map(|s| s.rule()).collect();
        rules.sort_unstable();
        assert_eq!(rules, [1, 2, 3, 4, 5, 6, 7], "every status is one rule");
        assert!(
            Status::Inactive.rule() < Status::Evicting.rule(),
            "an abandoned group's evicted records are not a page: inactive outranks evicting"
        );
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
            (w(10), true, Some(0), false, "3: no members now: rule 3's business"),
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
        assert_eq!(partition_status(&facts(&rising()), &RULES), Status::Warn);
        assert_eq!(partition_status(&facts(&fresh()), &RULES), Status::Ok);
    }

    #[test]
    fn group_status_table() {
        use Status::*;
        // (partition statuses, expected, why)
        #[rustfmt::skip]
        let cases: [(&[Status], Status, &str); 5] = [
            (&[Ok, Warn, Rewind], Rewind, "1: rule 5 comes before rule 6"),
            (&[Stall, Evicting, Ok], Evicting, "2: rule 2 before rule 4"),
            (&[Ok, Ok], Ok, "3: all fine"),
            (&[], Ok, "4: no partitions with a commit"),
            (&[Evicting, Inactive], Inactive, "5: rule 1 first"),
        ];
        for (statuses, want, why) in cases {
            assert_eq!(group_status(statuses.iter().copied()), want, "{why}");
        }
    }

    #[test]
    fn time_lag_gate_table() {
        // (time lag s, stall s, expected, why); min_time_lag = 60 s.
        #[rustfmt::skip]
        let cases = [
            (Some(60.0), 0.0, true, "1: exactly min_time_lag"),
            (Some(59.9), 3_000.0, false, "2: known time lag below the gate; stall_for is not consulted"),
            (None, 60.0, true, "3: unknown: stall_for is a lower bound of the time lag, and reaches it"),
            (None, 30.0, false, "4: unknown and stall_for short: no claim"),
            (Some(0.0), 0.0, false, "5: caught up in time (an idle topic's transaction marker)"),
        ];
        let w = fresh();
        for (lag_seconds, stall, want, why) in cases {
            let f = PartitionFacts {
                lag_seconds,
                commit_stall_seconds: stall,
                ..facts(&w)
            };
            assert_eq!(time_lag_reached(&f, &RULES), want, "{why}");
        }
        let open = StatusRules {
            min_time_lag: Duration::ZERO,
            ..RULES
        };
        let f = PartitionFacts {
            lag_seconds: Some(0.0),
            ..facts(&w)
        };
        assert!(time_lag_reached(&f, &open), "min_time_lag 0 lifts the gate");
    }

    /// A consumer that keeps up with a busy topic: every poll finds a few hundred records in
    /// flight, and over a window the lag can creep up while C advances at every poll. Burrow's
    /// rule calls that `warn`; its time lag (seconds) says it is fine.
    #[test]
    fn healthy_high_throughput_consumer_is_never_warn() {
        let rising = rising();
        // (time lag s, expected, why)
        #[rustfmt::skip]
        let cases = [
            (Some(1.0), Status::Ok, "1: lag 6 messages, 1 s old (the demo's demo-healthy)"),
            (Some(0.2), Status::Ok, "2: 10,000 msg/s, lag 2,000, 0.2 s"),
            (Some(59.0), Status::Ok, "3: just under min_time_lag"),
            (None, Status::Ok, "4: time lag unknown, C advanced this poll: stall_for 0 is no evidence"),
            (Some(61.0), Status::Warn, "5: the same window a minute behind: falling behind for real"),
        ];
        for (lag_seconds, want, why) in cases {
            let f = PartitionFacts {
                lag_seconds,
                ..facts(&rising)
            };
            assert_eq!(partition_status(&f, &RULES), want, "{why}");
        }
    }

    /// A topic nobody writes to: C cannot move, so any message lag left (a transaction's commit
    /// marker under read_uncommitted, which no consumer reads) would look stuck forever.
    #[test]
    fn idle_topic_is_never_stall() {
        let frozen = frozen(10_000);
        // (time lag s, stall s, members, expected, why)
        #[rustfmt::skip]
        let cases = [
            (Some(0.0), 300.0, Some(1), Status::Ok, "1: lag 1 (marker), nothing to read: time lag 0"),
            (Some(0.0), 86_400.0, Some(1), Status::Ok, "2: a day later: no escalation to stop either"),
            (Some(0.0), 300.0, None, Status::Ok, "3: members unknown: same"),
            (Some(45.0), 30.0, Some(1), Status::Ok, "4: the last record, 45 s old, is being processed"),
        ];
        for (lag_seconds, stall, members, want, why) in cases {
            let f = PartitionFacts {
                lag_seconds,
                commit_stall_seconds: stall,
                members,
                ..facts(&frozen)
            };
            assert_eq!(partition_status(&f, &RULES), want, "{why}");
        }
    }

    /// The cases the gate must not hide: each was caught before it, with a time lag past it.
    #[test]
    fn true_positives_are_still_caught_past_the_gate() {
        let frozen = frozen(10);
        let rising = rising();
        let memberless = PartitionWindow {
            members_zero: 10,
            ..frozen
        };
        // (window, time lag s, stall s, members, expected, why)
        #[rustfmt::skip]
        let cases = [
            (&frozen, Some(120.0), 300.0, Some(1), Status::Stall, "1: poison message: stuck 5 min, 2 min behind"),
            (&frozen, None, 300.0, Some(1), Status::Stall, "2: time lag unknown: 300 s of stall_for prove ≥ 60 s"),
            (&frozen, Some(1_000.0), 900.0, Some(1), Status::Stop, "3: the stall lasted stop_after"),
            (&rising, Some(600.0), 0.0, Some(2), Status::Warn, "4: consuming, 10 min behind and growing"),
            (&memberless, Some(5.0), 0.0, Some(0), Status::Stop, "5: nobody consuming needs no gate: rule 3's first branch"),
        ];
        for (window, lag_seconds, stall, members, want, why) in cases {
            let f = PartitionFacts {
                lag_seconds,
                commit_stall_seconds: stall,
                members,
                ..facts(window)
            };
            assert_eq!(partition_status(&f, &RULES), want, "{why}");
        }
    }

    /// A share group's C is its share-partition start offset, which moves as records are
    /// delivered for good: the rules read it like a commit, except that a stall never
    /// escalates to `stop` (there is no commit to stall).
    #[test]
    fn share_group_table() {
        let frozen = frozen(10);
        let memberless = PartitionWindow {
            members_zero: 10,
            ..frozen
        };
        let short = PartitionWindow {
            members_zero: 9,
            committed_unchanged: 9,
            ..fresh()
        };
        let reset = PartitionWindow {
            since_rewind: 0,
            ..fresh()
        };
        let rising = rising();
        // (window, behind, members, evicted, time lag s, stall s, share, expected, why)
        #[rustfmt::skip]
        let cases = [
            (&frozen, true, Some(2), 0, Some(600.0), 0.0, true, Status::Stall, "1: members, behind, start offset frozen across W"),
            (&frozen, true, Some(2), 0, Some(7_200.0), 7_200.0, true, Status::Stall, "2: stuck for two hours: no escalation to stop"),
            (&frozen, true, Some(2), 0, Some(7_200.0), 7_200.0, false, Status::Stop, "3: the same window of a consumer group escalates"),
            (&frozen, true, None, 0, Some(600.0), 0.0, true, Status::Stall, "4: members unknown count as present"),
            (&frozen, true, Some(2), 0, Some(30.0), 30.0, true, Status::Ok, "5: behind by less than min_time_lag: the gate holds"),
            (&frozen, true, Some(2), 0, None, 120.0, true, Status::Stall, "6: time lag unknown: the frozen start offset's age stands in"),
            (&frozen, false, Some(2), 0, Some(0.0), 0.0, true, Status::Ok, "7: caught up: nothing to deliver"),
            (&memberless, true, Some(0), 0, Some(5.0), 0.0, true, Status::Stop, "8: behind, no member at any poll of W, start frozen"),
            (&short, true, Some(0), 0, Some(600.0), 0.0, true, Status::Ok, "9: member-less for 9 of 10 polls: not yet"),
            (&memberless, false, Some(0), 0, Some(0.0), 0.0, true, Status::Ok, "10: member-less and caught up"),
            (&reset, false, Some(2), 0, Some(0.0), 0.0, true, Status::Rewind, "11: start offset moved back (an admin reset)"),
            (&rising, true, Some(2), 0, Some(600.0), 0.0, true, Status::Warn, "12: delivering, but the lag rises across W"),
            (&frozen, true, Some(2), 3, Some(600.0), 0.0, true, Status::Evicting, "13: retention deleted records past the start offset"),
        ];
        for (window, behind, members, evicted, lag_seconds, stall, share, want, why) in cases {
            let f = PartitionFacts {
                behind,
                members,
                evicted_messages: evicted,
                lag_seconds,
                commit_stall_seconds: stall,
                share,
                ..facts(window)
            };
            assert_eq!(partition_status(&f, &RULES), want, "{why}");
        }
    }

    #[test]
    fn inactive_table() {
        let day = DAY.as_secs_f64();
        // (members, least frozen s, inactive_after, expected, why)
        #[rustfmt::skip]
        let cases = [
            (Some(0), Some(day), DAY, true, "1: member-less, no commit moved for a day"),
            (Some(0), Some(day - 1.0), DAY, false, "2: one second short"),
            (Some(1), Some(10.0 * day), DAY, false, "3: a member is back: stall/stop, not abandoned"),
            (None, Some(10.0 * day), DAY, false, "4: members unknown: no claim"),
            (Some(0), None, DAY, false, "5: no partition with a commit"),
            (Some(0), Some(10.0 * day), Duration::ZERO, false, "6: inactive_after 0 turns the rule off"),
        ];
        for (members, frozen, after, want, why) in cases {
            let rules = StatusRules {
                inactive_after: after,
                ..RULES
            };
            assert_eq!(is_inactive(members, frozen, &rules), want, "{why}");
        }
    }
}
