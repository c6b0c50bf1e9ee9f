//! Tunables of the analytics model (`time_lag.*` and `status.*` in the configuration).

use std::time::Duration;

/// What the analytics of one cluster keep and how the status rules judge. `poll` fills it from
/// the validated configuration; [`AnalyticsSettings::DEFAULT`] holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsSettings {
    /// `time_lag.history`: head samples kept per partition for interpolation (at least 2).
    pub history: usize,
    /// `time_lag.max_reads_per_poll`: record-timestamp reads asked for per poll.
    pub max_reads_per_poll: usize,
    /// `status.window`: observations per group-partition the status rules look at (2..=65534).
    pub window: usize,
    /// `status.allowed_lag`: a partition is behind when its lag in messages exceeds this.
    pub allowed_lag: i64,
    /// `status.stop_after`: a stall lasting this long escalates to `stop`.
    pub stop_after: Duration,
    /// `status.eviction_warning`: `evicting` once time to eviction drops below
    /// min(this, retention / 4).
    pub eviction_warning: Duration,
    /// `status.min_time_lag`: `warn`, `stall` and a stall's escalation to `stop` need the
    /// partition's time lag at or above this; 0 lifts the gate.
    pub min_time_lag: Duration,
    /// `status.inactive_after`: a member-less group none of whose commits moved for this long is
    /// `inactive`; 0 turns the rule off.
    pub inactive_after: Duration,
    /// Entries of the exact-read timestamp cache kept after a poll (it may hold one poll's reads
    /// more while the poll runs).
    pub timestamp_cache: usize,
}

impl AnalyticsSettings {
    /// The defaults of PRODUCT.md §6 for `time_lag.*` and `status.*`, written only here: the
    /// configuration's `TimeLagConfig` and `StatusConfig` default to these fields, because the
    /// model may not import the configuration while the configuration may import the model.
    /// `timestamp_cache` has no key; this is its only value.
    pub const DEFAULT: AnalyticsSettings = AnalyticsSettings {
        history: 64,
        max_reads_per_poll: 1000,
        window: 10,
        allowed_lag: 0,
        stop_after: Duration::from_secs(15 * 60),
        eviction_warning: Duration::from_secs(60 * 60),
        min_time_lag: Duration::from_secs(60),
        inactive_after: Duration::from_secs(24 * 60 * 60),
        timestamp_cache: 100_000,
    };
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings::DEFAULT
    }
}

/// Window length as the compact counters store it: saturating `u16` runs, so a window must fit
/// below `u16::MAX`; one observation cannot show a change, so at least 2.
pub fn window_len(settings: &AnalyticsSettings) -> u16 {
    settings.window.clamp(2, usize::from(u16::MAX - 1)) as u16
}

/// History length: interpolation needs two samples.
pub fn history_len(settings: &AnalyticsSettings) -> usize {
    settings.history.max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_clamped_to_what_the_state_can_hold() {
        // (window, history, expected window, expected history, why)
        #[rustfmt::skip]
        let cases = [
            (10, 64, 10, 64, "1: defaults pass through"),
            (0, 0, 2, 2, "2: a change needs two observations / two samples"),
            (1, 1, 2, 2, "3: same"),
            (1_000_000, 5, 65_534, 5, "4: runs are saturating u16 counters"),
        ];
        for (window, history, want_w, want_h, why) in cases {
            let s = AnalyticsSettings {
                window,
                history,
                ..AnalyticsSettings::default()
            };
            assert_eq!(window_len(&s), want_w, "{why}");
            assert_eq!(history_len(&s), want_h, "{why}");
        }
    }
}
