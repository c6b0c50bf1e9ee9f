//! Per group-partition window state for the status rules (PRODUCT.md §4, status), kept across
//! polls in O(1) memory whatever `status.window` is.
//!
//! Instead of a ring of the last W observations, the window keeps the last observation and the
//! length of every run a rule asks about ("C unchanged for the last n observations", "lag never
//! decreased for the last n", ...). A rule over the last W observations is then one comparison
//! with W, and gives the same answer as scanning a ring. Runs saturate at `u16::MAX`, which is
//! why `status.window` is at most 65,534.
//!
//! Memory: [`PartitionWindow`] is 48 bytes (`size_of`, checked by a test), so 1,000,000
//! group-partitions take 48 MB. `committed_since_s` is whole seconds in a `u32` so that it fits
//! in the padding beside `partition`.

use super::skew::rewound_messages;

/// `since_*` value for "not seen since this partition was first observed".
pub const NEVER: u16 = u16::MAX;

/// Status state of one group-partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionWindow {
    pub partition: i32,
    /// When C last changed (either way), whole seconds since the epoch (a `u32` lasts until
    /// 2106); the first observation when it never did, for the same reason as `stall_since_ms`.
    pub committed_since_s: u32,
    /// C at the last observation.
    pub committed: i64,
    /// Offset lag at the last observation.
    pub lag_messages: i64,
    /// max(time C last increased, time the partition became behind), ms since the epoch. At the
    /// first observation nobody knows when C last moved: it counts from then.
    pub stall_since_ms: i64,
    /// Observations, ending with the last, with the same C (≥ 1).
    pub committed_unchanged: u16,
    /// Observations, ending with the last, at which the group had no members (`Some(0)`).
    pub members_zero: u16,
    /// Observations, ending with the last, over which the lag never decreased (≥ 1).
    pub lag_not_decreasing: u16,
    /// Observations, ending with the last, with the same lag (≥ 1).
    pub lag_unchanged: u16,
    /// Observations since the last one whose C was below its predecessor's (0 = the last one);
    /// [`NEVER`] if none.
    pub since_rewind: u16,
    /// Same for C above its predecessor's.
    pub since_advance: u16,
    /// Lag > `allowed_lag` at the last observation.
    pub behind: bool,
    /// A `MessagesEvicted` event was returned and evicted messages stayed > 0 since.
    pub evicted_logged: bool,
}

/// What one successful poll saw of one group-partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub committed: i64,
    pub lag_messages: i64,
    /// `lag_messages > allowed_lag`.
    pub behind: bool,
    /// The group's member count; `None` when it could not be described.
    pub members: Option<u32>,
    /// When the offsets were read, ms since the epoch.
    pub observed_ms: i64,
}

impl PartitionWindow {
    pub fn first(partition: i32, obs: &Observation) -> Self {
        PartitionWindow {
            partition,
            committed_since_s: epoch_seconds(obs.observed_ms),
            committed: obs.committed,
            lag_messages: obs.lag_messages,
            stall_since_ms: obs.observed_ms,
            committed_unchanged: 1,
            members_zero: u16::from(obs.members == Some(0)),
            lag_not_decreasing: 1,
            lag_unchanged: 1,
            since_rewind: NEVER,
            since_advance: NEVER,
            behind: obs.behind,
            evicted_logged: false,
        }
    }

    /// Adds the next observation; returns the messages rewound when C went backwards.
    pub fn observe(&mut self, obs: &Observation) -> Option<u64> {
        let run = |length: u16, continues: bool| {
            if continues {
                length.saturating_add(1)
            } else {
                1
            }
        };
        let since = |count: u16, happened: bool| {
            if happened {
                0
            } else {
                count.saturating_add(1)
            }
        };
        let rewound = rewound_messages(self.committed, obs.committed);
        let advanced = obs.committed > self.committed;
        self.committed_unchanged = run(self.committed_unchanged, obs.committed == self.committed);
        self.members_zero = if obs.members == Some(0) {
            self.members_zero.saturating_add(1)
        } else {
            0
        };
        self.lag_not_decreasing = run(
            self.lag_not_decreasing,
            obs.lag_messages >= self.lag_messages,
        );
        self.lag_unchanged = run(self.lag_unchanged, obs.lag_messages == self.lag_messages);
        self.since_rewind = since(self.since_rewind, rewound.is_some());
        self.since_advance = since(self.since_advance, advanced);
        if obs.committed != self.committed {
            self.committed_since_s = epoch_seconds(obs.observed_ms);
        }
        if obs.behind && (advanced || !self.behind) {
            self.stall_since_ms = obs.observed_ms;
        }
        self.committed = obs.committed;
        self.lag_messages = obs.lag_messages;
        self.behind = obs.behind;
        rewound
    }

    /// True when a `MessagesEvicted` event is due: evicted > 0 for the first time, or again
    /// after it went back to 0.
    pub fn note_evicted(&mut self, evicted_messages: i64) -> bool {
        let due = evicted_messages > 0 && !self.evicted_logged;
        self.evicted_logged = evicted_messages > 0;
        due
    }

    /// Seconds from the last change of C (or the first observation) to `now_ms`, ≥ 0.
    pub fn committed_frozen_seconds(&self, now_ms: i64) -> f64 {
        (now_ms as f64 / 1000.0 - f64::from(self.committed_since_s)).max(0.0)
    }

    /// C was the same at each of the last `w` observations (needs `w` of them).
    pub fn committed_unchanged_across(&self, w: u16) -> bool {
        self.committed_unchanged >= w
    }

    /// The group had no members at each of the last `w` observations (needs `w` of them).
    pub fn memberless_across(&self, w: u16) -> bool {
        self.members_zero >= w
    }

    /// C decreased between two consecutive observations among the last `w`: the later of the
    /// two is at most `w − 2` observations old, so the earlier one is still inside.
    pub fn rewound_within(&self, w: u16) -> bool {
        self.since_rewind <= w.saturating_sub(2)
    }

    /// C increased between two consecutive observations among the last `w`.
    pub fn advanced_within(&self, w: u16) -> bool {
        self.since_advance <= w.saturating_sub(2)
    }

    /// Over the last `w` observations (needs `w`) the lag never decreased and is higher at the
    /// end than at the start: non-decreasing and not all equal.
    pub fn lag_rising_across(&self, w: u16) -> bool {
        self.lag_not_decreasing >= w && self.lag_unchanged < w
    }
}

/// Whole seconds since the epoch, clamped to what a `u32` holds.
fn epoch_seconds(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000).max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds (C, lag, members) observations 1 s apart, allowed_lag 0; returns the window and
    /// the rewinds seen.
    fn feed(observations: &[(i64, i64, Option<u32>)]) -> (PartitionWindow, Vec<u64>) {
        let mut rewinds = Vec::new();
        let mut window: Option<PartitionWindow> = None;
        for (i, &(committed, lag_messages, members)) in observations.iter().enumerate() {
            let obs = Observation {
                committed,
                lag_messages,
                behind: lag_messages > 0,
                members,
                observed_ms: i as i64 * 1_000,
            };
            match window.as_mut() {
                Some(w) => rewinds.extend(w.observe(&obs)),
                None => window = Some(PartitionWindow::first(7, &obs)),
            }
        }
        (window.unwrap(), rewinds)
    }

    #[test]
    fn runs_table() {
        let one = Some(1);
        let zero = Some(0);
        // (observations (C, lag, members), expected (C unchanged, members zero, lag not
        // decreasing, lag unchanged, since rewind, since advance), why)
        type Case<'a> = (
            &'a [(i64, i64, Option<u32>)],
            (u16, u16, u16, u16, u16, u16),
            &'a str,
        );
        #[rustfmt::skip]
        let cases: [Case; 6] = [
            (&[(5, 10, one)], (1, 0, 1, 1, NEVER, NEVER), "1: one observation: every run is 1, nothing happened"),
            (&[(5, 10, zero), (5, 11, zero), (5, 12, zero)], (3, 3, 3, 1, NEVER, NEVER), "2: frozen C, member-less, lag rising"),
            (&[(5, 10, one), (6, 10, one), (7, 10, one)], (1, 0, 3, 3, NEVER, 0), "3: C advancing, lag flat"),
            (&[(9, 10, one), (4, 15, one), (5, 15, one)], (1, 0, 3, 2, 1, 0), "4: rewind one observation ago, then advance"),
            (&[(5, 10, zero), (5, 10, None), (5, 10, zero)], (3, 1, 3, 3, NEVER, NEVER), "5: unknown members break the member-less run"),
            (&[(5, 10, one), (6, 12, one), (7, 11, one)], (1, 0, 1, 1, NEVER, 0), "6: lag decreased at the end"),
        ];
        for (observations, want, why) in cases {
            let (w, _) = feed(observations);
            let got = (
                w.committed_unchanged,
                w.members_zero,
                w.lag_not_decreasing,
                w.lag_unchanged,
                w.since_rewind,
                w.since_advance,
            );
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn window_queries_table() {
        // (observations (C, lag, members), W, expected (unchanged, memberless, rewound,
        // advanced, lag rising), why)
        let zero = Some(0);
        let one = Some(1);
        type Case<'a> = (
            &'a [(i64, i64, Option<u32>)],
            u16,
            (bool, bool, bool, bool, bool),
            &'a str,
        );
        #[rustfmt::skip]
        let cases: [Case; 6] = [
            (&[(5, 1, zero), (5, 2, zero)], 3, (false, false, false, false, false), "1: window not full: no full-W rule"),
            (&[(5, 1, zero), (5, 2, zero), (5, 3, zero)], 3, (true, true, false, false, true), "2: full and frozen, lag 1 → 3"),
            (&[(9, 1, one), (4, 1, one), (5, 1, one)], 3, (false, false, true, true, false), "3: 9 → 4 is inside the last 3"),
            (&[(9, 1, one), (4, 1, one), (5, 1, one), (6, 1, one)], 3, (false, false, false, true, false), "4: 9 → 4 left the window with 9"),
            (&[(5, 1, one), (5, 1, one), (5, 1, one)], 3, (true, false, false, false, false), "5: flat lag is not rising"),
            (&[(5, 1, one), (6, 2, one), (7, 2, one)], 3, (false, false, false, true, true), "6: 1, 2, 2: never down, higher at the end"),
        ];
        for (observations, w_len, want, why) in cases {
            let (w, _) = feed(observations);
            let got = (
                w.committed_unchanged_across(w_len),
                w.memberless_across(w_len),
                w.rewound_within(w_len),
                w.advanced_within(w_len),
                w.lag_rising_across(w_len),
            );
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn stall_since_and_committed_since_follow_c() {
        // (observations (C, lag), expected stall_since_ms, seconds C frozen at 10 s, why);
        // observations are 1 s apart from 0. stall_since moves when C advances or the partition
        // falls behind; committed_since whenever C changes, either way.
        type Case<'a> = (&'a [(i64, i64)], i64, f64, &'a str);
        #[rustfmt::skip]
        let cases: [Case; 4] = [
            (&[(5, 3), (5, 4), (5, 5)], 0, 10.0, "1: behind from the start, C frozen: since the first"),
            (&[(5, 3), (6, 4), (6, 5)], 1_000, 9.0, "2: C advanced at 1 s"),
            (&[(5, 0), (5, 0), (5, 2)], 2_000, 10.0, "3: behind from 2 s on: C did not move"),
            (&[(9, 3), (4, 8), (4, 9)], 0, 9.0, "4: a rewind is a move of C, not an advance"),
        ];
        for (observations, stall_since, frozen, why) in cases {
            let with_members: Vec<_> = observations.iter().map(|&(c, l)| (c, l, Some(1))).collect();
            let (w, _) = feed(&with_members);
            assert_eq!(w.stall_since_ms, stall_since, "{why}");
            assert_eq!(w.committed_frozen_seconds(10_000), frozen, "{why}");
        }
    }

    #[test]
    fn rewinds_are_reported_with_their_size() {
        let (_, rewinds) = feed(&[
            (100, 0, None),
            (40, 60, None),
            (50, 50, None),
            (10, 90, None),
        ]);
        assert_eq!(rewinds, vec![60, 40]);
    }

    #[test]
    fn evicted_event_is_due_once_per_episode() {
        let (mut w, _) = feed(&[(1, 1, None)]);
        // (evicted messages this poll, event due, why)
        #[rustfmt::skip]
        let cases = [
            (0, false, "1: nothing evicted"),
            (5, true, "2: first time > 0"),
            (8, false, "3: still evicting: already logged"),
            (0, false, "4: back to 0 (the group was reset past L)"),
            (3, true, "5: evicting again: a new episode"),
        ];
        for (evicted, want, why) in cases {
            assert_eq!(w.note_evicted(evicted), want, "{why}");
        }
    }

    #[test]
    fn window_state_is_small() {
        assert_eq!(std::mem::size_of::<PartitionWindow>(), 48);
    }
}
