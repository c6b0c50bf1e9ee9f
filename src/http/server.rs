//! The HTTP server's accept loop and connections, with the limits of `web:` ([`HttpLimits`]):
//!
//! - **Request timeout**: a connection must send a request's headers within `request_timeout`
//!   of opening (or of its previous response), and each response must be written within
//!   `request_timeout` of its request; otherwise the connection is closed. Slowloris clients
//!   (headers a byte at a time), silent ones and clients that stop reading are all closed.
//! - **Connection limit**: at most `max_connections` connections are served at once. A connection
//!   accepted at the limit closes the oldest connection that has no request in flight (idle
//!   keep-alive, or headers not complete yet), or waits until a request finishes: idle
//!   connections never keep a scrape out.
//! - **Counted**: connections closed by either limit, in
//!   `lagwatch_http_connections_closed_total{reason}`.
//! - **Scrape time**: the time from a `/metrics` request's headers to the last byte of its
//!   response written to the socket, observed into `lagwatch_scrape_duration_seconds`.
//!
//! hyper serves each connection (HTTP/1.1 with keep-alive) with axum's router as the service.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::histogram::Histogram;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::security::TlsListener;
use crate::config::HttpLimits;
use crate::metrics::ServerMetrics;

/// While waiting for a slot at the limit, how often to look again for an idle connection to
/// close (one may have finished its request since).
const EVICT_RETRY: Duration = Duration::from_millis(50);

/// The connections being served, at most `max_connections` of them.
pub struct Slots {
    permits: Arc<Semaphore>,
    /// Open connections by age (ids grow), for eviction.
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl Slots {
    pub fn new(max_connections: usize) -> Arc<Slots> {
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(max_connections)),
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A slot for a connection just accepted. At the limit, closes the oldest connection with no
    /// request in flight (one at a time), or waits until a request ends and its connection goes
    /// idle or closes.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return permit;
            }
            self.evict_oldest_idle();
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => {
                    if let Ok(permit) = permit {
                        return permit;
                    }
                }
                _ = tokio::time::sleep(EVICT_RETRY) => {}
            }
        }
    }

    /// Asks the oldest idle connection to close, unless one asked already has not closed yet.
    fn evict_oldest_idle(&self) {
        let open = lock(&self.open);
        if open.values().any(|c| c.state().evicted) {
            return;
        }
        for connection in open.values() {
            let mut state = connection.state();
            if state.in_flight.is_none() {
                state.evicted = true;
                drop(state);
                tracing::debug!("at max_connections: closing the oldest idle connection");
                connection.evict.notify_one();
                return;
            }
        }
    }

    /// Records a connection; it is forgotten when the returned guard drops.
    fn register(self: &Arc<Self>, request_timeout: Duration) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            state: Mutex::new(ConnectionState {
                deadline: Instant::now() + request_timeout,
                in_flight: None,
                evicted: false,
            }),
            evict: Notify::new(),
            request_timeout,
        });
        lock(&self.open).insert(id, connection.clone());
        Registered {
            slots: self.clone(),
            id,
            connection,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A connection's entry in [`Slots`], removed on drop.
struct Registered {
    slots: Arc<Slots>,
    id: u64,
    connection: Arc<Connection>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.slots.open).remove(&self.id);
    }
}

/// What the accept loop, the service and the socket know of one connection.
struct Connection {
    state: Mutex<ConnectionState>,
    /// Told to close if still idle ([`Slots::evict_oldest_idle`]).
    evict: Notify,
    request_timeout: Duration,
}

struct ConnectionState {
    /// When the connection is closed unless a request arrives (or, with one in flight, at all).
    deadline: Instant,
    /// The request being answered; `None`: idle, waiting for a request's headers.
    in_flight: Option<InFlight>,
    /// Asked to close by [`Slots::evict_oldest_idle`] and not closed yet.
    evicted: bool,
}

struct InFlight {
    started: Instant,
    /// A `/metrics` request: its time is observed.
    scrape: bool,
    /// hyper has taken the whole response body (or dropped it): once the socket is flushed,
    /// the response is written.
    body_taken: bool,
}

impl Connection {
    fn state(&self) -> MutexGuard<'_, ConnectionState> {
        lock(&self.state)
    }

    /// A request's headers arrived: its response must be written by `request_timeout` from now.
    fn request_started(&self, scrape: bool) {
        let now = Instant::now();
        let mut state = self.state();
        state.deadline = now + self.request_timeout;
        state.evicted = false;
        state.in_flight = Some(InFlight {
            started: now,
            scrape,
            body_taken: false,
        });
    }

    fn body_taken(&self) {
        if let Some(in_flight) = &mut self.state().in_flight {
            in_flight.body_taken = true;
        }
    }

    /// The socket took every byte hyper had buffered: if that ends a response, the connection
    /// is idle again and has `request_timeout` for its next request.
    fn flushed(&self, scrapes: &Histogram) {
        let mut state = self.state();
        if !state.in_flight.as_ref().is_some_and(|r| r.body_taken) {
            return;
        }
        let now = Instant::now();
        if let Some(request) = state.in_flight.take() {
            if request.scrape {
                scrapes.observe((now - request.started).as_secs_f64());
            }
        }
        state.deadline = now + self.request_timeout;
    }

    /// Whether to close on an eviction request: only when still idle.
    fn close_if_idle(&self) -> bool {
        let mut state = self.state();
        let idle = state.in_flight.is_none();
        state.evicted = idle;
        idle
    }
}

/// Where connections come from: plain TCP, or TLS with the handshake done.
pub enum Acceptor {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// Serves `app` on the connections of `acceptor` until `stop` completes, then lets every open
/// connection finish the request it is answering (within its request timeout) and returns.
pub async fn run(
    mut acceptor: Acceptor,
    slots: Arc<Slots>,
    app: Router,
    limits: HttpLimits,
    metrics: ServerMetrics,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let (closing_tx, closing) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let served = Served {
            slots: slots.clone(),
            app: app.clone(),
            limits,
            metrics: metrics.clone(),
            closing: closing.clone(),
        };
        match &mut acceptor {
            Acceptor::Plain(listener) => {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut stop => break,
                };
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let permit = tokio::select! {
                    permit = served.slots.acquire() => permit,
                    _ = &mut stop => break,
                };
                tokio::spawn(served.connection(stream, permit));
            }
            Acceptor::Tls(listener) => {
                let (stream, permit) = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut stop => break,
                };
                tokio::spawn(served.connection(stream, permit));
            }
        }
    }
    drop(acceptor);
    drop(closing);
    let _ = closing_tx.send(true);
    // Every connection holds a receiver: this returns when the last one has closed.
    closing_tx.closed().await;
    Ok(())
}

/// What every connection is served with.
struct Served {
    slots: Arc<Slots>,
    app: Router,
    limits: HttpLimits,
    metrics: ServerMetrics,
    /// Set at shutdown: finish the request in flight, then close.
    closing: watch::Receiver<bool>,
}

impl Served {
    async fn connection<I>(mut self, io: I, permit: OwnedSemaphorePermit)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let registered = self.slots.register(self.limits.request_timeout);
        let connection = registered.connection.clone();
        let io = Metered {
            io,
            connection: connection.clone(),
            scrapes: self.metrics.scrape_duration.clone(),
        };
        let router = TowerToHyperService::new(self.app.clone());
        let service_connection = connection.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let connection = service_connection.clone();
            connection.request_started(request.uri().path() == "/metrics");
            let response = router.call(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, connection })))
            }
        });
        // Boxed so that it can be dropped (the socket closed) before the slot is given back.
        let mut http = Box::pin(
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service),
        );
        let mut closing = false;
        loop {
            let deadline = connection.state().deadline;
            tokio::select! {
                result = http.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if connection.state().deadline <= Instant::now() {
                        tracing::debug!("closing a connection: request_timeout passed");
                        self.metrics.closed_by_timeout.inc();
                        break;
                    }
                }
                _ = connection.evict.notified() => {
                    if connection.close_if_idle() {
                        self.metrics.closed_at_limit.inc();
                        break;
                    }
                }
                _ = self.closing.wait_for(|c| *c), if !closing => {
                    // Shutdown: a request in flight is answered, then the connection closes;
                    // a connection without one (even with half its headers) closes now.
                    if connection.state().in_flight.is_none() {
                        break;
                    }
                    closing = true;
                    http.as_mut().graceful_shutdown();
                }
            }
        }
        drop(http);
        drop(registered);
        drop(permit);
    }
}

/// A response body that tells its connection when hyper has taken all of it.
struct Tracked {
    body: Body,
    connection: Arc<Connection>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.connection.body_taken();
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling its connection when a flush wrote everything hyper had buffered.
struct Metered<I> {
    io: I,
    connection: Arc<Connection>,
    scrapes: Histogram,
}

impl<I: AsyncRead + Unpin> AsyncRead for Metered<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Metered<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// hyper flushes the socket only once its own buffer is written out.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            self.connection.flushed(&self.scrapes);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::cluster_state::ClusterState;
    use crate::config::Granularity;
    use crate::http::Exposition;
    use crate::metrics::{self, RenderSettings};

    /// Only to keep a broken test from hanging: no outcome depends on it.
    const PATIENCE: Duration = Duration::from_secs(60);

    struct Server {
        addr: SocketAddr,
        metrics: ServerMetrics,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        serving: tokio::task::JoinHandle<io::Result<()>>,
    }

    /// The HTTP server on a free port, serving the render of one cluster not polled yet.
    async fn start(limits: HttpLimits) -> Server {
        let server_metrics = ServerMetrics::default();
        let settings = RenderSettings {
            granularity: Granularity::Topic,
            max_series: 100,
            version: "0.1.0",
            revision: "test".into(),
            compat_kafka_lag_exporter: false,
            shard_zero: true,
            config_reload: None,
            server: server_metrics.clone(),
        };
        let rendered = metrics::render(&[ClusterState::new("a")], &settings);
        let exposition = Arc::new(Exposition::new(rendered, 1, server_metrics.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(crate::http::serve(
            listener,
            exposition,
            None,
            None,
            limits,
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            metrics: server_metrics,
            stop: Some(stop),
            serving,
        }
    }

    impl Server {
        async fn shut_down(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            let stopped = tokio::time::timeout(PATIENCE, self.serving).await;
            assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
        }
    }

    /// A gzip scrape on a new connection: status line and decompressed body.
    async fn scrape(addr: SocketAddr) -> (String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(
                b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .expect("answered")
            .expect("read");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut body = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&raw[split + 4..]),
            &mut body,
        )
        .expect("gzip body");
        (head.lines().next().unwrap_or_default().to_string(), body)
    }

    /// Whether the server closed `stream` without answering: it reads end of stream (or a
    /// reset) before any byte.
    async fn closed_unanswered(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) => true,
            Ok(Err(e)) => e.kind() == io::ErrorKind::ConnectionReset,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    /// The `_count` of a histogram, as exposed.
    fn observations(histogram: &Histogram) -> u64 {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("h", "", histogram.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text.lines()
            .find_map(|l| l.strip_prefix("h_count "))
            .and_then(|n| n.parse().ok())
            .expect("a count")
    }

    const HALF_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept: te";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_and_half_request_connections_never_keep_a_scrape_out() {
        // A timeout far beyond the test: only eviction can make room.
        let server = start(HttpLimits {
            request_timeout: Duration::from_secs(3600),
            max_connections: 4,
        })
        .await;
        // 4 silent connections fill the slots, then 4 slowloris half requests arrive.
        let mut connections = Vec::new();
        for i in 0..8 {
            let mut stream = TcpStream::connect(server.addr).await.expect("connect");
            if i >= 4 {
                stream.write_all(HALF_REQUEST).await.expect("write");
            }
            connections.push(stream);
        }
        let (status, body) = scrape(server.addr).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            body.contains("\nlagwatch_kafka_up{cluster=\"a\"} 0\n"),
            "{body}"
        );
        // Each of the 5 connections accepted at the limit closed the oldest idle one: the 4
        // silent ones, then the first half request.
        for (i, stream) in connections.iter_mut().take(5).enumerate() {
            assert!(closed_unanswered(stream).await, "connection {i} closed");
        }
        assert_eq!(
            observations(&server.metrics.scrape_duration),
            1,
            "the scrape was timed"
        );
        assert_eq!(server.metrics.closed_at_limit.get(), 5);
        assert_eq!(server.metrics.closed_by_timeout.get(), 0);
        server.shut_down().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_without_a_whole_request_in_time_are_closed() {
        let server = start(HttpLimits {
            request_timeout: Duration::from_millis(200),
            max_connections: 16,
        })
        .await;
        let mut silent = TcpStream::connect(server.addr).await.expect("connect");
        let mut half = TcpStream::connect(server.addr).await.expect("connect");
        half.write_all(HALF_REQUEST).await.expect("write");
        assert!(closed_unanswered(&mut silent).await, "silent connection");
        assert!(closed_unanswered(&mut half).await, "half request");
        // A whole request is still answered, and only it is timed.
        let (status, _) = scrape(server.addr).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(observations(&server.metrics.scrape_duration), 1);
        assert_eq!(server.metrics.closed_by_timeout.get(), 2);
        assert_eq!(server.metrics.closed_at_limit.get(), 0);
        server.shut_down().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keep_alive_scrapes_are_each_timed_and_uncompressed_bodies_stream_whole() {
        let server = start(HttpLimits::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        // Two requests on one connection, the second without gzip.
        stream
            .write_all(
                b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n\
                  GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .expect("answered")
            .expect("read");
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
        let (_, plain) = text.rsplit_once("\r\n\r\n").expect("second body");
        assert!(plain.starts_with("# HELP "), "{plain}");
        assert!(plain.ends_with("lagwatch_build_info{version=\"0.1.0\",revision=\"test\"} 1\n"));
        let length = text
            .rsplit_once("content-length: ")
            .and_then(|(_, rest)| rest.split("\r\n").next())
            .and_then(|n| n.parse::<usize>().ok());
        assert_eq!(length, Some(plain.len()), "exact Content-Length");
        assert_eq!(observations(&server.metrics.scrape_duration), 2);
        server.shut_down().await;
    }
}
