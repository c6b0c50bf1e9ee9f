//! The status rules driven poll by poll through their windows.

use super::*;

/// Runs `polls` polls 30 s apart of one group on one partition (no retention); `at_poll(k)`
/// gives (H, C, members) of poll k. Returns the statuses.
fn statuses(polls: i64, at_poll: impl Fn(i64) -> (i64, i64, Option<u32>)) -> Vec<Status> {
    let mut a = ClusterAnalytics::new(settings());
    (0..polls)
        .map(|k| {
            let (h, c, members) = at_poll(k);
            let t = 30 * k;
            let s = snapshot(
                t,
                vec![topic("t", TopicConfig::default(), &[(0, 0, h)])],
                vec![group("g", members, &[("t", 0, c)])],
            );
            let (_, out) = poll(&mut a, &s, t, |_| Some(ms(-600)));
            out.report.groups[0].status
        })
        .collect()
}

/// `runs` of (status, count) flattened.
fn expect(runs: &[(Status, usize)]) -> Vec<Status> {
    runs.iter()
        .flat_map(|&(s, n)| std::iter::repeat_n(s, n))
        .collect()
}

#[test]
fn status_stall_then_stop_after_stop_after() {
    // Members present, behind, C frozen. W = 10 is full at poll 9: stall. stall_for reaches
    // 15 min (900 s) at poll 30 (30 × 30 s): stop.
    let got = statuses(32, |_| (1_000, 500, Some(2)));
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 9), (Stall, 21), (Stop, 2)]));
}

#[test]
fn status_memberless_group_with_frozen_commits_stops_after_a_full_window() {
    // No members at any poll, C frozen: stop once W is full (poll 9), long before stop_after.
    // Before that: not stall (no members now), nothing else matches: ok.
    let got = statuses(11, |_| (1_000, 500, Some(0)));
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 9), (Stop, 2)]));
}

#[test]
fn status_memberless_group_whose_commits_advance_is_not_stopped() {
    // assign() consumers: no members, C advances 10 a poll, lag steady at 100 — for longer than
    // stop_after (40 polls = 20 min): ok throughout.
    let got = statuses(40, |k| (1_000 + 10 * k, 900 + 10 * k, Some(0)));
    assert_eq!(got, expect(&[(Status::Ok, 40)]));
}

#[test]
fn status_warn_when_consuming_but_falling_behind() {
    // H +10 a poll, C +5 a poll: lag 500, 505, ... rises across W while C advances: warn from
    // poll 9, when W is full.
    let got = statuses(12, |k| (1_000 + 10 * k, 500 + 5 * k, Some(1)));
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 9), (Warn, 3)]));
}

#[test]
fn status_rewind_lasts_while_the_decrease_is_inside_the_window() {
    // C advances with H (lag 100) but goes back 100 at poll 3, then keeps pace again. The
    // decrease (polls 2 → 3) is inside W for polls 3..=11; at poll 12 poll 2 has left W.
    let got = statuses(14, |k| {
        let c = if k < 3 { 900 + 10 * k } else { 800 + 10 * k };
        (1_000 + 10 * k, c, Some(1))
    });
    use Status::*;
    assert_eq!(got, expect(&[(Ok, 3), (Rewind, 9), (Ok, 2)]));
}
