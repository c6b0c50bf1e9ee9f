//! Wiring: the checks before start ([`check`]), one poll loop per cluster, the HTTP server,
//! reload, graceful shutdown.
//!
//! Start order: bind HTTP (done by the caller, who passes the listener), serve an exporter-only
//! render, start one poll loop per cluster and a task that drops data as it turns stale. Each
//! loop runs its cluster's [`Poller`] on a blocking thread, updates its cluster's entry and
//! re-renders every cluster into the served buffer; it never ends before shutdown (failures are
//! retried with backoff). A slow or dead cluster delays only its own loop. A reload restarts
//! only the loops whose settings changed ([`Changes`]). Shutdown: stop the loops, then let the
//! server finish in-flight requests.

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
// Tokio's clock is the monotonic clock at runtime, and `tokio::time::pause` stops it in tests:
// staleness is then tested in exact poll intervals without waiting.
use tokio::time::Instant;

use crate::cluster_state::ClusterState;
use crate::config::{ClusterConfig, Compat, Config, ConfigError, WebConfig};
use crate::http::security::{self as web_security, WebSecurity};
use crate::http::{self, Exposition};
use crate::kafka::{self, Stage};
use crate::metrics::{self, ConfigReload, RenderSettings};
use crate::model::analytics::Event;
use crate::poll::{log_stage_errors, log_unauthorized, ClusterPoller, PollResult, Poller};
use crate::status_page;

/// The last good report is served until it is this many poll intervals old.
const STALE_AFTER_INTERVALS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    #[error("{0}")]
    WebConfig(String),
}

/// The served clusters, in configuration order, and how they are rendered.
struct Clusters {
    states: Vec<ClusterState>,
    /// Poll interval of each cluster: the age at which its data expires.
    intervals: Vec<Duration>,
    /// The poll loop that writes each entry. A loop a reload stopped finds its id gone, so a
    /// poll it finishes late never lands on its successor's entry.
    loops: Vec<LoopId>,
    settings: RenderSettings,
}

/// Identifies one run of a poll loop.
type LoopId = u64;

/// Everything the poll loops share.
struct Shared {
    clusters: Mutex<Clusters>,
    exposition: Arc<Exposition>,
    /// Told of every update, so [`expire_stale`] looks again at when the next data expires.
    updated: Notify,
}

impl Shared {
    /// One unpolled entry per cluster, written by loops `0..n`, served as an exporter-only render
    /// until the first poll.
    fn new(
        states: Vec<ClusterState>,
        intervals: Vec<Duration>,
        settings: RenderSettings,
    ) -> Shared {
        let exposition = Arc::new(Exposition::new(
            metrics::render(&states, &settings),
            states.len(),
            settings.server.clone(),
        ));
        exposition.publish_page(status_page::render(&states, SystemTime::now()));
        let loops = (0..states.len() as LoopId).collect();
        Shared {
            clusters: Mutex::new(Clusters {
                states,
                intervals,
                loops,
                settings,
            }),
            exposition,
            updated: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clusters> {
        match self.clusters.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Drops stale data, renders every cluster and publishes the result.
    fn publish(&self, clusters: &mut Clusters) {
        drop_stale(clusters, Instant::now());
        let rendered = metrics::render(&clusters.states, &clusters.settings);
        let page = status_page::render(&clusters.states, SystemTime::now());
        self.exposition.publish(rendered);
        self.exposition.publish_page(page);
    }

    /// Applies `update` to the entry of loop `id` (if a reload has not removed it) and publishes
    /// a fresh render of every cluster, with data older than [`STALE_AFTER_INTERVALS`] poll
    /// intervals dropped first.
    fn update(&self, id: LoopId, update: impl FnOnce(&mut ClusterState)) {
        {
            let mut clusters = self.lock();
            if let Some(index) = clusters.loops.iter().position(|l| *l == id) {
                update(&mut clusters.states[index]);
            }
            self.publish(&mut clusters);
        }
        self.updated.notify_one();
    }

    /// After a reload: the clusters become `entries` (loop, name, interval), in order. An entry
    /// whose loop is already running keeps its state; a new loop's starts empty. Renders with
    /// `settings` from now on.
    fn reconfigure(&self, entries: Vec<(LoopId, String, Duration)>, mut settings: RenderSettings) {
        {
            let mut guard = self.lock();
            // The HTTP server observes into the figures it was given at start.
            settings.server = guard.settings.server.clone();
            let clusters = &mut *guard;
            let mut old: Vec<(LoopId, ClusterState)> = clusters
                .loops
                .drain(..)
                .zip(clusters.states.drain(..))
                .collect();
            clusters.intervals.clear();
            for (id, name, interval) in entries {
                let state = match old.iter().position(|(l, _)| *l == id) {
                    Some(at) => old.swap_remove(at).1,
                    None => ClusterState::new(name),
                };
                clusters.loops.push(id);
                clusters.states.push(state);
                clusters.intervals.push(interval);
            }
            clusters.settings = settings;
            self.publish(clusters);
        }
        self.updated.notify_one();
    }

    /// Records a failed reload: `lagwatch_config_last_reload_successful` 0.
    fn reload_failed(&self) {
        let mut clusters = self.lock();
        if let Some(reload) = &mut clusters.settings.config_reload {
            reload.successful = false;
        }
        self.publish(&mut clusters);
    }

    /// When the next served data becomes stale, if any is served.
    fn next_expiry(&self) -> Option<Instant> {
        let clusters = self.lock();
        clusters
            .states
            .iter()
            .zip(&clusters.intervals)
            .filter_map(|(c, interval)| Some(c.report_at? + *interval * STALE_AFTER_INTERVALS))
            .min()
    }

    /// Drops stale data and, if any was dropped, publishes a fresh render.
    fn expire(&self) {
        let mut clusters = self.lock();
        if drop_stale(&mut clusters, Instant::now()) {
            self.publish(&mut clusters);
        }
    }
}

/// Drops the data of every cluster whose data is too old to serve ([`is_stale`]), whatever its
/// poll loop is doing; returns whether any was dropped. A cluster without fresh data is not up.
fn drop_stale(clusters: &mut Clusters, now: Instant) -> bool {
    let mut dropped = false;
    for (c, interval) in clusters.states.iter_mut().zip(&clusters.intervals) {
        let Some(at) = c.report_at else { continue };
        if is_stale(now.saturating_duration_since(at), *interval) {
            tracing::warn!(
                cluster = c.name.as_str(),
                age = ?now.saturating_duration_since(at),
                "last good data is stale: dropping its series"
            );
            c.report = None;
            c.report_at = None;
            c.up = false;
            dropped = true;
        }
    }
    dropped
}

/// Drops each cluster's data as soon as it is stale, however long its poll loop is busy or
/// waiting: a poll stuck in a Kafka call, or a loop backing off, never keeps old series served.
async fn expire_stale(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        // `is_stale` holds strictly after the limit: wake just after it.
        let next = shared.next_expiry().map(|at| at + Duration::from_millis(1));
        let expired = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = expired => shared.expire(),
            _ = shared.updated.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Everything start-up checks before it opens a port or polls, beyond parsing: the files the
/// configuration names and the web configuration ([`Config::check_files`]), and each cluster's
/// librdkafka properties and client ([`kafka::check_client`]). Errors name the field, like the
/// configuration's own. Blocking (creates and drops a Kafka client per cluster).
pub fn check(config: &Config) -> Result<Option<WebConfig>, ConfigError> {
    let web = config.check_files()?;
    if let Some(tls) = web.as_ref().and_then(|w| w.tls.as_ref().map(|t| (w, t))) {
        let (web, tls) = tls;
        web_security::server_config(tls).map_err(|e| ConfigError::Field {
            path: "web_config_file".to_string(),
            message: format!("{}: tls_server_config.{e}", web.path.display()),
        })?;
    }
    for (index, cluster) in config.clusters.iter().enumerate() {
        kafka::check_client(cluster).map_err(|e| ConfigError::Field {
            path: match e.property() {
                Some(key) => format!("clusters[{index}].kafka.{key}"),
                None => format!("clusters[{index}].kafka"),
            },
            message: e.to_string(),
        })?;
    }
    Ok(web)
}

/// Reloading the configuration while running.
#[derive(Clone, Debug)]
pub struct Reload {
    /// The configuration file, read again (and checked as at start) on SIGHUP.
    pub path: PathBuf,
    /// Also on `POST /-/reload`.
    pub endpoint: bool,
}

/// Runs the exporter until `shutdown` completes. `web` is the web configuration [`check`]
/// returned; with `reload`, SIGHUP (and `POST /-/reload` if enabled) reload the configuration.
pub async fn run(
    config: Config,
    web: Option<WebConfig>,
    listener: TcpListener,
    reload: Option<Reload>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let security = match web {
        Some(web) => Some(Arc::new(
            WebSecurity::new(web).map_err(AppError::WebConfig)?,
        )),
        None => None,
    };
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let mut endpoint = None;
    let path = match reload {
        Some(reload) => {
            tokio::spawn(reload_on_sighup(reload_tx.clone()));
            endpoint = reload.endpoint.then_some(reload_tx);
            Some(reload.path)
        }
        None => None,
    };
    let load = move || match &path {
        Some(path) => load_checked(path),
        None => Err("no configuration file to reload".to_string()),
    };
    let make_plan = |config: &Arc<Config>, cluster: &ClusterConfig| {
        let (config, cluster) = (config.clone(), cluster.clone());
        PollPlan {
            cluster: cluster.name.clone(),
            poll_interval: cluster.poll_interval,
            start: move || ClusterPoller::new(&config, &cluster),
        }
    };
    let server = Server {
        listener,
        security,
        reload_endpoint: endpoint,
    };
    serve(config, make_plan, load, server, reload_rx, shutdown).await
}

/// The configuration at `path`, loaded and checked as at start; errors name the file.
fn load_checked(path: &Path) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    check(&config).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
}

/// Asks for a reload on every SIGHUP, for as long as the process runs.
async fn reload_on_sighup(requests: mpsc::Sender<http::ReloadRequest>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP: reload by signal is off");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            if requests.send(None).await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    drop(requests);
}

/// What the metrics render takes from the configuration.
fn render_settings(config: &Config) -> RenderSettings {
    RenderSettings {
        granularity: config.granularity,
        max_series: config.max_series,
        version: env!("CARGO_PKG_VERSION"),
        revision: option_env!("LAGWATCH_REVISION")
            .unwrap_or("unknown")
            .to_string(),
        compat_kafka_lag_exporter: config.compat.contains(&Compat::KafkaLagExporter),
        shard_zero: config.shard.index == 0,
        config_reload: Some(ConfigReload {
            successful: true,
            last_success: SystemTime::now(),
        }),
        server: metrics::ServerMetrics::default(),
    }
}

/// One cluster's poll loop before it starts.
struct PollPlan<S> {
    /// The `cluster` label value.
    cluster: String,
    poll_interval: Duration,
    /// Creates the cluster's poller. Blocking: the real one opens a Kafka client. Called again
    /// after a failure to create one, and after a poll panicked.
    start: S,
}

/// The HTTP side of [`serve`].
struct Server {
    listener: TcpListener,
    security: Option<Arc<WebSecurity>>,
    /// Where `POST /-/reload` sends its requests; `None`: the endpoint is off.
    reload_endpoint: Option<mpsc::Sender<http::ReloadRequest>>,
}

/// What a reload changes, worked out from the configuration in force and the new one.
#[derive(Debug, PartialEq, Eq)]
struct Changes {
    /// Clusters whose poll loops go on with their history: same settings, same poll settings.
    keep: Vec<String>,
    /// Clusters to stop: removed, or changed (they are then also in `start`).
    stop: Vec<String>,
    /// Clusters to start: added, or changed.
    start: Vec<String>,
    /// Keys that changed but take effect only at the next start.
    need_restart: Vec<&'static str>,
}

impl Changes {
    fn between(old: &Config, new: &Config) -> Changes {
        // Settings every poller holds: a change restarts every cluster.
        let pollers_changed = old.offset_fetch_concurrency != new.offset_fetch_concurrency
            || old.config_refresh != new.config_refresh
            || old.time_lag != new.time_lag
            || old.status != new.status
            || old.shard != new.shard;
        let kept = |c: &ClusterConfig| !pollers_changed && old.clusters.iter().any(|o| o == c);
        let keep: Vec<String> = new
            .clusters
            .iter()
            .filter(|c| kept(c))
            .map(|c| c.name.clone())
            .collect();
        let stop = old
            .clusters
            .iter()
            .filter(|o| !keep.contains(&o.name))
            .map(|o| o.name.clone())
            .collect();
        let start = new
            .clusters
            .iter()
            .filter(|c| !keep.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let mut need_restart = Vec::new();
        if old.listen != new.listen {
            need_restart.push("listen");
        }
        if old.web_config_file != new.web_config_file {
            need_restart.push("web_config_file");
        }
        if old.web != new.web {
            need_restart.push("web");
        }
        Changes {
            keep,
            stop,
            start,
            need_restart,
        }
    }
}

/// One running poll loop.
struct RunningLoop {
    id: LoopId,
    cluster: String,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

/// Serves HTTP and runs one poll loop per cluster of `config`, in config order, until
/// `shutdown` completes; then stops the loops and lets the server finish the requests in
/// flight. A request on `reloads` loads the configuration again with `load` (blocking) and
/// applies it: [`Changes`].
async fn serve<M, L, S, P, E>(
    config: Config,
    make_plan: M,
    load: L,
    server: Server,
    mut reloads: mpsc::Receiver<http::ReloadRequest>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError>
where
    M: Fn(&Arc<Config>, &ClusterConfig) -> PollPlan<S>,
    L: Fn() -> Result<Config, String> + Send + Sync + 'static,
    S: Fn() -> Result<P, E> + Send + Sync + 'static,
    P: Poller,
    E: Display + Send + 'static,
{
    let mut current = Arc::new(config);
    let plans: Vec<PollPlan<S>> = current
        .clusters
        .iter()
        .map(|c| make_plan(&current, c))
        .collect();
    let states = plans
        .iter()
        .map(|plan| ClusterState::new(plan.cluster.clone()))
        .collect();
    let intervals = plans.iter().map(|plan| plan.poll_interval).collect();
    let shared = Arc::new(Shared::new(states, intervals, render_settings(&current)));
    let exposition = shared.exposition.clone();

    let (stop_tx, stop_rx) = watch::channel(false);
    let expiry = tokio::spawn(expire_stale(shared.clone(), stop_rx));
    let mut loops = Vec::new();
    let mut next_id: LoopId = 0;
    let mut start = |plan: PollPlan<S>, readiness: bool, loops: &mut Vec<RunningLoop>| {
        let (stop, stop_rx) = watch::channel(false);
        let cluster = plan.cluster.clone();
        let id = next_id;
        next_id += 1;
        let handle = tokio::spawn(poll_loop(id, plan, shared.clone(), stop_rx, readiness));
        loops.push(RunningLoop {
            id,
            cluster,
            stop,
            handle,
        });
    };
    for plan in plans {
        start(plan, true, &mut loops);
    }

    let (server_stop_tx, mut server_stop_rx) = watch::channel(false);
    let server = http::serve(
        server.listener,
        exposition,
        server.security,
        server.reload_endpoint,
        current.web,
        async move {
            let _ = server_stop_rx.wait_for(|stop| *stop).await;
        },
    );
    let server = tokio::spawn(server);
    let load = Arc::new(load);
    tokio::pin!(shutdown);
    loop {
        let reply = tokio::select! {
            _ = &mut shutdown => break,
            Some(reply) = reloads.recv() => reply,
        };
        let loading = load.clone();
        let loaded = tokio::task::spawn_blocking(move || loading())
            .await
            .map_err(|e| e.to_string())
            .and_then(|loaded| loaded);
        let new = match loaded {
            Ok(new) => Arc::new(new),
            Err(error) => {
                tracing::error!(
                    error = error.as_str(),
                    "configuration not reloaded: keeping the one in force"
                );
                shared.reload_failed();
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error));
                }
                continue;
            }
        };
        let changes = Changes::between(&current, &new);
        for key in &changes.need_restart {
            tracing::warn!(
                key,
                "changed in the configuration file: takes effect at the next start"
            );
        }
        let (stopping, running): (Vec<_>, Vec<_>) = std::mem::take(&mut loops)
            .into_iter()
            .partition(|l| changes.stop.contains(&l.cluster));
        loops = running;
        for l in stopping {
            let _ = l.stop.send(true);
            let _ = l.handle.await;
        }
        for cluster in new
            .clusters
            .iter()
            .filter(|c| changes.start.contains(&c.name))
        {
            start(make_plan(&new, cluster), false, &mut loops);
        }
        // Entries in the new file's order.
        let entries = new
            .clusters
            .iter()
            .filter_map(|c| {
                let l = loops.iter().find(|l| l.cluster == c.name)?;
                Some((l.id, c.name.clone(), c.poll_interval))
            })
            .collect();
        shared.reconfigure(entries, render_settings(&new));
        tracing::info!(
            kept = changes.keep.join(", "),
            started = changes.start.join(", "),
            stopped = changes.stop.join(", "),
            "configuration reloaded"
        );
        current = new;
        if let Some(reply) = reply {
            let _ = reply.send(Ok(()));
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.stop.send(true);
        let _ = l.handle.await;
    }
    let _ = expiry.await;
    let _ = server_stop_tx.send(true);
    match server.await {
        Ok(result) => result.map_err(AppError::Http),
        Err(join) => Err(AppError::Http(std::io::Error::other(join))),
    }
}

/// Whether the last good data, `age` old, is too old to serve: PRODUCT.md §3 serves it until it
/// is [`STALE_AFTER_INTERVALS`] poll intervals old.
fn is_stale(age: Duration, poll_interval: Duration) -> bool {
    age > poll_interval * STALE_AFTER_INTERVALS
}

fn log_event(cluster: &str, event: &Event) {
    match event {
        Event::MessagesEvicted {
            group,
            topic,
            partition,
            committed,
            low_watermark,
            evicted,
        } => tracing::warn!(
            cluster,
            group = group.as_str(),
            topic = topic.as_ref(),
            partition,
            committed,
            low_watermark,
            evicted,
            "retention deleted messages the group had not read"
        ),
        Event::Rewind {
            group,
            topic,
            partition,
            from,
            to,
        } => tracing::warn!(
            cluster,
            group = group.as_str(),
            topic = topic.as_ref(),
            partition,
            from,
            to,
            rewound = from - to,
            "committed offset moved backwards"
        ),
    }
}

/// Consecutive failures (client creation or panics) after which the wait between attempts stops
/// doubling: at most this many poll intervals.
const MAX_BACKOFF_INTERVALS: u32 = 8;

/// Poll intervals to wait after `failures` consecutive failures: 1, 2, 4, then 8 at most.
fn backoff_intervals(failures: u32) -> u32 {
    1u32.checked_shl(failures.saturating_sub(1))
        .unwrap_or(MAX_BACKOFF_INTERVALS)
        .min(MAX_BACKOFF_INTERVALS)
}

/// The text of a panic's payload, when it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Creates a poller on a blocking thread; a panic is a failure like any other.
async fn create_poller<S, P, E>(start: &Arc<S>) -> Result<P, String>
where
    S: Fn() -> Result<P, E> + Send + Sync + 'static,
    P: Poller,
    E: Display + Send + 'static,
{
    let start = start.clone();
    match tokio::task::spawn_blocking(move || start()).await {
        Ok(created) => created.map_err(|e| e.to_string()),
        Err(join) if join.is_panic() => Err(format!(
            "panicked: {}",
            panic_message(join.into_panic().as_ref())
        )),
        Err(join) => Err(join.to_string()),
    }
}

/// Polls one cluster every `poll_interval` until told to stop, one poll at a time: a slow poll
/// delays only this cluster's next tick. Never ends before shutdown: a client that cannot be
/// created and a poll that panics are logged with the cluster, counted in
/// `lagwatch_poll_errors_total{stage="client"|"panic"}` and retried after 1, 2, 4, then at most
/// [`MAX_BACKOFF_INTERVALS`] poll intervals.
async fn poll_loop<S, P, E>(
    id: LoopId,
    plan: PollPlan<S>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    // Whether `/readyz` waits for this loop's first attempt: not for a cluster a reload added.
    readiness: bool,
) where
    S: Fn() -> Result<P, E> + Send + Sync + 'static,
    P: Poller,
    E: Display + Send + 'static,
{
    let PollPlan {
        cluster,
        poll_interval: interval,
        start,
    } = plan;
    let start = Arc::new(start);
    let mut poller: Option<P> = None;
    let mut failures: u32 = 0;
    let mut retry_at: Option<Instant> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = readiness;
    // Counts a failure of `stage`, and the first attempt for readiness.
    let failed = |stage: Stage, first: &mut bool, failures: &mut u32| {
        shared.update(id, |c| {
            c.up = false;
            *c.errors.entry(stage).or_insert(0) += 1;
        });
        if std::mem::take(first) {
            shared.exposition.first_poll_attempted();
        }
        *failures = failures.saturating_add(1);
        Instant::now() + interval * backoff_intervals(*failures)
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if retry_at.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        let mut current = match poller.take() {
            Some(p) => p,
            None => {
                let created = tokio::select! {
                    created = create_poller(&start) => created,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match created {
                    Ok(p) => p,
                    Err(error) => {
                        let at = failed(Stage::Client, &mut first, &mut failures);
                        tracing::error!(
                            cluster = cluster.as_str(),
                            error,
                            retry_in = ?at.saturating_duration_since(Instant::now()),
                            "cannot create the Kafka client"
                        );
                        retry_at = Some(at);
                        continue;
                    }
                }
            }
        };
        let started = Instant::now();
        let poll = tokio::task::spawn_blocking(move || {
            let result = current.poll();
            (current, result)
        });
        let joined = tokio::select! {
            joined = poll => joined,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (returned, result) = match joined {
            Ok(r) => r,
            Err(join) => {
                // The poller went down with the poll: the next attempt creates a new one (and
                // starts the time-lag history afresh).
                let error = if join.is_panic() {
                    panic_message(join.into_panic().as_ref())
                } else {
                    join.to_string()
                };
                let at = failed(Stage::Panic, &mut first, &mut failures);
                tracing::error!(
                    cluster = cluster.as_str(),
                    error,
                    retry_in = ?at.saturating_duration_since(Instant::now()),
                    "poll panicked: creating the Kafka client afresh"
                );
                retry_at = Some(at);
                continue;
            }
        };
        failures = 0;
        retry_at = None;
        let PollResult {
            outcome,
            report,
            events,
            timestamp_reads_pending,
        } = result;
        let elapsed = started.elapsed();
        for event in &events {
            log_event(&cluster, event);
        }
        log_stage_errors(&cluster, &outcome.errors);
        log_unauthorized(&cluster, &outcome.unauthorized);
        let up = outcome.up();
        let count = |names: &[String]| u64::try_from(names.len()).unwrap_or(u64::MAX);
        let unauthorized = (
            count(&outcome.unauthorized.topics),
            count(&outcome.unauthorized.groups),
        );
        let report = report.map(|r| (Arc::new(r), Instant::now()));
        let requests = returned.requests();
        poller = Some(returned);
        let failed_stages: Vec<_> = outcome.errors.iter().map(|e| e.stage).collect();
        // Rendering every cluster is CPU work (tens of ms at 100k series): off the async workers.
        let rendering = shared.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            rendering.update(id, |c| {
                if let Some((report, at)) = report {
                    c.report = Some(report);
                    c.report_at = Some(at);
                }
                c.up = up;
                if up {
                    c.last_success = Some(SystemTime::now());
                }
                c.poll_duration.observe(elapsed.as_secs_f64());
                for stage in failed_stages {
                    *c.errors.entry(stage).or_insert(0) += 1;
                }
                c.requests = requests;
                c.timestamp_reads_pending = timestamp_reads_pending as u64;
                // A poll that stopped at metadata or offsets asked nothing about the rest.
                if up {
                    (c.unauthorized_topics, c.unauthorized_groups) = unauthorized;
                }
            });
            release_free_memory();
        })
        .await;
        if let Err(e) = rendered {
            tracing::error!(cluster = cluster.as_str(), error = %e, "render task failed");
        }
        if std::mem::take(&mut first) {
            shared.exposition.first_poll_attempted();
        }
        tracing::debug!(cluster = cluster.as_str(), up, elapsed = ?elapsed, "poll done");
    }
}

/// Hands the memory a poll and its render freed back to the system. glibc keeps freed memory in
/// the arena of the thread that allocated it (the poll's blocking thread, the async workers,
/// librdkafka's threads) for that thread to reuse: left alone the process holds the high-water
/// mark of every arena, about twice what is in use at 5,000 partitions (docs/architecture.md).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and shrinks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// How long shutdown waits for a poll stuck in a Kafka call before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests;
