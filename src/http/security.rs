//! TLS, basic authentication and extra headers for the HTTP server, from the web configuration
//! file (`web_config_file`, exporter-toolkit format). The file and the certificates it names are
//! watched: a change is loaded without a restart, and a change that does not load (a half-written
//! certificate, a typo) is logged and the previous settings kept. Whether TLS is on at all is
//! decided at start, since a listener cannot switch protocol under its clients.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::server::Slots;
use crate::config::{ClientAuth, TlsServerConfig, TlsVersion, WebConfig};

/// How often the web configuration file and its certificates are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A TLS handshake that takes longer than this is abandoned (a client that connects and stays
/// silent must not hold a slot).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Paths served without basic authentication (TLS, when on, still applies): the probes of an
/// orchestrator, which carry no credentials and say only "alive" and "ready".
const UNAUTHENTICATED_PATHS: &[&str] = &["/healthz", "/readyz"];

/// A bcrypt hash at the usual cost (10) checked when the user is unknown, so that an unknown user
/// costs the same time as a wrong password. Its password is of no use to anyone: a request whose
/// user is unknown is refused whatever the check says.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    bcrypt::hash("lagwatch: no such user", 10)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// Why the web configuration's TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TlsError {
    /// The key of `tls_server_config` at fault.
    pub field: &'static str,
    pub message: String,
}

fn tls_error(field: &'static str, message: impl ToString) -> TlsError {
    TlsError {
        field,
        message: message.to_string(),
    }
}

/// The rustls server configuration of `tls`: certificate chain and key, the client-certificate
/// policy with its CA, and the protocol versions.
pub fn server_config(tls: &TlsServerConfig) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error("cert_file", e))?;
    if certs.is_empty() {
        return Err(tls_error("cert_file", "no PEM certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| tls_error("key_file", e))?;
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        match (tls.min_version, tls.max_version) {
            (TlsVersion::Tls12, TlsVersion::Tls12) => &[&rustls::version::TLS12],
            (TlsVersion::Tls13, _) => &[&rustls::version::TLS13],
            (TlsVersion::Tls12, TlsVersion::Tls13) => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
        };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| tls_error("min_version", e))?;
    let builder = match (tls.client_auth, &tls.client_ca_file) {
        (ClientAuth::NoClientCert, _) => builder.with_no_client_auth(),
        (_, None) => return Err(tls_error("client_ca_file", "is required")),
        (policy, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| tls_error("client_ca_file", e))?;
            for cert in cas {
                roots
                    .add(cert)
                    .map_err(|e| tls_error("client_ca_file", e))?;
            }
            if roots.is_empty() {
                return Err(tls_error(
                    "client_ca_file",
                    "no PEM certificate in the file",
                ));
            }
            let mut verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            if policy == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| tls_error("client_ca_file", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_error("key_file", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The web configuration in force, with its TLS acceptor built.
struct Loaded {
    web: WebConfig,
    acceptor: Option<TlsAcceptor>,
    /// Modification time and length of the file and of each file it names, to see a change.
    stamps: Vec<Option<(SystemTime, u64)>>,
}

fn stamps(web_path: &Path, web: Option<&WebConfig>) -> Vec<Option<(SystemTime, u64)>> {
    let mut paths = vec![web_path.to_path_buf()];
    if let Some(tls) = web.and_then(|w| w.tls.as_ref()) {
        paths.push(tls.cert_file.clone());
        paths.push(tls.key_file.clone());
        paths.extend(tls.client_ca_file.clone());
    }
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn load(web: WebConfig) -> Result<Loaded, String> {
    let acceptor = match &web.tls {
        Some(tls) => Some(TlsAcceptor::from(Arc::new(
            server_config(tls).map_err(|e| format!("tls_server_config.{e}"))?,
        ))),
        None => None,
    };
    Ok(Loaded {
        stamps: stamps(&web.path, Some(&web)),
        web,
        acceptor,
    })
}

/// The web settings the server follows, reloaded when their files change.
pub struct WebSecurity {
    path: PathBuf,
    /// Whether the server was started with TLS: fixed for its lifetime.
    tls: bool,
    current: RwLock<Arc<Loaded>>,
}

impl WebSecurity {
    /// Settings from a web configuration checked at start; fails when its TLS material does
    /// not load.
    pub fn new(web: WebConfig) -> Result<WebSecurity, String> {
        let path = web.path.clone();
        let loaded = load(web)?;
        Ok(WebSecurity {
            path,
            tls: loaded.acceptor.is_some(),
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    pub fn tls(&self) -> bool {
        self.tls
    }

    fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the file again if it or a file it names changed. A file that does not load, or
    /// that would switch TLS on or off, is logged and the settings in force are kept.
    fn refresh(&self) {
        let current = self.current();
        if stamps(&self.path, Some(&current.web)) == current.stamps {
            return;
        }
        let loaded = WebConfig::load(&self.path)
            .map_err(|e| e.to_string())
            .and_then(load)
            .and_then(|l| {
                if l.acceptor.is_some() == self.tls {
                    Ok(l)
                } else {
                    Err(format!(
                        "web_config_file: {}: tls_server_config: TLS cannot be turned {} without a restart",
                        self.path.display(),
                        if self.tls { "off" } else { "on" }
                    ))
                }
            });
        match loaded {
            Ok(loaded) => {
                tracing::info!(file = %self.path.display(), "web configuration reloaded");
                let loaded = Arc::new(loaded);
                match self.current.write() {
                    Ok(mut c) => *c = loaded,
                    Err(poisoned) => *poisoned.into_inner() = loaded,
                }
            }
            Err(error) => {
                tracing::error!(
                    file = %self.path.display(),
                    error,
                    "web configuration not reloaded: keeping the one in force"
                );
                // Not again until the files change once more.
                let mut kept = Loaded {
                    web: current.web.clone(),
                    acceptor: current.acceptor.clone(),
                    stamps: Vec::new(),
                };
                kept.stamps = stamps(&self.path, Some(&kept.web));
                let kept = Arc::new(kept);
                match self.current.write() {
                    Ok(mut c) => *c = kept,
                    Err(poisoned) => *poisoned.into_inner() = kept,
                }
            }
        }
    }

    /// Checks the files for changes every [`WATCH_INTERVAL`] for as long as the server runs.
    pub async fn watch(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(WATCH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
        }
    }
}

/// Basic authentication (unless the path is exempt) and the configured headers, on every
/// response including refusals.
pub async fn authenticate(
    State(security): State<Arc<WebSecurity>>,
    request: Request,
    next: Next,
) -> Response {
    let loaded = security.current();
    let users = &loaded.web.basic_auth_users;
    let exempt = UNAUTHENTICATED_PATHS.contains(&request.uri().path());
    let mut response = if users.is_empty() || exempt {
        next.run(request).await
    } else {
        let credentials = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_credentials);
        let allowed = match credentials {
            Some((user, password)) => {
                let loaded = loaded.clone();
                tokio::task::spawn_blocking(move || {
                    check_password(&loaded.web.basic_auth_users, &user, &password)
                })
                .await
                .unwrap_or(false)
            }
            None => false,
        };
        if allowed {
            next.run(request).await
        } else {
            let mut refused = Response::new(Body::from("Unauthorized\n"));
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"lagwatch\""),
            );
            refused
        }
    };
    for (name, value) in &loaded.web.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// User and password of an `Authorization: Basic …` header.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Whether `password` is `user`'s. Takes the same time whether the user exists or not (every
/// name is compared in constant time, and an unknown user is checked against a dummy hash);
/// bcrypt compares its hashes in constant time.
fn check_password(
    users: &std::collections::BTreeMap<String, String>,
    user: &str,
    password: &str,
) -> bool {
    let mut found: Option<&str> = None;
    for (name, hash) in users {
        if bool::from(name.as_bytes().ct_eq(user.as_bytes())) {
            found = Some(hash);
        }
    }
    let verified = bcrypt::verify(password, found.unwrap_or(DUMMY_HASH.as_str())).unwrap_or(false);
    verified && found.is_some()
}

/// A listener that completes the TLS handshake of each connection before the server sees it,
/// with the certificates in force when the connection arrived. Handshakes run concurrently, so
/// a slow or silent client holds up no one else; each holds a connection slot from the moment
/// it is accepted.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, OwnedSemaphorePermit)>,
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        security: Arc<WebSecurity>,
        slots: Arc<Slots>,
    ) -> io::Result<TlsListener> {
        let (tx, accepted) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    // The server is gone: close the port.
                    _ = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(acceptor) = security.current().acceptor.clone() else {
                    continue;
                };
                let permit = tokio::select! {
                    permit = slots.acquire() => permit,
                    _ = tx.closed() => return,
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, permit)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { accepted })
    }

    /// The next connection whose handshake completed, with its slot.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, OwnedSemaphorePermit) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended: no more connections, ever.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded_from_the_header() {
        // (header value, expected)
        let cases = [
            // 1. "prometheus:s3cret:with:colons": the password may contain colons.
            (
                "Basic cHJvbWV0aGV1czpzM2NyZXQ6d2l0aDpjb2xvbnM=",
                Some(("prometheus", "s3cret:with:colons")),
            ),
            // 2. The scheme is case-insensitive.
            ("basic dTpw", Some(("u", "p"))),
            // 3. Another scheme, bad base64, no colon: no credentials.
            ("Bearer dTpw", None),
            ("Basic !!!", None),
            ("Basic dXNlcg==", None),
        ];
        for (value, want) in cases {
            let got = basic_credentials(value);
            assert_eq!(
                got.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn passwords_are_checked_against_the_users_hash() {
        let users = std::collections::BTreeMap::from([
            ("alice".to_string(), bcrypt::hash("right", 4).unwrap()),
            ("bob".to_string(), bcrypt::hash("other", 4).unwrap()),
        ]);
        assert!(check_password(&users, "alice", "right"));
        assert!(!check_password(&users, "alice", "other"));
        assert!(!check_password(&users, "alice", ""));
        assert!(!check_password(&users, "carol", "right"));
        // The dummy hash is a real one, so an unknown user costs a full bcrypt check.
        assert!(matches!(
            bcrypt::verify("right", DUMMY_HASH.as_str()),
            Ok(false)
        ));
    }
}
