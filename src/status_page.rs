//! The `/` page: a small server-rendered HTML summary for people (no JavaScript, no external
//! assets). Rendered once per poll, beside the metrics, from the same cluster entries.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::cluster_state::ClusterState;
use crate::human::seconds;
use crate::model::analytics::Status;
use crate::model::GroupReport;

/// Worst first, the order a person wants to read groups in: the status rules' own order, except
/// that `inactive` (rule 1, an abandoned group nobody is paged for) comes just before `ok`.
fn severity(status: Status) -> u8 {
    match status {
        Status::Inactive => Status::Ok.rule(),
        Status::Ok => Status::Ok.rule() + 1,
        other => other.rule(),
    }
}

/// The legend's line for each status ([`Status::ALL`]), in the words of `docs/status.md`.
fn meaning(status: Status) -> &'static str {
    match status {
        Status::Inactive => {
            "no members and no commit moved for status.inactive_after (default 24h): abandoned; \
             still measured, never paged"
        }
        Status::Evicting => "retention deleted unread records, or is about to",
        Status::Stop => "behind and nobody consuming, or a stall that lasted status.stop_after",
        Status::Stall => {
            "members present, behind by at least status.min_time_lag, commits frozen across the \
             window"
        }
        Status::Rewind => "committed offsets moved backwards within the window",
        Status::Warn => {
            "consuming but falling behind: lag rising across the window and time lag at least \
             status.min_time_lag"
        }
        Status::Ok => "none of the above",
    }
}

/// Renders the page for the clusters' latest state, as of `now`.
pub fn render(clusters: &[ClusterState], now: SystemTime) -> String {
    let mut html = String::with_capacity(4096);
    html.push_str(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>lagwatch</title><style>",
        "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}",
        "table{border-collapse:collapse;margin-bottom:1.5rem}",
        "th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}",
        "td.n{text-align:right;font-variant-numeric:tabular-nums}",
        ".evicting,.stop,.down{color:#fff;background:#c0392b}.stall,.stale{background:#f5b041}",
        ".rewind,.warn{background:#f9e79f}.ok,.up{color:#1e8449}.inactive{color:#555;background:#e5e7e9}",
        "</style></head><body>\n<h1>lagwatch</h1>\n",
        "<p><a href=\"metrics\">metrics</a> · <a href=\"healthz\">healthz</a> · ",
        "<a href=\"readyz\">readyz</a></p>\n",
    ));
    html.push_str("<h2>Clusters</h2>\n<table><tr><th>cluster</th><th>state</th><th>last successful poll</th><th>groups</th></tr>\n");
    for c in clusters {
        let (class, state) = match (c.up, c.report.is_some(), c.last_success.is_some()) {
            (true, true, _) => ("up", "up"),
            (false, true, _) => ("stale", "stale: serving the last good poll"),
            // Good data once, none for 3 poll intervals (failing, or a poll stuck): dropped.
            (_, false, true) => ("stale", "stale: no good poll for 3 intervals"),
            (_, false, false) => ("down", "down: no data"),
        };
        let last = match c.last_success {
            Some(t) => format!("{} ago", age(now, t)),
            None => "never".to_string(),
        };
        let groups = c.report.as_ref().map_or(0, |r| r.groups.len());
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"{class}\">{state}</td><td>{last}</td><td class=\"n\">{groups}</td></tr>",
            escape(&c.name)
        );
    }
    html.push_str("</table>\n<h2>Consumer groups</h2>\n");
    let mut rows: Vec<(&str, &GroupReport)> = clusters
        .iter()
        .filter_map(|c| c.report.as_ref().map(|r| (c.name.as_str(), r)))
        .flat_map(|(name, r)| r.groups.iter().map(move |g| (name, g)))
        .collect();
    rows.sort_by(|a, b| {
        severity(a.1.status)
            .cmp(&severity(b.1.status))
            .then_with(|| {
                let ta = a.1.figures.lag_seconds.unwrap_or(0.0);
                let tb = b.1.figures.lag_seconds.unwrap_or(0.0);
                tb.total_cmp(&ta)
            })
            .then_with(|| (a.0, a.1.id.as_str()).cmp(&(b.0, b.1.id.as_str())))
    });
    if rows.is_empty() {
        html.push_str("<p>No consumer groups yet.</p>\n");
    } else {
        html.push_str(concat!(
            "<table><tr><th>cluster</th><th>group</th><th>status</th><th>state</th>",
            "<th>members</th><th>lag (messages)</th><th>time lag</th><th>eviction in</th>",
            "<th>evicted</th></tr>\n"
        ));
        for (cluster, g) in rows {
            let status = g.status.as_str();
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(cluster),
                escape(&g.id),
                g.state.as_str(),
                g.members.map_or("-".to_string(), |m| m.to_string()),
                g.figures.lag_messages,
                g.figures.lag_seconds.map_or("-".to_string(), seconds),
                g.figures.eviction_seconds.map_or("-".to_string(), seconds),
                g.figures.evicted_messages,
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("<h2>Statuses</h2>\n<table><tr><th>status</th><th>meaning</th></tr>\n");
    let mut legend = Status::ALL;
    legend.sort_by_key(|s| severity(*s));
    for status in legend {
        let name = status.as_str();
        let _ = writeln!(
            html,
            "<tr><td class=\"{name}\">{name}</td><td>{}</td></tr>",
            meaning(status)
        );
    }
    html.push_str("</table>\n</body></html>\n");
    html
}

fn age(now: SystemTime, then: SystemTime) -> String {
    seconds(now.duration_since(then).unwrap_or_default().as_secs_f64())
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Figures, GroupState, GroupType, Report};
    use std::sync::Arc;
    use std::time::Duration;

    fn group(id: &str, status: Status, lag_seconds: f64) -> GroupReport {
        GroupReport {
            id: id.into(),
            group_type: GroupType::Classic,
            state: GroupState::Stable,
            members: Some(2),
            uncommitted_partitions: 0,
            status,
            figures: Figures {
                lag_messages: 10,
                lag_seconds: Some(lag_seconds),
                eviction_seconds: Some(600.0),
                retention_usage_ratio: None,
                evicted_messages: 0,
                commit_stall_seconds: Some(0.0),
            },
            topics: Vec::new(),
        }
    }

    #[test]
    fn groups_are_listed_worst_first_and_names_are_escaped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut up = ClusterState::new("prod");
        up.up = true;
        up.last_success = Some(now - Duration::from_secs(5));
        up.report = Some(Arc::new(Report {
            topics: vec![],
            groups: vec![
                group("fine", Status::Ok, 1.0),
                group("<script>", Status::Warn, 30.0),
                group("losing", Status::Evicting, 3000.0),
                group("slow", Status::Warn, 90.0),
                group("abandoned", Status::Inactive, 90_000.0),
            ],
        }));
        let down = ClusterState::new("dr");
        let html = render(&[up, down], now);
        let pos = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s} in page"));
        // Evicting first, then warn by time lag (90 s before 30 s), then ok.
        assert!(pos(">losing<") < pos(">slow<"));
        assert!(pos(">slow<") < pos("&lt;script&gt;"));
        assert!(pos("&lt;script&gt;") < pos(">abandoned<"));
        assert!(
            pos(">abandoned<") < pos(">fine<"),
            "inactive is never paged on: listed after warn, before ok, whatever its time lag"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("50m"), "time lag of 3000 s shown as 50m");
        assert!(html.contains("10m"), "eviction countdown shown");
        assert!(html.contains("class=\"down\">down: no data"));
        assert!(html.contains("5s ago"));
    }

    #[test]
    fn legend_lists_every_status_in_page_order() {
        let html = render(&[], SystemTime::UNIX_EPOCH);
        let legend = &html[html.find("<h2>Statuses</h2>").expect("legend")..];
        let order = [
            "evicting", "stop", "stall", "rewind", "warn", "inactive", "ok",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|name| {
                let cell = format!("<td class=\"{name}\">{name}</td>");
                legend
                    .find(&cell)
                    .unwrap_or_else(|| panic!("{name} in the legend"))
            })
            .collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "{order:?}");
        assert_eq!(order.len(), Status::ALL.len());
        assert!(legend.contains("never paged"));
    }
}
