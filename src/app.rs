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
use tokio::sync::watch;
// Tokio's clock is the monotonic clock at runtime, and `tokio::time::pause` stops it in tests:
// staleness is then tested in exact poll intervals without waiting.
use tokio::time::Instant;

use crate::cluster_state::ClusterState;
use crate::config::{Compat, Config};
use crate::http::{self, Exposition};
use crate::metrics::{self, RenderSettings};
use crate::model::analytics::Event;
use crate::model::Report;
use crate::poll::{log_stage_errors, log_unauthorized, ClusterPoller, PollResult, Poller};
use crate::status_page;

/// The last good report is served until it is this many poll intervals old.
const STALE_AFTER_INTERVALS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    #[error(
        "web_config_file ({0}): TLS and basic auth for HTTP are not supported by this version"
    )]
    WebConfigUnsupported(String),
}

/// Everything the poll loops share.
struct Shared {
    clusters: Mutex<Vec<ClusterState>>,
    settings: RenderSettings,
    exposition: Arc<Exposition>,
}

impl Shared {
    /// One unpolled entry per cluster, served as an exporter-only render until the first poll.
    fn new(clusters: Vec<ClusterState>, settings: RenderSettings) -> Shared {
        let exposition = Arc::new(Exposition::new(
            metrics::render(&clusters, &settings),
            clusters.len(),
        ));
        exposition.publish_page(status_page::render(&clusters, SystemTime::now()));
        Shared {
            clusters: Mutex::new(clusters),
            settings,
            exposition,
        }
    }

    /// Applies `update` to cluster `index` and publishes a fresh render of every cluster.
    fn update(&self, index: usize, update: impl FnOnce(&mut ClusterState)) {
        let (rendered, page) = {
            let mut clusters = match self.clusters.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(c) = clusters.get_mut(index) {
                update(c);
            }
            (
                metrics::render(&clusters, &self.settings),
                status_page::render(&clusters, SystemTime::now()),
            )
        };
        self.exposition.publish(rendered);
        self.exposition.publish_page(page);
    }
}

/// Runs the exporter until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    if let Some(path) = &config.web_config_file {
        return Err(AppError::WebConfigUnsupported(path.display().to_string()));
    }
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
    serve(render_settings(&config), plans, listener, shutdown).await
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
    /// Creates the cluster's poller. Blocking: the real one opens a Kafka client.
    start: S,
}

/// Serves HTTP on `listener` and runs one poll loop per plan, in config order, until `shutdown`
/// completes; then stops the loops and lets the server finish the requests in flight.
async fn serve<S, P, E>(
    settings: RenderSettings,
    plans: Vec<PollPlan<S>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError>
where
    S: FnOnce() -> Result<P, E> + Send + 'static,
    P: Poller,
    E: Display + Send + 'static,
{
    let clusters = plans
        .iter()
        .map(|plan| ClusterState::new(plan.cluster.clone()))
        .collect();
    let shared = Arc::new(Shared::new(clusters, settings));
    let exposition = shared.exposition.clone();

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = Vec::new();
    for (index, plan) in plans.into_iter().enumerate() {
        loops.push(tokio::spawn(poll_loop(
            index,
            plan,
            shared.clone(),
            stop_rx.clone(),
        )));
    }

    let (server_stop_tx, mut server_stop_rx) = watch::channel(false);
    let server =
        axum::serve(listener, http::router(exposition)).with_graceful_shutdown(async move {
            let _ = server_stop_rx.wait_for(|stop| *stop).await;
        });
    let server = tokio::spawn(async move { server.await });
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

/// Polls one cluster every `poll_interval` until told to stop, one poll at a time: a slow poll
/// delays only this cluster's next tick.
async fn poll_loop<S, P, E>(
    index: usize,
    plan: PollPlan<S>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    S: FnOnce() -> Result<P, E> + Send + 'static,
    P: Poller,
    E: Display + Send + 'static,
{
    let PollPlan {
        cluster,
        poll_interval: interval,
        start,
    } = plan;
    let started = tokio::task::spawn_blocking(start)
        .await
        .map_err(|e| e.to_string())
        .and_then(|created| created.map_err(|e| e.to_string()));
    let mut poller = match started {
        Ok(poller) => poller,
        Err(error) => {
            tracing::error!(cluster = cluster.as_str(), error, "cannot start polling");
            shared.exposition.first_poll_attempted();
            return;
        }
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_good: Option<(Arc<Report>, Instant)> = None;
    let mut first = true;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let started = Instant::now();
        let poll = tokio::task::spawn_blocking(move || {
            let result = poller.poll();
            (poller, result)
        });
        let (returned, result) = tokio::select! {
            joined = poll => match joined {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(cluster = cluster.as_str(), error = %e, "poll task failed");
                    return;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        poller = returned;
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
        if let Some(report) = report {
            last_good = Some((Arc::new(report), Instant::now()));
        }
        if last_good
            .as_ref()
            .is_some_and(|(_, at)| is_stale(at.elapsed(), interval))
        {
            tracing::warn!(
                cluster = cluster.as_str(),
                "last good data is stale: dropping its series"
            );
            last_good = None;
        }
        let requests = poller.requests();
        let report = last_good.as_ref().map(|(r, _)| r.clone());
        let failed_stages: Vec<_> = outcome.errors.iter().map(|e| e.stage).collect();
        // Rendering every cluster is CPU work (tens of ms at 100k series): off the async workers.
        let rendering = shared.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            rendering.update(index, |c| {
                c.report = report;
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
        if first {
            shared.exposition.first_poll_attempted();
            first = false;
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
