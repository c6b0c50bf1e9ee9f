//! The poll loop's timing on a paused clock: staleness (PRODUCT.md §3), readiness and shutdown
//! (§7). A scripted poller stands in for Kafka; time only moves when every task waits on a timer,
//! so the loop polls exactly at 0, 1, 2, … intervals and the tests look in between.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as blocking_channel;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::*;
use crate::kafka::{BrokerRef, KafkaCallError, PollOutcome, Stage, StageError};
use crate::model::{
    CommittedOffset, GroupSnapshot, GroupState, GroupType, PartitionOffsets, Snapshot, TopicConfig,
    TopicSnapshot,
};

const INTERVAL: Duration = Duration::from_secs(30);

/// The cluster's consumer-group lag line while its report is served: 100 written, 90 committed.
const LAG_LINE: &str = "kafka_consumergroup_lag_messages{cluster=\"local\",group=\"billing\",group_type=\"classic\"} 10";

/// One poll's input to the model: topic `orders` (offsets 0..100) and group `billing`, which
/// committed 90.
fn snapshot() -> Snapshot {
    let topic: Arc<str> = Arc::from("orders");
    Snapshot {
        taken_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        topics: vec![TopicSnapshot {
            name: topic.clone(),
            partitions: vec![PartitionOffsets {
                partition: 0,
                earliest: 0,
                latest: 100,
            }],
            config: TopicConfig::default(),
        }],
        groups: vec![GroupSnapshot {
            id: "billing".to_string(),
            group_type: GroupType::Classic,
            state: GroupState::Stable,
            members: Some(1),
            offsets: vec![CommittedOffset {
                topic,
                partition: 0,
                offset: 90,
            }],
        }],
    }
}

/// A poll that read metadata and offsets.
fn good_poll() -> PollResult {
    let snapshot = snapshot();
    // One analytics poll without timestamp reads: the loop's tests look at offset lag only.
    let mut analytics = crate::model::analytics::ClusterAnalytics::new(Default::default());
    analytics.plan_reads(&snapshot);
    let report = analytics.finish(&snapshot, &[], snapshot.taken_at).report;
    PollResult {
        report: Some(report),
        outcome: PollOutcome {
            snapshot: Some(snapshot),
            errors: Vec::new(),
            unauthorized: Default::default(),
        },
        events: Vec::new(),
        timestamp_reads_pending: 0,
    }
}

/// A poll whose metadata stage failed: nothing to report, `lagwatch_kafka_up` 0.
fn failed_poll() -> PollResult {
    PollResult {
        report: None,
        outcome: PollOutcome {
            snapshot: None,
            errors: vec![StageError::new(
                Stage::Metadata,
                Some(BrokerRef::Bootstrap("127.0.0.1:9092".to_string())),
                KafkaCallError::Timeout {
                    request: crate::kafka::Request::Metadata,
                    timeout: Duration::from_secs(10),
                },
            )],
            unauthorized: Default::default(),
        },
        events: Vec::new(),
        timestamp_reads_pending: 0,
    }
}

/// What one scripted poll does.
enum Step {
    Good,
    Fail,
    /// Says on `started` that it is running, then holds its blocking thread until `release`
    /// gets a message or its sender is dropped; then succeeds. The wall-clock bound turns a
    /// loop that waits for it into a failed assertion instead of a hung test.
    Block {
        started: mpsc::UnboundedSender<()>,
        release: blocking_channel::Receiver<()>,
    },
}

/// Plays its steps in order, then fails every poll (a broker that went away).
struct Scripted {
    steps: VecDeque<Step>,
    polls: Arc<AtomicUsize>,
}

impl Poller for Scripted {
    fn poll(&mut self) -> PollResult {
        self.polls.fetch_add(1, Ordering::SeqCst);
        match self.steps.pop_front().unwrap_or(Step::Fail) {
            Step::Good => good_poll(),
            Step::Fail => failed_poll(),
            Step::Block { started, release } => {
                let _ = started.send(());
                let _ = release.recv_timeout(Duration::from_secs(10));
                good_poll()
            }
        }
    }

    fn requests(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([("bootstrap".to_string(), 1)])
    }
}

type Start = Box<dyn FnOnce() -> Result<Scripted, String> + Send>;

/// A plan for cluster `name` whose poller plays `steps`; the counter tells how many polls ran.
fn plan(name: &str, steps: Vec<Step>) -> (PollPlan<Start>, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = polls.clone();
    let start: Start = Box::new(move || {
        Ok(Scripted {
            steps: steps.into(),
            polls: counted,
        })
    });
    let plan = PollPlan {
        cluster: name.to_string(),
        poll_interval: INTERVAL,
        start,
    };
    (plan, polls)
}

fn render_settings_for_tests() -> RenderSettings {
    let config = Config::from_yaml(
        r#"
listen: "127.0.0.1:0"
poll_interval: 30s
granularity: topic
clusters:
  - name: local
    bootstrap_servers: "127.0.0.1:9092"
"#,
    )
    .expect("test configuration");
    render_settings(&config)
}

fn shared_for(plans: &[&PollPlan<Start>]) -> Arc<Shared> {
    let clusters = plans
        .iter()
        .map(|p| ClusterState::new(p.cluster.clone()))
        .collect();
    Arc::new(Shared::new(clusters, render_settings_for_tests()))
}

/// Starts the poll loop of `plan` as cluster `index` of `shared`, with its own stop switch.
fn spawn_loop(
    index: usize,
    plan: PollPlan<Start>,
    shared: &Arc<Shared>,
) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = tokio::spawn(poll_loop(index, plan, shared.clone(), stop_rx));
    (stop_tx, handle)
}

fn cluster(shared: &Shared, index: usize) -> ClusterState {
    shared.clusters.lock().expect("clusters")[index].clone()
}

/// A GET through the router, as a scrape sees it.
async fn get(exposition: &Arc<Exposition>, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).expect("request");
    let response = http::router(exposition.clone())
        .oneshot(request)
        .await
        .expect("router");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8(body.to_vec()).expect("utf-8"))
}

/// Kafka series (not exporter ones) in an exposition.
fn kafka_series(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("kafka_")).count()
}

/// Sleeps to the middle of the interval after the poll at `polls` intervals from `start`, when
/// exactly `polls + 1` polls have been made.
async fn after_poll(start: Instant, polls: u32) {
    tokio::time::sleep_until(start + INTERVAL * polls + INTERVAL / 2).await;
}

/// Lets the loops and their blocking work run until `done` holds. While a blocking poll is in
/// flight the paused clock does not advance, so this yields rather than sleeps; the wall-clock
/// bound turns a condition never reached into a failure instead of a hang.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::task::yield_now().await;
    }
}

#[test]
fn data_is_stale_only_when_older_than_three_intervals() {
    // (age in seconds, expected) at a 30 s interval.
    let cases = [
        // 1. Just polled.
        (0, false),
        // 2. Two failed polls since.
        (60, false),
        // 3. Exactly three intervals old: still served ("until they are 3 poll intervals old").
        (90, false),
        // 4. The next failed poll finds it older than three intervals.
        (120, true),
    ];
    for (age, want) in cases {
        assert_eq!(is_stale(Duration::from_secs(age), INTERVAL), want, "{age}s");
    }
    assert!(is_stale(INTERVAL * 3 + Duration::from_millis(1), INTERVAL));
}

#[tokio::test(start_paused = true)]
async fn last_good_series_are_served_for_three_intervals_then_dropped() {
    let start = Instant::now();
    let (plan, polls) = plan("local", vec![Step::Good, Step::Good]);
    let shared = shared_for(&[&plan]);
    let (stop, handle) = spawn_loop(0, plan, &shared);

    // Polls at 0 and 30 s succeed: served, up.
    for poll in 0..2 {
        after_poll(start, poll).await;
        let (_, text) = get(&shared.exposition, "/metrics").await;
        assert!(text.contains(LAG_LINE), "poll {poll}:\n{text}");
        assert!(text.contains("lagwatch_kafka_up{cluster=\"local\"} 1"));
    }
    let served = kafka_series(&get(&shared.exposition, "/metrics").await.1);
    assert!(served > 0);

    // Polls at 60, 90 and 120 s fail: the report of 30 s is 30, 60, then exactly 90 s old, so
    // the same series are still served, now with up 0.
    for poll in 2..5 {
        after_poll(start, poll).await;
        let state = cluster(&shared, 0);
        assert!(state.report.is_some(), "poll {poll}");
        assert!(!state.up, "poll {poll}");
        let (_, text) = get(&shared.exposition, "/metrics").await;
        assert!(text.contains(LAG_LINE), "poll {poll}:\n{text}");
        assert_eq!(kafka_series(&text), served, "poll {poll}");
        assert!(text.contains("lagwatch_kafka_up{cluster=\"local\"} 0"));
    }

    // The poll at 150 s finds it 120 s old: dropped. The exporter's own families stay.
    after_poll(start, 5).await;
    assert_eq!(polls.load(Ordering::SeqCst), 6);
    let state = cluster(&shared, 0);
    assert!(state.report.is_none());
    assert!(!state.up);
    assert!(state.last_success.is_some());
    assert_eq!(state.errors.get(&Stage::Metadata), Some(&4));
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert_eq!(kafka_series(&text), 0, "{text}");
    for line in [
        "lagwatch_kafka_up{cluster=\"local\"} 0",
        "lagwatch_poll_errors_total{cluster=\"local\",stage=\"metadata\"} 4",
        "lagwatch_poll_duration_seconds_count{cluster=\"local\"} 6",
        "lagwatch_kafka_requests_total{cluster=\"local\",broker=\"bootstrap\"} 1",
        "lagwatch_last_poll_success_timestamp_seconds{cluster=\"local\"} ",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }

    let _ = stop.send(true);
    handle.await.expect("poll loop");
}

#[tokio::test(start_paused = true)]
async fn the_next_good_poll_brings_dropped_series_back() {
    let start = Instant::now();
    let steps = vec![
        Step::Good,
        Step::Fail,
        Step::Fail,
        Step::Fail,
        Step::Fail,
        Step::Good,
        Step::Fail,
    ];
    let (plan, _) = plan("local", steps);
    let shared = shared_for(&[&plan]);
    let (stop, handle) = spawn_loop(0, plan, &shared);

    // Good at 0 s, failed at 30, 60, 90 and 120 s: at 120 s the report is 120 s old, dropped.
    after_poll(start, 4).await;
    assert!(cluster(&shared, 0).report.is_none());
    assert_eq!(
        kafka_series(&get(&shared.exposition, "/metrics").await.1),
        0
    );

    // Good again at 150 s: back, up.
    after_poll(start, 5).await;
    let state = cluster(&shared, 0);
    assert!(state.report.is_some());
    assert!(state.up);
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert!(text.contains(LAG_LINE), "{text}");
    assert!(text.contains("lagwatch_kafka_up{cluster=\"local\"} 1"));

    // Failed at 180 s: the new report is 30 s old, so it is served again, not the old age.
    after_poll(start, 6).await;
    let state = cluster(&shared, 0);
    assert!(state.report.is_some());
    assert!(!state.up);

    let _ = stop.send(true);
    handle.await.expect("poll loop");
}

#[tokio::test(start_paused = true)]
async fn ready_only_after_every_cluster_attempted_its_first_poll() {
    let (b_started_tx, mut b_started) = mpsc::unbounded_channel();
    let (b_release, b_release_rx) = blocking_channel::channel();
    let (a, _) = plan("a", vec![Step::Good]);
    let (b, _) = plan(
        "b",
        vec![Step::Block {
            started: b_started_tx,
            release: b_release_rx,
        }],
    );
    // Cluster `c`'s client cannot be created: that is its first attempt.
    let c = PollPlan::<Start> {
        cluster: "c".to_string(),
        poll_interval: INTERVAL,
        start: Box::new(|| Err("no bootstrap server resolves".to_string())),
    };
    let shared = shared_for(&[&a, &b, &c]);
    assert_eq!(
        get(&shared.exposition, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let (stop_a, loop_a) = spawn_loop(0, a, &shared);
    let (stop_b, loop_b) = spawn_loop(1, b, &shared);
    let (_stop_c, loop_c) = spawn_loop(2, c, &shared);
    loop_c.await.expect("loop c");
    b_started.recv().await.expect("b polls");
    until("a's first poll is served", || cluster(&shared, 0).up).await;
    // Stopped after its first poll, `a`'s loop has certainly counted it when it returns.
    let _ = stop_a.send(true);
    loop_a.await.expect("loop a");

    // `a` polled, `c` gave up, `b` is still in its first poll.
    assert_eq!(
        get(&shared.exposition, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(!shared.exposition.ready());

    b_release.send(()).expect("b is still polling");
    until("b's first poll is counted", || shared.exposition.ready()).await;
    let (status, body) = get(&shared.exposition, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ready\n");

    // Later failed polls do not make it unready: a Kafka outage is told by metrics.
    tokio::time::sleep(INTERVAL * 5).await;
    assert!(!cluster(&shared, 1).up);
    assert_eq!(get(&shared.exposition, "/readyz").await.0, StatusCode::OK);

    let _ = stop_b.send(true);
    loop_b.await.expect("loop b");
}

/// Runs `serve` with `plans` on a port-0 listener; the sender completes its shutdown future.
async fn serve_for_test(
    plans: Vec<PollPlan<Start>>,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), AppError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = shutdown_rx.await;
    };
    let server = tokio::spawn(serve(
        render_settings_for_tests(),
        plans,
        listener,
        shutdown,
    ));
    (shutdown_tx, server)
}

#[tokio::test(start_paused = true)]
async fn shutdown_between_polls_stops_the_loops_at_once() {
    let start = Instant::now();
    let (a, polls_a) = plan("a", Vec::new());
    let (b, polls_b) = plan("b", Vec::new());
    let (shutdown, server) = serve_for_test(vec![a, b]).await;

    // Polls at 0, 30 and 60 s; both loops now wait for the tick at 90 s.
    after_poll(start, 2).await;
    let asked = Instant::now();
    shutdown.send(()).expect("serve is running");
    let result = server.await.expect("serve task");
    assert!(result.is_ok(), "{result:?}");
    // Nothing waited for a tick or a timeout: not a moment passed on the paused clock.
    assert_eq!(Instant::now(), asked);
    assert_eq!(polls_a.load(Ordering::SeqCst), 3);
    assert_eq!(polls_b.load(Ordering::SeqCst), 3);

    // No loop is left polling.
    tokio::time::sleep(INTERVAL * 4).await;
    assert_eq!(polls_a.load(Ordering::SeqCst), 3);
    assert_eq!(polls_b.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_a_poll_in_progress() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (release, release_rx) = blocking_channel::channel();
    let (stuck, _) = plan(
        "stuck",
        vec![Step::Block {
            started: started_tx,
            release: release_rx,
        }],
    );
    let (healthy, _) = plan("healthy", Vec::new());
    let (shutdown, server) = serve_for_test(vec![stuck, healthy]).await;

    started.recv().await.expect("the poll starts");
    shutdown.send(()).expect("serve is running");
    let result = server.await.expect("serve task");
    assert!(result.is_ok(), "{result:?}");
    // The poll still holds its thread (its receiver is alive): serve returned without it.
    release
        .send(())
        .expect("serve returned only after the stuck poll ended");
}
