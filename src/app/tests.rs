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
                broker_lag: None,
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
    /// A bug: the poll panics, and its poller is lost with it.
    Panic,
}

/// Plays its steps in order, then fails every poll (a broker that went away). The script is
/// shared by every poller its plan creates, so one created after a panic goes on with it.
struct Scripted {
    steps: Arc<Mutex<VecDeque<Step>>>,
    polls: Arc<AtomicUsize>,
}

impl Poller for Scripted {
    fn poll(&mut self) -> PollResult {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let step = self.steps.lock().expect("steps").pop_front();
        match step.unwrap_or(Step::Fail) {
            Step::Good => good_poll(),
            Step::Fail => failed_poll(),
            Step::Panic => panic!("scripted bug"),
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

type Start = Box<dyn Fn() -> Result<Scripted, String> + Send + Sync>;

/// A plan for cluster `name` whose poller plays `steps`; the counter tells how many polls ran.
fn plan(name: &str, steps: Vec<Step>) -> (PollPlan<Start>, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = polls.clone();
    let steps = Arc::new(Mutex::new(VecDeque::from(steps)));
    let start: Start = Box::new(move || {
        Ok(Scripted {
            steps: steps.clone(),
            polls: counted.clone(),
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
    let intervals = plans.iter().map(|p| p.poll_interval).collect();
    Arc::new(Shared::new(
        clusters,
        intervals,
        render_settings_for_tests(),
    ))
}

/// Starts the poll loop of `plan` as cluster `index` of `shared`, and the expiry of stale data
/// as `serve` does, with their own stop switch.
fn spawn_loop(
    index: usize,
    plan: PollPlan<Start>,
    shared: &Arc<Shared>,
) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let poll = poll_loop(index as LoopId, plan, shared.clone(), stop_rx.clone(), true);
    let expire = expire_stale(shared.clone(), stop_rx);
    let handle = tokio::spawn(async move {
        tokio::join!(poll, expire);
    });
    (stop_tx, handle)
}

fn cluster(shared: &Shared, index: usize) -> ClusterState {
    shared.lock().states[index].clone()
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

    // Polls at 60 and 90 s fail: the report of 30 s is 30, then 60 s old, so the same series
    // are still served, now with up 0.
    for poll in 2..4 {
        after_poll(start, poll).await;
        let state = cluster(&shared, 0);
        assert!(state.report.is_some(), "poll {poll}");
        assert!(!state.up, "poll {poll}");
        let (_, text) = get(&shared.exposition, "/metrics").await;
        assert!(text.contains(LAG_LINE), "poll {poll}:\n{text}");
        assert_eq!(kafka_series(&text), served, "poll {poll}");
        assert!(text.contains("lagwatch_kafka_up{cluster=\"local\"} 0"));
    }
    // At 120 s, with the poll of 120 s failed too, it is exactly 90 s old: still served.
    tokio::time::sleep_until(start + INTERVAL * 4).await;
    until("the poll at 120 s", || polls.load(Ordering::SeqCst) == 5).await;
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert!(text.contains(LAG_LINE), "{text}");
    // Just after, it is older than three intervals: dropped at once, not at the next poll.
    tokio::time::sleep_until(start + INTERVAL * 4 + Duration::from_millis(2)).await;
    assert_eq!(polls.load(Ordering::SeqCst), 5);
    assert!(cluster(&shared, 0).report.is_none());
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert_eq!(kafka_series(&text), 0, "{text}");

    // The poll at 150 s fails as well; the exporter's own families stay.
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
    let (stop_c, loop_c) = spawn_loop(2, c, &shared);
    b_started.recv().await.expect("b polls");
    until("c's failed client is counted", || {
        cluster(&shared, 2).errors.get(&Stage::Client) == Some(&1)
    })
    .await;
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
    // `c` is still retrying: its loop ends only when told to.
    assert!(!loop_c.is_finished());
    let _ = stop_c.send(true);
    loop_c.await.expect("loop c");
}

/// Runs `serve` with `plans` on a port-0 listener; the sender completes its shutdown future.
async fn serve_for_test(
    plans: Vec<PollPlan<Start>>,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), AppError>>) {
    let names: Vec<&str> = plans.iter().map(|p| p.cluster.as_str()).collect();
    let config = config_of(
        &names
            .iter()
            .map(|n| (*n, "127.0.0.1:9092"))
            .collect::<Vec<_>>(),
    );
    let plans = Mutex::new(
        plans
            .into_iter()
            .map(|p| (p.cluster.clone(), p))
            .collect::<BTreeMap<_, _>>(),
    );
    let make_plan = move |_: &Arc<Config>, c: &ClusterConfig| {
        plans
            .lock()
            .expect("plans")
            .remove(&c.name)
            .expect("one plan per cluster")
    };
    let (_, reloads) = mpsc::channel(1);
    let (shutdown, serving, _) = serve_with(
        config,
        make_plan,
        || Err("no reload here".to_string()),
        reloads,
    )
    .await;
    (shutdown, serving)
}

/// A configuration of `clusters` (name, bootstrap servers), polled every [`INTERVAL`].
fn config_of(clusters: &[(&str, &str)]) -> Config {
    let clusters: String = clusters
        .iter()
        .map(|(name, servers)| format!("  - {{name: {name}, bootstrap_servers: \"{servers}\"}}\n"))
        .collect();
    Config::from_yaml(&format!("poll_interval: 30s\nclusters:\n{clusters}")).expect("config")
}

/// Runs `serve` on a port-0 listener; the sender completes its shutdown future.
async fn serve_with<M, L>(
    config: Config,
    make_plan: M,
    load: L,
    reloads: mpsc::Receiver<http::ReloadRequest>,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), AppError>>, u16)
where
    M: Fn(&Arc<Config>, &ClusterConfig) -> PollPlan<Start> + Send + 'static,
    L: Fn() -> Result<Config, String> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = shutdown_rx.await;
    };
    let server = Server {
        listener,
        security: None,
        reload_endpoint: None,
    };
    let serving = tokio::spawn(serve(config, make_plan, load, server, reloads, shutdown));
    (shutdown_tx, serving, port)
}

/// `GET /metrics` over the socket `serve` listens on. On a blocking thread, which also holds
/// the paused clock still while the request is in flight.
async fn scrape(port: u16) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        text
    })
    .await
    .expect("scrape")
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

#[test]
fn retries_back_off_doubling_to_eight_intervals() {
    // (consecutive failures, poll intervals to wait)
    let cases = [
        (1, 1),
        (2, 2),
        (3, 4),
        (4, 8),
        (5, 8),
        (40, 8),
        (u32::MAX, 8),
    ];
    for (failures, want) in cases {
        assert_eq!(backoff_intervals(failures), want, "{failures}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_poll_that_panics_is_counted_and_the_client_created_afresh() {
    let start = Instant::now();
    let created = Arc::new(AtomicUsize::new(0));
    let (mut plan, polls) = plan("local", vec![Step::Good, Step::Panic, Step::Good]);
    let inner = plan.start;
    let counted = created.clone();
    plan.start = Box::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        inner()
    });
    let shared = shared_for(&[&plan]);
    let (stop, handle) = spawn_loop(0, plan, &shared);

    // The poll at 30 s panics: counted, down, the report of 0 s still served (30 s old).
    after_poll(start, 1).await;
    let state = cluster(&shared, 0);
    assert_eq!(state.errors.get(&Stage::Panic), Some(&1));
    assert!(!state.up);
    assert!(state.report.is_some());
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert!(
        text.contains("lagwatch_poll_errors_total{cluster=\"local\",stage=\"panic\"} 1"),
        "{text}"
    );
    assert!(text.contains(LAG_LINE), "{text}");

    // One interval later a new client polls, and succeeds.
    after_poll(start, 2).await;
    assert_eq!(created.load(Ordering::SeqCst), 2);
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    assert!(cluster(&shared, 0).up);
    assert!(!handle.is_finished());

    let _ = stop.send(true);
    handle.await.expect("poll loop");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_cannot_be_created_is_retried_with_backoff_until_it_can() {
    let start = Instant::now();
    let attempts = Arc::new(AtomicUsize::new(0));
    let (mut plan, polls) = plan("local", vec![Step::Good]);
    let inner = plan.start;
    let counted = attempts.clone();
    // The first three attempts fail (a DNS name that does not resolve yet, say).
    plan.start = Box::new(move || {
        if counted.fetch_add(1, Ordering::SeqCst) < 3 {
            Err("no bootstrap server resolves".to_string())
        } else {
            inner()
        }
    });
    let shared = shared_for(&[&plan]);
    let (stop, handle) = spawn_loop(0, plan, &shared);

    // Attempts at 0 s, then 1 interval later (30 s), then 2 (90 s), then 4 (210 s).
    // (seconds from start, attempts made by then)
    let expected = [(15, 1), (45, 2), (75, 2), (105, 3), (195, 3), (225, 4)];
    for (at, want) in expected {
        tokio::time::sleep_until(start + Duration::from_secs(at)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), want, "at {at} s");
        if at == 15 {
            // The failed attempt counts as the first poll.
            assert!(shared.exposition.ready());
        }
    }
    let state = cluster(&shared, 0);
    assert_eq!(state.errors.get(&Stage::Client), Some(&3));
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert!(state.up);
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert!(
        text.contains("lagwatch_poll_errors_total{cluster=\"local\",stage=\"client\"} 3"),
        "{text}"
    );
    assert!(text.contains(LAG_LINE), "{text}");

    let _ = stop.send(true);
    handle.await.expect("poll loop");
}

#[tokio::test(start_paused = true)]
async fn a_stuck_poll_stops_serving_its_old_data_after_three_intervals() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (release, release_rx) = blocking_channel::channel();
    let steps = vec![
        Step::Good,
        Step::Block {
            started: started_tx,
            release: release_rx,
        },
        // The tick missed while stuck comes at once after it.
        Step::Good,
        Step::Good,
    ];
    let (plan, polls) = plan("local", steps);
    let shared = shared_for(&[&plan]);
    let (stop, handle) = spawn_loop(0, plan, &shared);
    let first = Instant::now();

    // The poll at 30 s hangs. A blocking task in flight keeps the paused clock from advancing
    // by itself, so the test moves it: to 90 s the report of 0 s is served, up as polled.
    started.recv().await.expect("the second poll starts");
    tokio::time::advance(first + INTERVAL * 3 - Instant::now()).await;
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert!(text.contains(LAG_LINE), "{text}");
    assert!(get(&shared.exposition, "/")
        .await
        .1
        .contains("<td class=\"up\">up</td>"));

    // Just past 90 s it is dropped though the loop is still waiting for its poll, and the
    // cluster is down: stale on `/`, up 0 on `/metrics`.
    tokio::time::advance(Duration::from_millis(2)).await;
    until("the stale data is dropped", || {
        cluster(&shared, 0).report.is_none()
    })
    .await;
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert_eq!(kafka_series(&text), 0, "{text}");
    assert!(
        text.contains("lagwatch_kafka_up{cluster=\"local\"} 0"),
        "{text}"
    );
    let page = get(&shared.exposition, "/").await.1;
    assert!(
        page.contains("<td class=\"stale\">stale: no good poll for 3 intervals</td>"),
        "{page}"
    );
    assert_eq!(polls.load(Ordering::SeqCst), 2);

    // The poll comes back with data: served again.
    release.send(()).expect("the poll is still stuck");
    until("the late poll is served", || cluster(&shared, 0).up).await;
    let (_, text) = get(&shared.exposition, "/metrics").await;
    assert!(text.contains(LAG_LINE), "{text}");

    let _ = stop.send(true);
    handle.await.expect("poll loop");
}

#[test]
fn a_reload_keeps_only_clusters_whose_settings_are_unchanged() {
    let base = "poll_interval: 30s\nclusters:\n  - {name: a, bootstrap_servers: \"x:1\"}\n  - {name: b, bootstrap_servers: \"x:2\"}\n";
    let old = Config::from_yaml(base).expect("old");
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // (new file, kept, stopped, started, keys needing a restart)
    let cases = [
        // 1. The same file: everything goes on.
        (base.to_string(), names(&["a", "b"]), names(&[]), names(&[]), vec![]),
        // 2. b's servers changed: b restarts, a goes on; c is added.
        (
            "poll_interval: 30s\nclusters:\n  - {name: a, bootstrap_servers: \"x:1\"}\n  - {name: b, bootstrap_servers: \"y:2\"}\n  - {name: c, bootstrap_servers: \"x:3\"}\n".to_string(),
            names(&["a"]),
            names(&["b"]),
            names(&["b", "c"]),
            vec![],
        ),
        // 3. a removed; a render setting (granularity) changes nothing for b's loop.
        (
            "granularity: partition\npoll_interval: 30s\nclusters:\n  - {name: b, bootstrap_servers: \"x:2\"}\n".to_string(),
            names(&["b"]),
            names(&["a"]),
            names(&[]),
            vec![],
        ),
        // 4. A status setting every poller holds: every cluster restarts.
        (
            format!("status: {{window: 5}}\n{base}"),
            names(&[]),
            names(&["a", "b"]),
            names(&["a", "b"]),
            vec![],
        ),
        // 5. listen, web_config_file and the HTTP limits change only at the next start.
        (
            format!("listen: \"127.0.0.1:1\"\nweb_config_file: web.yml\nweb: {{max_connections: 8}}\n{base}"),
            names(&["a", "b"]),
            names(&[]),
            names(&[]),
            vec!["listen", "web_config_file", "web"],
        ),
    ];
    for (i, (text, keep, stop, start, need_restart)) in cases.into_iter().enumerate() {
        let new = Config::from_yaml(&text).expect("new");
        assert_eq!(
            Changes::between(&old, &new),
            Changes {
                keep,
                stop,
                start,
                need_restart
            },
            "case {}",
            i + 1
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_applies_a_good_file_and_keeps_the_running_one_on_a_bad_file() {
    let start = Instant::now();
    // Every poller created is counted by cluster, and polls well.
    let created: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let counted = created.clone();
    let make_plan = move |_: &Arc<Config>, c: &ClusterConfig| {
        let counted = counted.clone();
        let name = c.name.clone();
        let (inner, _) = plan(&c.name, (0..100).map(|_| Step::Good).collect());
        let start: Start = Box::new(move || {
            *counted
                .lock()
                .expect("created")
                .entry(name.clone())
                .or_insert(0) += 1;
            (inner.start)()
        });
        PollPlan { start, ..inner }
    };
    let next: Arc<Mutex<Result<Config, String>>> =
        Arc::new(Mutex::new(Err("nothing yet".to_string())));
    let loading = next.clone();
    let load = move || loading.lock().expect("next").clone();
    let (requests, reloads) = mpsc::channel(1);
    let config = config_of(&[("a", "x:1"), ("b", "x:2"), ("c", "x:3")]);
    let (shutdown, serving, port) = serve_with(config, make_plan, load, reloads).await;
    let reload = |requests: mpsc::Sender<http::ReloadRequest>| async move {
        let (reply, outcome) = oneshot::channel();
        requests.send(Some(reply)).await.expect("serving");
        outcome.await.expect("an answer")
    };
    let creations = || created.lock().expect("created").clone();
    let counts = |v: &[(&str, usize)]| {
        v.iter()
            .map(|(n, c)| (n.to_string(), *c))
            .collect::<BTreeMap<_, _>>()
    };
    let up_line = |c: &str| format!("lagwatch_kafka_up{{cluster=\"{c}\"}}");
    after_poll(start, 0).await;
    assert_eq!(creations(), counts(&[("a", 1), ("b", 1), ("c", 1)]));
    let text = scrape(port).await;
    assert!(
        text.contains("lagwatch_config_last_reload_successful 1"),
        "{text}"
    );

    // 1. A file that does not load: refused with its reason, the running clusters untouched,
    //    `lagwatch_config_last_reload_successful` 0.
    let why = "lagwatch.yaml: clusters[0].poll_interval: invalid duration \"3x\"".to_string();
    *next.lock().expect("next") = Err(why.clone());
    assert_eq!(reload(requests.clone()).await, Err(why));
    let text = scrape(port).await;
    assert!(
        text.contains("lagwatch_config_last_reload_successful 0"),
        "{text}"
    );
    for c in ["a", "b", "c"] {
        assert!(text.contains(&up_line(c)), "{c}: {text}");
    }
    assert_eq!(creations(), counts(&[("a", 1), ("b", 1), ("c", 1)]));

    // 2. A good file: a unchanged keeps its loop and poller (its history); b's servers changed,
    //    so b gets a new poller; c removed stops; d added starts.
    *next.lock().expect("next") = Ok(config_of(&[("a", "x:1"), ("b", "y:2"), ("d", "x:4")]));
    assert_eq!(reload(requests.clone()).await, Ok(()));
    // The reload came at 15 s: b and d poll at once and every 30 s from there; a at 30 s.
    tokio::time::sleep_until(start + Duration::from_secs(40)).await;
    assert_eq!(
        creations(),
        counts(&[("a", 1), ("b", 2), ("c", 1), ("d", 1)])
    );
    let text = scrape(port).await;
    assert!(
        text.contains("lagwatch_config_last_reload_successful 1"),
        "{text}"
    );
    for c in ["a", "b", "d"] {
        assert!(text.contains(&format!("{} 1", up_line(c))), "{c}: {text}");
    }
    assert!(!text.contains("cluster=\"c\""), "{text}");
    // a's entry went on (polls at 0 and 30 s); b's and d's started afresh at the reload.
    for (c, polls) in [("a", 2), ("b", 1), ("d", 1)] {
        let line = format!("lagwatch_poll_duration_seconds_count{{cluster=\"{c}\"}} {polls}");
        assert!(text.contains(&line), "{line}: {text}");
    }

    let _ = shutdown.send(());
    serving.await.expect("serve task").expect("serve");
}
