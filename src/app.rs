//! Wiring: one poll loop per cluster, the HTTP server, graceful shutdown.
//!
//! Start order: bind HTTP (done by the caller, who passes the listener), serve an exporter-only
//! render, start one poll loop per cluster. Each loop runs its cluster's [`Poller`] on a blocking
//! thread, updates its cluster's entry and re-renders every cluster into the served buffer. A
//! slow or dead cluster delays only its own loop. Shutdown: stop the loops, then let the server
//! finish in-flight requests.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
// Tokio's clock is the monotonic clock at runtime, and `tokio::time::pause` stops it in tests:
// staleness is then tested in exact poll intervals without waiting.
use tokio::time::Instant;

use crate::cluster_state::ClusterState;
use crate::config::{Compat, Config, ConfigError, WebConfig};
use crate::http::security::{self as web_security, WebSecurity};
use crate::http::{self, Exposition};
use crate::kafka::{self, Stage};
use crate::metrics::{self, RenderSettings};
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

/// Everything the poll loops share.
struct Shared {
    clusters: Mutex<Vec<ClusterState>>,
    /// Poll interval of each cluster, indexed like `clusters`: the age at which its data expires.
    intervals: Vec<Duration>,
    settings: RenderSettings,
    exposition: Arc<Exposition>,
    /// Told of every update, so [`expire_stale`] looks again at when the next data expires.
    updated: Notify,
}

impl Shared {
    /// One unpolled entry per cluster, served as an exporter-only render until the first poll.
    fn new(
        clusters: Vec<ClusterState>,
        intervals: Vec<Duration>,
        settings: RenderSettings,
    ) -> Shared {
        let exposition = Arc::new(Exposition::new(
            metrics::render(&clusters, &settings),
            clusters.len(),
        ));
        exposition.publish_page(status_page::render(&clusters, SystemTime::now()));
        Shared {
            clusters: Mutex::new(clusters),
            intervals,
            settings,
            exposition,
            updated: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ClusterState>> {
        match self.clusters.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Applies `update` to cluster `index` and publishes a fresh render of every cluster, with
    /// data older than [`STALE_AFTER_INTERVALS`] poll intervals dropped first.
    fn update(&self, index: usize, update: impl FnOnce(&mut ClusterState)) {
        let (rendered, page) = {
            let mut clusters = self.lock();
            if let Some(c) = clusters.get_mut(index) {
                update(c);
            }
            self.drop_stale(&mut clusters, Instant::now());
            (
                metrics::render(&clusters, &self.settings),
                status_page::render(&clusters, SystemTime::now()),
            )
        };
        self.exposition.publish(rendered);
        self.exposition.publish_page(page);
        self.updated.notify_one();
    }

    /// Drops the data of every cluster whose data is too old to serve ([`is_stale`]), whatever
    /// its poll loop is doing; returns whether any was dropped. A cluster without fresh data is
    /// not up.
    fn drop_stale(&self, clusters: &mut [ClusterState], now: Instant) -> bool {
        let mut dropped = false;
        for (c, interval) in clusters.iter_mut().zip(&self.intervals) {
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

    /// When the next served data becomes stale, if any is served.
    fn next_expiry(&self) -> Option<Instant> {
        let clusters = self.lock();
        clusters
            .iter()
            .zip(&self.intervals)
            .filter_map(|(c, interval)| Some(c.report_at? + *interval * STALE_AFTER_INTERVALS))
            .min()
    }

    /// Drops stale data and, if any was dropped, publishes a fresh render.
    fn expire(&self) {
        let mut clusters = self.lock();
        if self.drop_stale(&mut clusters, Instant::now()) {
            let rendered = metrics::render(&clusters, &self.settings);
            let page = status_page::render(&clusters, SystemTime::now());
            drop(clusters);
            self.exposition.publish(rendered);
            self.exposition.publish_page(page);
        }
    }
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

/// Runs the exporter until `shutdown` completes.
/// `web` is the web configuration [`check`] returned.
pub async fn run(
    config: Config,
    web: Option<WebConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let security = match web {
        Some(web) => Some(Arc::new(
            WebSecurity::new(web).map_err(AppError::WebConfig)?,
        )),
        None => None,
    };
    let shared = Arc::new(config.clone());
    let plans = config
        .clusters
        .iter()
        .map(|cluster| {
            let (config, cluster) = (shared.clone(), cluster.clone());
            PollPlan {
                cluster: cluster.name.clone(),
                poll_interval: cluster.poll_interval,
                start: move || ClusterPoller::new(&config, &cluster),
            }
        })
        .collect();
    serve(
        render_settings(&config),
        plans,
        listener,
        security,
        shutdown,
    )
    .await
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

/// Serves HTTP on `listener` and runs one poll loop per plan, in config order, until `shutdown`
/// completes; then stops the loops and lets the server finish the requests in flight.
async fn serve<S, P, E>(
    settings: RenderSettings,
    plans: Vec<PollPlan<S>>,
    listener: TcpListener,
    security: Option<Arc<WebSecurity>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError>
where
    S: Fn() -> Result<P, E> + Send + Sync + 'static,
    P: Poller,
    E: Display + Send + 'static,
{
    let clusters = plans
        .iter()
        .map(|plan| ClusterState::new(plan.cluster.clone()))
        .collect();
    let intervals = plans.iter().map(|plan| plan.poll_interval).collect();
    let shared = Arc::new(Shared::new(clusters, intervals, settings));
    let exposition = shared.exposition.clone();

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = vec![tokio::spawn(expire_stale(shared.clone(), stop_rx.clone()))];
    for (index, plan) in plans.into_iter().enumerate() {
        loops.push(tokio::spawn(poll_loop(
            index,
            plan,
            shared.clone(),
            stop_rx.clone(),
        )));
    }

    let (server_stop_tx, mut server_stop_rx) = watch::channel(false);
    let server = http::serve(listener, exposition, security, async move {
        let _ = server_stop_rx.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(server);
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
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
    index: usize,
    plan: PollPlan<S>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
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
    let mut first = true;
    // Counts a failure of `stage`, and the first attempt for readiness.
    let failed = |stage: Stage, first: &mut bool, failures: &mut u32| {
        shared.update(index, |c| {
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
            rendering.update(index, |c| {
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
            })
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
