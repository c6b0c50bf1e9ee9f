//! The Kafka 4 group types librdkafka cannot describe, read over lagwatch's own protocol path
//! from Apache Kafka with live members: share groups (KIP-932: ShareGroupDescribe and
//! DescribeShareGroupOffsets with the v1 lag) whose members are Kafka's own share consumers, and
//! streams groups (KIP-1071: StreamsGroupDescribe) of a running Kafka Streams application. Every
//! value is checked against what was produced, acknowledged and committed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lagwatch::config::Config;
use lagwatch::kafka::native::{NativeClient, NativeError, ShareOffsetEntry, ShareOffsets};
use lagwatch::kafka::stats::RequestCounter;
use lagwatch::kafka::{KafkaCallError, Request};
use lagwatch::model::GroupState;

use common::kafka_cluster::group_clients::ShareMember;
use common::{kafka, unique, Exposition, KafkaCluster, Lagwatch};

/// Share-group state reaches the share coordinator as acknowledgements are committed, and a
/// Streams application commits every 100 ms: generous for two busy cores.
const SETTLE: Duration = Duration::from_secs(60);

/// Time each native call may take.
const BUDGET: Duration = Duration::from_secs(30);

fn native(broker: &KafkaCluster) -> (NativeClient, Arc<Mutex<RequestCounter>>) {
    let yaml = format!(
        "clusters:\n  - name: groups\n    bootstrap_servers: \"{}\"\n",
        broker.bootstrap()
    );
    let cluster = Config::from_yaml(&yaml).expect("config").clusters.remove(0);
    let requests = Arc::new(Mutex::new(RequestCounter::default()));
    let client = NativeClient::new(&cluster, requests.clone(), Duration::from_secs(15))
        .expect("the native path serves PLAINTEXT");
    (client, requests)
}

fn counted(requests: &Arc<Mutex<RequestCounter>>) -> u64 {
    requests.lock().expect("counter").totals().values().sum()
}

/// Checks a share group's offsets for `topic` after every record before `accepted[p]` was
/// accepted and none since (the partition's end is `end[p]`): the start offset, the earliest
/// offset still being delivered, is `accepted[p]`, and the lag is what came after.
///
/// Kafka 4.4 writes a share partition's start offset to the share coordinator with the state
/// write *after* the acknowledgements that move it (records after the start offset may already
/// be delivered, as Kafka's share-group documentation says), so the tests have a member fetch
/// and release the new records first (`ShareMember::fetch_and_release`).
fn assert_share_offsets(got: &ShareOffsets, topic: &str, accepted: &[i64], end: &[i64]) {
    let want: ShareOffsets = accepted
        .iter()
        .zip(end)
        .enumerate()
        .map(|(p, (&accepted, &end))| {
            let entry = ShareOffsetEntry {
                start_offset: accepted,
                lag: Some(end - accepted),
            };
            (topic.to_string(), p as i32, entry)
        })
        .collect();
    assert_eq!(got, &want);
}

/// Every (partition, offset) of partitions holding `counts[p]` records.
fn all_records(counts: &[i64]) -> BTreeSet<(i32, i64)> {
    counts
        .iter()
        .enumerate()
        .flat_map(|(p, &n)| (0..n).map(move |o| (p as i32, o)))
        .collect()
}

/// The group's offsets once their lags equal `lags`, or its last answer (which the caller's
/// assertion then shows) after [`SETTLE`].
fn settled_share_offsets(native: &mut NativeClient, group: &str, lags: &[i64]) -> ShareOffsets {
    let deadline = Instant::now() + SETTLE;
    loop {
        let got = native
            .share_group_offsets(&[group.to_string()], BUDGET)
            .remove(0);
        match got {
            Ok(got)
                if got
                    .iter()
                    .map(|(_, _, e)| e.lag)
                    .eq(lags.iter().map(|l| Some(*l)))
                    || Instant::now() > deadline =>
            {
                return got
            }
            Err(e) if Instant::now() > deadline => panic!("DescribeShareGroupOffsets: {e:?}"),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

#[test]
fn kafka_4_4_speaks_the_newest_version_of_every_group_type_request() {
    let (mut native, _) = native(kafka());
    let versions = native.group_type_versions().expect("versions");
    // DescribeShareGroupOffsets v1 carries the lag (KIP-1226, Kafka 4.2).
    assert_eq!(
        versions,
        BTreeMap::from([
            (Request::ShareGroupDescribe, Some(1)),
            (Request::DescribeShareGroupOffsets, Some(1)),
            (Request::StreamsGroupDescribe, Some(1)),
        ])
    );
}

#[test]
fn a_share_group_with_two_live_members_is_described_with_its_exact_start_offset_and_lag() {
    let broker = kafka();
    let topic = unique("share");
    let group = unique("share-group");
    // One partition, which the two members share (a share group's members may read the same
    // partition).
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 70, None);
    // Two members accept 25 and 45 records between them, each releasing what it is given
    // beyond its quota to the other, then stay in the group without fetching.
    let mut first = broker.share_member(&group, &topic, 25);
    let mut second = broker.share_member(&group, &topic, 45);
    let mut accepted = first.accepted();
    let second_accepted = second.accepted();
    assert_eq!((accepted.len(), second_accepted.len()), (25, 45));
    accepted.extend(second_accepted);
    // Every record accepted exactly once.
    let unique_accepted: BTreeSet<(i32, i64)> = accepted.iter().copied().collect();
    assert_eq!(unique_accepted.len(), 70);
    assert_eq!(unique_accepted, all_records(&[70]));
    // Records nobody keeps: the group's lag. The first member fetches some and gives them
    // back, so the broker writes the partition's state again.
    broker.produce(&topic, 0, 12, None);
    let released = first.fetch_and_release();
    assert!((1..=12).contains(&released), "released {released}");

    let (mut native, requests) = native(broker);
    let groups = vec![group.clone()];
    let described = native
        .describe_share_groups(&groups, BUDGET)
        .remove(0)
        .expect("described");
    assert_eq!(described.state, "Stable");
    assert_eq!(GroupState::from_broker(&described.state).as_str(), "stable");
    assert_eq!(described.members.len(), 2, "{described:?}");
    // Both members are assigned the one partition.
    for m in &described.members {
        assert_eq!(m.subscribed_topics, vec![topic.clone()], "{m:?}");
        assert_eq!(m.assignment, vec![(topic.clone(), vec![0])], "{m:?}");
    }

    let got = settled_share_offsets(&mut native, &group, &[12]);
    assert_share_offsets(&got, &topic, &[70], &[82]);

    // Once connected: one FindCoordinator and one request to the coordinator per call.
    let before = counted(&requests);
    native
        .describe_share_groups(&groups, BUDGET)
        .remove(0)
        .expect("described");
    assert_eq!(counted(&requests) - before, 2);
    let before = counted(&requests);
    native
        .share_group_offsets(&groups, BUDGET)
        .remove(0)
        .expect("offsets");
    assert_eq!(counted(&requests) - before, 2);
}

#[test]
fn a_share_group_without_members_is_empty_and_keeps_its_offsets() {
    let broker = kafka();
    let topic = unique("share-empty");
    let group = unique("share-empty-group");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 20, None);
    let mut member = broker.share_member(&group, &topic, 20);
    let accepted: BTreeSet<(i32, i64)> = member.accepted().into_iter().collect();
    assert_eq!(accepted, all_records(&[20]));
    broker.produce(&topic, 0, 7, None);
    let released = member.fetch_and_release();
    assert!((1..=7).contains(&released), "released {released}");
    member.client.stop();

    let (mut native, _) = native(broker);
    let groups = vec![group.clone()];
    let deadline = Instant::now() + SETTLE;
    let described = loop {
        let d = native
            .describe_share_groups(&groups, BUDGET)
            .remove(0)
            .expect("described");
        if d.members.is_empty() || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(described.state, "Empty");
    assert_eq!(GroupState::from_broker(&described.state).as_str(), "empty");
    assert!(described.members.is_empty(), "{described:?}");
    let got = settled_share_offsets(&mut native, &group, &[7]);
    assert_share_offsets(&got, &topic, &[20], &[27]);

    // A group that does not exist is an error naming the coordinator, not a panic.
    let missing = native
        .describe_share_groups(&[unique("no-such-share-group")], BUDGET)
        .remove(0)
        .expect_err("no such group");
    assert!(missing.broker.is_some(), "{missing:?}");
}

#[test]
fn a_streams_group_of_a_running_application_is_described_and_its_commits_are_exact() {
    let broker = kafka();
    let topic = unique("streams");
    let group = unique("streams-app");
    broker.create_topic(&topic, 2, &[]);
    broker.produce(&topic, 0, 25, None);
    broker.produce(&topic, 1, 35, None);
    let _app = broker.streams_app(&group, &topic);

    let (mut native, requests) = native(broker);
    let groups = vec![group.clone()];
    let want = BTreeMap::from([((topic.clone(), 0), 25), ((topic.clone(), 1), 35)]);
    let deadline = Instant::now() + SETTLE;
    let committed = loop {
        let got: BTreeMap<(String, i32), i64> = native
            .committed_offsets(&groups, BUDGET)
            .remove(0)
            .expect("OffsetFetch")
            .into_iter()
            .map(|o| ((o.topic, o.partition), o.offset))
            .collect();
        if got == want || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(committed, want);

    // Connected already: one FindCoordinator and one StreamsGroupDescribe.
    let before = counted(&requests);
    let described = native
        .describe_streams_groups(&groups, BUDGET)
        .remove(0)
        .expect("described");
    assert_eq!(counted(&requests) - before, 2);
    assert_eq!(described.state, "Stable");
    assert_eq!(GroupState::from_broker(&described.state).as_str(), "stable");
    // One process with one stream thread: one member, running both tasks of the one
    // subtopology (one per input partition).
    assert_eq!(described.members.len(), 1, "{described:?}");
    let tasks: Vec<(String, BTreeSet<i32>)> = described.members[0]
        .active_tasks
        .iter()
        .map(|(s, p)| (s.clone(), p.iter().copied().collect()))
        .collect();
    assert_eq!(tasks, vec![("0".to_string(), BTreeSet::from([0, 1]))]);
}

/// lagwatch polling every second, granularity partition, status window 3, selecting the groups
/// and topics whose names start with `prefix`.
fn lagwatch_on(broker: &KafkaCluster, prefix: &str) -> Lagwatch {
    let names = format!("{prefix}-.*");
    Lagwatch::start(&common::one_cluster_config(
        broker,
        &names,
        &names,
        "status: { window: 3 }",
    ))
}

/// What /metrics says of one group: its state label, members, lag, status label, and per
/// partition of `topic` (committed offset, lag); all looked up with its `group_type` label.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: Option<String>,
    members: Option<f64>,
    lag: Option<f64>,
    status: Option<String>,
    partitions: Vec<(Option<f64>, Option<f64>)>,
    commit_stall: bool,
}

/// The one label value `label` of the group's series of `family` (value 1).
fn label_of(m: &Exposition, family: &str, group: &str, kind: &str, label: &str) -> Option<String> {
    let prefix = format!("{family}{{");
    let group = format!("group=\"{group}\"");
    let kind = format!("group_type=\"{kind}\"");
    let found: Vec<String> = m
        .samples
        .iter()
        .filter(|(series, v)| {
            series.starts_with(&prefix)
                && series.contains(&group)
                && series.contains(&kind)
                && **v == 1.0
        })
        .filter_map(|(series, _)| {
            let rest = series.split(&format!("{label}=\"")).nth(1)?;
            Some(rest.split('"').next()?.to_string())
        })
        .collect();
    assert!(found.len() <= 1, "{family} of {group}: {found:?}");
    found.into_iter().next()
}

fn seen(m: &Exposition, group: &str, kind: &str, topic: &str, partitions: i32) -> Seen {
    let labels = [("group", group), ("group_type", kind)];
    Seen {
        state: label_of(m, "kafka_consumergroup_state", group, kind, "state"),
        members: m.value("kafka_consumergroup_members", &labels),
        lag: m.value("kafka_consumergroup_lag_messages", &labels),
        status: label_of(m, "kafka_consumergroup_status", group, kind, "status"),
        partitions: (0..partitions)
            .map(|p| {
                let p = p.to_string();
                let labels = [
                    ("group", group),
                    ("topic", topic),
                    ("partition", p.as_str()),
                ];
                (
                    m.value("kafka_consumergroup_partition_committed_offset", &labels),
                    m.value("kafka_consumergroup_partition_lag_messages", &labels),
                )
            })
            .collect(),
        commit_stall: m
            .value("kafka_consumergroup_commit_stall_seconds", &labels)
            .is_some(),
    }
}

/// A group as lagwatch should show it: `state` and `status` labels, members, lag and per
/// partition (committed offset, lag); every type but share has a commit stall series.
fn want(state: &str, members: f64, status: &str, partitions: &[(i64, i64)], share: bool) -> Seen {
    Seen {
        state: Some(state.into()),
        members: Some(members),
        lag: Some(partitions.iter().map(|(_, l)| *l as f64).sum()),
        status: Some(status.into()),
        partitions: partitions
            .iter()
            .map(|&(c, l)| (Some(c as f64), Some(l as f64)))
            .collect(),
        commit_stall: !share,
    }
}

/// A share member that accepted `accepted` records of `topic`'s one partition and was then
/// given `after` more, which it released: the group's start offset is `accepted`, its lag
/// `after` (once the broker wrote the state after the release).
fn share_group_behind(
    broker: &KafkaCluster,
    group: &str,
    topic: &str,
    accepted: usize,
    after: usize,
) -> ShareMember {
    broker.create_topic(topic, 1, &[]);
    broker.produce(topic, 0, accepted, None);
    let mut member = broker.share_member(group, topic, accepted);
    assert_eq!(member.accepted().len(), accepted);
    broker.produce(topic, 0, after, None);
    let released = member.fetch_and_release();
    assert!((1..=after).contains(&released), "released {released}");
    member
}

#[test]
fn lagwatch_shows_one_live_group_of_each_type_with_its_own_state_members_and_lag() {
    let broker = kafka();
    let prefix = unique("types");
    let name = |kind: &str| format!("{prefix}-{kind}");
    let (classic, consumer, share, streams) = (
        name("classic"),
        name("consumer"),
        name("share"),
        name("streams"),
    );
    // Topics named after their group; the classic and consumer members commit 10 and 12.
    for topic in [&classic, &consumer] {
        broker.create_topic(topic, 1, &[]);
        broker.produce(topic, 0, 30, None);
    }
    let _classic_member = broker.member_of(&classic, "classic", &classic, Some(10));
    let _consumer_member = broker.member_of(&consumer, "consumer", &consumer, Some(12));
    let _share_member = share_group_behind(broker, &share, &share, 40, 6);
    broker.create_topic(&streams, 2, &[]);
    broker.produce(&streams, 0, 25, None);
    broker.produce(&streams, 1, 35, None);
    let _app = broker.streams_app(&streams, &streams);

    let lagwatch = lagwatch_on(broker, &prefix);
    // (group, type, partitions, expected)
    let expected = [
        (
            &classic,
            "classic",
            1,
            want("stable", 1.0, "ok", &[(10, 20)], false),
        ),
        (
            &consumer,
            "consumer",
            1,
            want("stable", 1.0, "ok", &[(12, 18)], false),
        ),
        (
            &share,
            "share",
            1,
            want("stable", 1.0, "ok", &[(40, 6)], true),
        ),
        (
            &streams,
            "streams",
            2,
            want("stable", 1.0, "ok", &[(25, 0), (35, 0)], false),
        ),
    ];
    let all_seen = |m: &Exposition| -> Vec<Seen> {
        expected
            .iter()
            .map(|(g, kind, n, _)| seen(m, g, kind, g, *n))
            .collect()
    };
    let wanted: Vec<Seen> = expected.iter().map(|(_, _, _, w)| w.clone()).collect();
    let m = lagwatch.wait_for(SETTLE * 2, "every group as expected", |m| {
        all_seen(m) == wanted
    });
    assert_eq!(all_seen(&m), wanted);

    // The share group's lag is the broker's own count (DescribeShareGroupOffsets v1).
    let (mut native, _) = native(broker);
    let offsets = native
        .share_group_offsets(std::slice::from_ref(&share), BUDGET)
        .remove(0)
        .expect("offsets");
    let entry = ShareOffsetEntry {
        start_offset: 40,
        lag: Some(6),
    };
    assert_eq!(offsets, vec![(share.clone(), 0, entry)]);
    // Share groups have no commit stall series at any level.
    assert!(!m.text.contains(&format!(
        "kafka_consumergroup_topic_commit_stall_seconds{{cluster=\"test\",group=\"{share}\""
    )));
}

#[test]
fn a_share_group_behind_without_members_is_stop_and_a_caught_up_one_is_ok() {
    let broker = kafka();
    let prefix = unique("share-status");
    let (gone, caught_up) = (format!("{prefix}-gone"), format!("{prefix}-caught-up"));
    let mut member = share_group_behind(broker, &gone, &gone, 20, 7);
    member.client.stop();
    broker.create_topic(&caught_up, 1, &[]);
    broker.produce(&caught_up, 0, 15, None);
    let mut live = broker.share_member(&caught_up, &caught_up, 15);
    assert_eq!(live.accepted().len(), 15);

    let lagwatch = lagwatch_on(broker, &prefix);
    // Member-less at every poll of the window with the start offset frozen, 7 behind: stop.
    let gone_want = want("empty", 0.0, "stop", &[(20, 7)], true);
    let m = lagwatch.wait_for(SETTLE * 2, "the member-less share group stopped", |m| {
        seen(m, &gone, "share", &gone, 1) == gone_want
    });
    assert_eq!(seen(&m, &gone, "share", &gone, 1), gone_want);
    // Every record accepted: the broker counts no lag, and the group is ok.
    let m = lagwatch.wait_for(SETTLE, "the caught-up share group", |m| {
        let s = seen(m, &caught_up, "share", &caught_up, 1);
        s.lag == Some(0.0) && s.status.as_deref() == Some("ok")
    });
    let s = seen(&m, &caught_up, "share", &caught_up, 1);
    assert_eq!(
        (s.state.as_deref(), s.members, s.lag, s.status.as_deref()),
        (Some("stable"), Some(1.0), Some(0.0), Some("ok")),
        "{s:?}"
    );
}

#[test]
fn share_and_streams_calls_end_at_their_budget_with_one_timeout_per_group() {
    // A "broker" that accepts connections and never answers: every call waits on its
    // connection's ApiVersions until the budget ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let yaml = format!(
        "clusters:\n  - name: silent\n    bootstrap_servers: \"{}\"\n",
        silent.local_addr().expect("address")
    );
    let cluster = Config::from_yaml(&yaml).expect("config").clusters.remove(0);
    let requests = Arc::new(Mutex::new(RequestCounter::default()));
    let mut native = NativeClient::new(&cluster, requests, Duration::from_secs(60))
        .expect("the native path serves PLAINTEXT");
    let budget = Duration::from_millis(300);
    let groups = vec!["first".to_string(), "second".to_string()];
    let timed_out = |request| NativeError {
        broker: None,
        error: KafkaCallError::Timeout {
            request,
            timeout: budget,
        },
    };
    fn errors<T>(results: Vec<Result<T, NativeError>>) -> Vec<NativeError> {
        results.into_iter().filter_map(Result::err).collect()
    }
    let described = native.describe_share_groups(&groups, budget);
    assert_eq!(
        errors(described),
        vec![timed_out(Request::ShareGroupDescribe); 2]
    );
    let offsets = native.share_group_offsets(&groups, budget);
    assert_eq!(
        errors(offsets),
        vec![timed_out(Request::DescribeShareGroupOffsets); 2]
    );
    let streams = native.describe_streams_groups(&groups, budget);
    assert_eq!(
        errors(streams),
        vec![timed_out(Request::StreamsGroupDescribe); 2]
    );
}

#[test]
fn a_streams_group_whose_source_topic_is_missing_is_not_ready() {
    let broker = kafka();
    let prefix = unique("not-ready");
    let group = format!("{prefix}-app");
    // The topology reads a topic nobody created: the broker keeps the group not ready.
    let _app = broker.streams_app_starting(&group, &format!("{prefix}-missing"));
    let lagwatch = lagwatch_on(broker, &prefix);
    let state =
        |m: &Exposition| label_of(m, "kafka_consumergroup_state", &group, "streams", "state");
    let m = lagwatch.wait_for(SETTLE * 2, "the streams group not ready", |m| {
        state(m).as_deref() == Some("not_ready")
    });
    assert_eq!(state(&m).as_deref(), Some("not_ready"));
    assert_eq!(
        m.value(
            "kafka_consumergroup_members",
            &[("group", group.as_str()), ("group_type", "streams")]
        ),
        Some(1.0)
    );
}
