//! HTTP: `/metrics` serves the buffer rendered after the last poll (no Kafka I/O on the scrape
//! path), `/healthz` says the process is alive, `/readyz` says every cluster's first poll was
//! attempted. A Kafka outage never makes the exporter unready: staleness is told by metrics.
//! `security` adds TLS, basic authentication and headers from the web configuration file;
//! `server` accepts and serves connections within the limits of `web:` (request timeout,
//! connection limit) and times scrapes.

pub mod security;
pub mod server;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::HttpLimits;
use crate::metrics::{Rendered, ServerMetrics, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

/// What the HTTP server reads; written by the poll loops.
pub struct Exposition {
    rendered: RwLock<Arc<Rendered>>,
    /// The `/` page, rendered with the metrics.
    page: RwLock<Arc<String>>,
    /// Clusters whose first poll has not been attempted yet.
    first_polls_pending: AtomicUsize,
    /// The server's own figures, shared with the render.
    server: ServerMetrics,
}

impl Exposition {
    /// `server`: the figures the render reads the server's own families from
    /// ([`crate::metrics::RenderSettings::server`]).
    pub fn new(initial: Rendered, clusters: usize, server: ServerMetrics) -> Exposition {
        Exposition {
            rendered: RwLock::new(Arc::new(initial)),
            page: RwLock::new(Arc::new(String::new())),
            first_polls_pending: AtomicUsize::new(clusters),
            server,
        }
    }

    /// Replaces the served buffer; scrapes in flight keep the one they took.
    pub fn publish(&self, rendered: Rendered) {
        let rendered = Arc::new(rendered);
        match self.rendered.write() {
            Ok(mut slot) => *slot = rendered,
            Err(poisoned) => *poisoned.into_inner() = rendered,
        }
    }

    /// Replaces the `/` page.
    pub fn publish_page(&self, page: String) {
        let page = Arc::new(page);
        match self.page.write() {
            Ok(mut slot) => *slot = page,
            Err(poisoned) => *poisoned.into_inner() = page,
        }
    }

    pub fn page(&self) -> Arc<String> {
        match self.page.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn current(&self) -> Arc<Rendered> {
        match self.rendered.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Called once per cluster, after its first poll attempt.
    pub fn first_poll_attempted(&self) {
        let _ = self
            .first_polls_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn ready(&self) -> bool {
        self.first_polls_pending.load(Ordering::Acquire) == 0
    }
}

pub fn router(exposition: Arc<Exposition>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/", get(index))
        .with_state(exposition)
}

/// Serves the exposition on `listener` until `stop` completes, then finishes the requests in
/// flight, within `limits` ([`server`]). With web settings: over TLS when they say so, with basic
/// authentication and headers, following changes to their files.
pub async fn serve(
    listener: tokio::net::TcpListener,
    exposition: Arc<Exposition>,
    security: Option<Arc<security::WebSecurity>>,
    reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
    limits: HttpLimits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server_metrics = exposition.server.clone();
    let mut app = router(exposition);
    if let Some(reload) = reload {
        app = app.route("/-/reload", post(reload_now).with_state(reload));
    }
    let slots = server::Slots::new(limits.max_connections);
    let Some(security) = security else {
        let acceptor = server::Acceptor::Plain(listener);
        return server::run(acceptor, slots, app, limits, server_metrics, stop).await;
    };
    let app = app.layer(axum::middleware::from_fn_with_state(
        security.clone(),
        security::authenticate,
    ));
    let watcher = tokio::spawn(security.clone().watch());
    let acceptor = if security.tls() {
        server::Acceptor::Tls(security::TlsListener::new(
            listener,
            security.clone(),
            slots.clone(),
        )?)
    } else {
        server::Acceptor::Plain(listener)
    };
    let result = server::run(acceptor, slots, app, limits, server_metrics, stop).await;
    watcher.abort();
    result
}

/// A request to reload the configuration: from SIGHUP (`None`), or from `POST /-/reload`, which
/// waits for the outcome (the error says why the file was refused).
pub type ReloadRequest = Option<tokio::sync::oneshot::Sender<Result<(), String>>>;

async fn reload_now(
    State(requests): State<tokio::sync::mpsc::Sender<ReloadRequest>>,
) -> (StatusCode, String) {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    if requests.send(Some(reply)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    match outcome.await {
        Ok(Ok(())) => (StatusCode::OK, "configuration reloaded\n".into()),
        Ok(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration not reloaded: {error}\n"),
        ),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into()),
    }
}

async fn metrics(State(exposition): State<Arc<Exposition>>, headers: HeaderMap) -> Response {
    let rendered = exposition.current();
    let openmetrics = accepts(&headers, header::ACCEPT, "application/openmetrics-text");
    let gzip = accepts(&headers, header::ACCEPT_ENCODING, "gzip");
    let (content_type, encoding) = if openmetrics {
        (OPENMETRICS_CONTENT_TYPE, &rendered.openmetrics)
    } else {
        (TEXT_CONTENT_TYPE, &rendered.text)
    };
    let body = if gzip {
        // A reference-counted handle on the rendered buffer, not a copy.
        Body::from(encoding.gzip().clone())
    } else {
        Body::new(Gunzip::new(encoding))
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// An uncompressed `/metrics` body, decompressed from the gzip copy as the client reads it: the
/// rare scraper that does not accept gzip costs CPU, never a whole uncompressed copy in memory.
struct Gunzip {
    decoder: flate2::read::GzDecoder<bytes::buf::Reader<Bytes>>,
    /// Bytes not sent yet; the exact total is the `Content-Length`.
    remaining: u64,
}

/// Bytes decompressed per frame: small enough to cost well under a millisecond on a worker
/// thread, large enough that the client's reads, not frames, set the pace.
const GUNZIP_FRAME: usize = 64 * 1024;

impl Gunzip {
    fn new(encoding: &crate::metrics::Encoding) -> Gunzip {
        Gunzip {
            decoder: encoding.decoder(),
            remaining: encoding.len() as u64,
        }
    }
}

impl http_body::Body for Gunzip {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        use std::io::Read as _;
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let want = usize::try_from(self.remaining).map_or(GUNZIP_FRAME, |r| r.min(GUNZIP_FRAME));
        let mut frame = vec![0; want];
        let mut filled = 0;
        while filled < want {
            match self.decoder.read(&mut frame[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return std::task::Poll::Ready(Some(Err(e))),
            }
        }
        if filled < want {
            // Shorter than its recorded length: a bug, and the response must not end short.
            return std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the exposition is shorter than its length",
            ))));
        }
        self.remaining -= filled as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(frame)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// Whether a header lists `token` with a non-zero quality.
fn accepts(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let matches = parts.next().is_some_and(|t| t.eq_ignore_ascii_case(token));
            let zero_quality = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            matches && !zero_quality
        })
}

async fn readyz(State(exposition): State<Arc<Exposition>>) -> impl IntoResponse {
    if exposition.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first poll of every cluster\n",
        )
    }
}

async fn index(State(exposition): State<Arc<Exposition>>) -> Html<String> {
    Html(exposition.page().as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_are_matched_by_token_and_quality() {
        // (header value, token, expected)
        let cases = [
            ("gzip", "gzip", true),
            ("deflate, gzip;q=0.5", "gzip", true),
            ("gzip;q=0", "gzip", false),
            ("identity", "gzip", false),
            (
                "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;q=0.5",
                "application/openmetrics-text",
                true,
            ),
            (
                "text/plain;version=0.0.4",
                "application/openmetrics-text",
                false,
            ),
        ];
        for (value, token, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(value));
            assert_eq!(accepts(&h, header::ACCEPT, token), want, "{value}");
        }
    }

    #[test]
    fn readiness_needs_every_cluster_polled_once() {
        let e = Exposition::new(
            Rendered::default(),
            2,
            crate::metrics::ServerMetrics::default(),
        );
        assert!(!e.ready());
        e.first_poll_attempted();
        assert!(!e.ready());
        e.first_poll_attempted();
        e.first_poll_attempted();
        assert!(e.ready());
    }
}
