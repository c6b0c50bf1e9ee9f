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
use lagwatch::kafka::native::{NativeClient, ShareOffsetEntry, ShareOffsets};
use lagwatch::kafka::stats::RequestCounter;
use lagwatch::kafka::Request;
use lagwatch::model::GroupState;

use common::{kafka, unique, KafkaCluster};

/// Share-group state reaches the share coordinator as acknowledgements are committed, and a
/// Streams application commits every 100 ms: generous for two busy cores.
const SETTLE: Duration = Duration::from_secs(60);

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
        let got = native.share_group_offsets(&[group.to_string()]).remove(0);
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
        .describe_share_groups(&groups)
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
        .describe_share_groups(&groups)
        .remove(0)
        .expect("described");
    assert_eq!(counted(&requests) - before, 2);
    let before = counted(&requests);
    native
        .share_group_offsets(&groups)
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
            .describe_share_groups(&groups)
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
        .describe_share_groups(&[unique("no-such-share-group")])
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
            .committed_offsets(&groups, Duration::from_secs(30))
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
        .describe_streams_groups(&groups)
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
