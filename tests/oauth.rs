//! OAUTHBEARER with OIDC client credentials against Apache Kafka's JWT validation: the test
//! serves an OAuth token endpoint and a JWKS on a loopback port, the brokers' OAUTHBEARER
//! listener validates tokens with `OAuthBearerValidatorCallbackHandler` against that JWKS, and
//! the `lagwatch` process gets its tokens from the endpoint with `sasl.oauthbearer.method: oidc`
//! (librdkafka with libcurl). A token signed by the right key gives exact lag; a token signed by
//! another key is refused by the broker and an expired one before it is sent: both clusters are
//! down (`lagwatch_kafka_up` 0) with the cause in the log. An AWS MSK IAM cluster
//! (`aws_msk_iam`, credentials from the environment) connects through a proxy that captures the
//! SASL handshake: its signed token reaches the broker, which refuses it (it is no JWT), and a
//! client with 3-second tokens sends fresh ones as they expire. The client secret, the AWS secret
//! key and the tokens appear in no log line and not in `check-config` output. A Kerberos (GSSAPI)
//! cluster is accepted (librdkafka is built with Cyrus SASL) and its handshake reaches the
//! broker, which answers with the mechanisms it takes. lagwatch's own protocol path serves the
//! OAUTHBEARER clusters too (only the Kerberos one logs its fallback to librdkafka): over the
//! OIDC listener it reads the exact committed offsets with one fetched token for all its
//! connections, each request counted; a wrong client secret, an untrusted and an expired token
//! are authentication errors naming the broker, and an MSK IAM token reaches the broker.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::kafka_cluster::{OAUTH_AUDIENCE, OAUTH_ISSUER};
use common::{assert_no_secret, unique, ClusterSpec, KafkaCluster, LagwatchProcess, Listener};
use lagwatch::config::{AwsEnvironment, AwsMskIam, ClusterConfig, Config};
use lagwatch::kafka::msk_iam::MskIamTokenSource;
use lagwatch::kafka::native::NativeClient;
use lagwatch::kafka::stats::RequestCounter;
use lagwatch::kafka::{BrokerRef, KafkaCallError, Request, StatsContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;

const CLIENT_ID: &str = "lagwatch-monitor";
const CLIENT_SECRET: &str = "oidc-s3cret-4f1c9e27";
const SECRET_VAR: &str = "LAGWATCH_TEST_OIDC_SECRET";
const KID: &str = "lagwatch-test-key";

/// An RSA key made by openssl, and its public half as a JWK.
struct SigningKey {
    pem: std::path::PathBuf,
    jwk: serde_json::Value,
}

fn openssl(args: &[&str], dir: &Path, stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed by .ci/setup");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default()).expect("write");
    drop(input);
    let out = child.wait_with_output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn signing_key(dir: &Path, name: &str) -> SigningKey {
    let file = format!("{name}.pem");
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &file,
        ],
        dir,
        None,
    );
    let modulus = String::from_utf8(openssl(
        &["rsa", "-in", &file, "-noout", "-modulus"],
        dir,
        None,
    ))
    .expect("modulus");
    let hex = modulus.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex modulus"))
        .collect();
    assert_eq!(n.len(), 256, "a 2048-bit modulus");
    SigningKey {
        pem: dir.join(file),
        jwk: serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
            "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB",
        }),
    }
}

/// An RS256 JWT for subject `lagwatch`, valid from `iat` to `exp` (seconds since the epoch).
fn jwt(key: &SigningKey, dir: &Path, iat: u64, exp: u64) -> String {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    let claims = serde_json::json!({
        "sub": "lagwatch", "iss": OAUTH_ISSUER, "aud": OAUTH_AUDIENCE, "iat": iat, "exp": exp, "scope": "kafka",
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = key.pem.display().to_string();
    let signature = openssl(
        &["dgst", "-sha256", "-sign", &key],
        dir,
        Some(signing_input.as_bytes()),
    );
    assert_eq!(signature.len(), 256);
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The identity provider: `GET /jwks` serves the trusted key; `POST /token/NAME` answers a
/// client-credentials grant with the token `NAME`, when the client authenticates with
/// `CLIENT_ID` and `CLIENT_SECRET` (HTTP basic), else 401. Counts token requests per name.
struct IdentityProvider {
    port: u16,
    grants: Arc<Mutex<HashMap<String, usize>>>,
}

impl IdentityProvider {
    fn start(jwks: serde_json::Value, tokens: HashMap<String, String>) -> IdentityProvider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let grants = Arc::new(Mutex::new(HashMap::new()));
        let counted = grants.clone();
        let jwks = jwks.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (jwks, tokens, counted) = (jwks.clone(), tokens.clone(), counted.clone());
                std::thread::spawn(move || serve(stream, &jwks, &tokens, &counted));
            }
        });
        IdentityProvider { port, grants }
    }

    fn token_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/token/{name}", self.port)
    }

    fn grants(&self, name: &str) -> usize {
        let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        grants.get(name).copied().unwrap_or(0)
    }
}

fn serve(
    stream: TcpStream,
    jwks: &str,
    tokens: &HashMap<String, String>,
    grants: &Mutex<HashMap<String, usize>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let expected_auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let (status, answer) = match (method, path.strip_prefix("/token/")) {
        ("GET", _) if path == "/jwks" => ("200 OK", jwks.to_string()),
        ("POST", Some(name))
            if headers.get("authorization") == Some(&expected_auth)
                && body.contains("grant_type=client_credentials") =>
        {
            match tokens.get(name) {
                Some(token) => {
                    *grants
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(name.to_string())
                        .or_insert(0) += 1;
                    (
                        "200 OK",
                        serde_json::json!({
                            "access_token": token, "token_type": "Bearer", "expires_in": 3600,
                        })
                        .to_string(),
                    )
                }
                None => ("404 Not Found", "{}".to_string()),
            }
        }
        ("POST", Some(_)) => (
            "401 Unauthorized",
            r#"{"error":"invalid_client"}"#.to_string(),
        ),
        _ => ("404 Not Found", "{}".to_string()),
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A TCP proxy in front of `target` that keeps every byte clients send: the SASL handshake
/// shows which OAUTHBEARER token reached the broker.
struct CapturingProxy {
    port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl CapturingProxy {
    fn start(target: String) -> CapturingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let captured = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(broker) = TcpStream::connect(&target) else {
                    continue;
                };
                let (mut client_in, mut broker_out) = (client, broker);
                let (Ok(mut client_out), Ok(mut broker_in)) =
                    (client_in.try_clone(), broker_out.try_clone())
                else {
                    continue;
                };
                let captured = captured.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = client_in.read(&mut buf) {
                        if n == 0 || broker_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        captured
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend_from_slice(&buf[..n]);
                    }
                    let _ = broker_out.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut broker_in, &mut client_out);
                    let _ = client_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CapturingProxy { port, sent }
    }

    /// The bearer tokens of the OAUTHBEARER client first messages sent so far
    /// (`n,,\x01auth=Bearer TOKEN\x01...`), in order, each once.
    fn tokens(&self) -> Vec<String> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let text = String::from_utf8_lossy(&sent).to_string();
        let mut tokens: Vec<String> = Vec::new();
        for part in text.split("auth=Bearer ").skip(1) {
            let token: String = part.chars().take_while(|c| *c != '\u{1}').collect();
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
        tokens
    }
}

/// The configuration lagwatch reads for one cluster entry.
fn cluster_config(entry: &str) -> ClusterConfig {
    let yaml = format!("clusters:\n{entry}");
    Config::from_yaml(&yaml)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
        .clusters
        .remove(0)
}

/// lagwatch's own protocol path over the OAUTHBEARER listener: an OIDC token (fetched once,
/// kept for every connection) reads the group's exact committed offsets, each request counted
/// per broker; a wrong client secret, a token signed by an unknown key and an expired token are
/// authentication errors naming the broker; an MSK IAM cluster's signed token reaches the
/// broker the same way librdkafka's does.
fn native_oauthbearer(
    broker: &KafkaCluster,
    idp: &IdentityProvider,
    cluster: &dyn Fn(&str, &str, &str) -> String,
    topic: &str,
    group: &str,
) {
    let client = |config: &ClusterConfig| {
        let requests = Arc::new(Mutex::new(RequestCounter::default()));
        let native = NativeClient::new(config, requests.clone(), Duration::from_secs(15))
            .unwrap_or_else(|reason| panic!("the native path serves OAUTHBEARER: {reason}"));
        (native, requests)
    };
    let grants = idp.grants("good");
    let (mut native, requests) = client(&cluster_config(&cluster("oidc", "good", CLIENT_SECRET)));
    let fetched = native.committed_offsets(&[group.to_string()], Duration::from_secs(30));
    let offsets: Vec<(String, i32, i64)> = fetched[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}"))
        .iter()
        .map(|o| (o.topic.clone(), o.partition, o.offset))
        .collect();
    assert_eq!(offsets, [(topic.to_string(), 0, 8)]);
    // Two connections (bootstrap, then the coordinator), each ApiVersions, SaslHandshake and one
    // SaslAuthenticate; FindCoordinator on the first, OffsetFetch on the second.
    let totals = requests.lock().expect("counter").totals();
    assert_eq!(
        totals.into_iter().collect::<Vec<_>>(),
        [("1".to_string(), 4), ("bootstrap".to_string(), 4)]
    );
    // One token for both connections.
    assert_eq!(idp.grants("good"), grants + 1);

    // A wrong client secret: the token endpoint refuses it before the broker is asked.
    let (mut native, _) = client(&cluster_config(&cluster(
        "oidc-wrong-secret",
        "good",
        "not-the-secret",
    )));
    let e = native.check_versions().expect_err("a wrong secret");
    assert_eq!(
        e.broker,
        Some(BrokerRef::Bootstrap(
            broker.bootstrap_for(Listener::OauthBearer)
        ))
    );
    match &e.error {
        KafkaCallError::Authentication {
            request: Request::SaslAuthenticate,
            message,
        } => assert_eq!(
            message,
            &format!(
                "no token: OAUTHBEARER token endpoint {}: HTTP status 401 invalid_client",
                idp.token_url("good")
            )
        ),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{e:?} {e}", e = e.error).contains("not-the-secret"));
    // A token the broker's JWKS cannot verify: the broker's own refusal.
    let (mut native, _) = client(&cluster_config(&cluster(
        "oidc-wrong-key",
        "wrong-key",
        CLIENT_SECRET,
    )));
    let e = native.check_versions().expect_err("an untrusted token");
    match &e.error {
        KafkaCallError::Authentication { message, .. } => assert!(
            message.starts_with("the broker refused the token ({\"status\":\"invalid_token\"")
                && e.broker.is_some(),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
    // An expired token is never sent.
    let (mut native, _) = client(&cluster_config(&cluster(
        "oidc-expired",
        "expired",
        CLIENT_SECRET,
    )));
    let e = native.check_versions().expect_err("an expired token");
    assert!(
        matches!(&e.error, KafkaCallError::Authentication { message, .. }
            if message.starts_with(&format!("no token: the OAUTHBEARER token from {} expired 3", idp.token_url("expired")))),
        "{e:?}"
    );

    // AWS MSK IAM: the token is signed by the same source librdkafka's refresh hook uses.
    let proxy = CapturingProxy::start(broker.bootstrap_for(Listener::OauthBearer));
    let mut msk = cluster_config(&format!(
        "  - name: msk-native\n    bootstrap_servers: \"127.0.0.1:{}\"\n    kafka: {{security.protocol: sasl_plaintext, sasl.mechanism: OAUTHBEARER}}\n",
        proxy.port
    ));
    msk.aws_msk_iam = Some(AwsMskIam {
        region: "eu-west-1".into(),
        profile: None,
        environment: aws_environment(),
    });
    let (mut native, _) = client(&msk);
    let e = native
        .check_versions()
        .expect_err("the broker cannot verify an MSK token");
    assert_eq!(
        e.broker,
        Some(BrokerRef::Bootstrap(format!("127.0.0.1:{}", proxy.port)))
    );
    assert!(
        matches!(e.error, KafkaCallError::Authentication { .. }),
        "{e:?}"
    );
    let tokens = proxy.tokens();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let url = msk_url(&tokens[0]);
    assert!(
        url.contains("X-Amz-Credential=AKIALAGWATCHTEST0001%2F")
            && url.contains("%2Feu-west-1%2Fkafka-cluster%2Faws4_request&"),
        "{url}"
    );
}

fn aws_environment() -> AwsEnvironment {
    AwsEnvironment(
        [
            ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
}

/// The presigned URL inside an MSK IAM token.
fn msk_url(token: &str) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(token).expect("base64url token");
    String::from_utf8(bytes).expect("a URL")
}

const AWS_KEY_ID: &str = "AKIALAGWATCHTEST0001";
const AWS_SECRET: &str = "aws-s3cret/Key+zz9QwertyUiop0123456789abc";

#[test]
fn oidc_tokens_read_lag_refused_tokens_are_authentication_errors_and_msk_iam_tokens_reach_the_broker(
) {
    let dir = std::env::temp_dir().join(unique("oidc"));
    std::fs::create_dir_all(&dir).expect("dir");
    let trusted = signing_key(&dir, "trusted");
    let untrusted = signing_key(&dir, "untrusted");
    let now = now();
    let good = jwt(&trusted, &dir, now, now + 3600);
    let tokens = HashMap::from([
        ("good".to_string(), good.clone()),
        (
            "wrong-key".to_string(),
            jwt(&untrusted, &dir, now, now + 3600),
        ),
        (
            "expired".to_string(),
            jwt(&trusted, &dir, now - 7200, now - 3600),
        ),
    ]);
    let idp = IdentityProvider::start(serde_json::json!({ "keys": [trusted.jwk] }), tokens);

    let broker = KafkaCluster::start(ClusterSpec {
        oauthbearer_jwks_port: Some(idp.port),
        ..ClusterSpec::default()
    });
    let topic = unique("oidc");
    let group = unique("oidc-reader");
    broker.create_topic(&topic, 1, &[]);
    broker.produce(&topic, 0, 20, None);
    broker.commit(&group, &[(&topic, 0, 8)]);

    let cluster_with = |name: &str, token: &str, secret: &str| {
        format!(
            "  - name: {name}
    bootstrap_servers: \"{bootstrap}\"
    kafka:
      security.protocol: sasl_plaintext
      sasl.mechanism: OAUTHBEARER
      sasl.oauthbearer.method: oidc
      sasl.oauthbearer.client.id: {CLIENT_ID}
      sasl.oauthbearer.client.secret: {secret}
      sasl.oauthbearer.token.endpoint.url: \"{url}\"
      sasl.oauthbearer.scope: kafka
    topics: {{ include: [\"^{topic}$\"] }}
    groups: {{ include: [\"^{group}$\"] }}
",
            bootstrap = broker.bootstrap_for(Listener::OauthBearer),
            url = idp.token_url(token),
        )
    };
    let cluster =
        |name: &str, token: &str| cluster_with(name, token, &format!("{{env: {SECRET_VAR}}}"));
    // AWS MSK IAM through a proxy that captures the SASL handshake: the broker cannot
    // validate an MSK token and refuses it, which shows the token arrived.
    let proxy = CapturingProxy::start(broker.bootstrap_for(Listener::OauthBearer));
    let msk = format!(
        "  - name: msk-iam
    bootstrap_servers: \"127.0.0.1:{}\"
    aws_msk_iam: {{ region: eu-west-1 }}
    kafka:
      security.protocol: sasl_plaintext
      sasl.mechanism: OAUTHBEARER
    topics: {{ include: [\"^{topic}$\"] }}
    groups: {{ include: [\"^{group}$\"] }}
",
        proxy.port
    );
    // Kerberos: librdkafka is built with GSSAPI (Cyrus SASL), so the configuration is accepted
    // and the handshake reaches the broker, whose OAUTHBEARER listener refuses the mechanism.
    // Relogin 0: no kinit, there is no KDC.
    let kerberos = format!(
        "  - name: kerberos
    bootstrap_servers: \"{}\"
    kafka:
      security.protocol: sasl_plaintext
      sasl.mechanism: GSSAPI
      sasl.kerberos.service.name: kafka
      sasl.kerberos.principal: lagwatch@EXAMPLE.COM
      sasl.kerberos.min.time.before.relogin: 0
    topics: {{ include: [\"^{topic}$\"] }}
",
        broker.bootstrap_for(Listener::OauthBearer)
    );
    let yaml = format!(
        "poll_interval: 1s\nclusters:\n{}{}{}{msk}{kerberos}",
        cluster("oidc", "good"),
        cluster("oidc-wrong-key", "wrong-key"),
        cluster("oidc-expired", "expired")
    );
    let secrets = [CLIENT_SECRET, good.as_str(), AWS_SECRET];
    let env = [
        (SECRET_VAR, CLIENT_SECRET),
        ("RUST_LOG", "trace"),
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
    ];
    let lw = LagwatchProcess::start_with_env(&yaml, &env);
    // 20 produced, 8 committed.
    common::assert_lag_on_every_cluster(|| lw.metrics(), &["oidc"], &group, 12.0);
    assert!(idp.grants("good") >= 1, "lagwatch fetched its token");

    // Both bad tokens were fetched, and neither cluster is up after several polls.
    let m = lw.wait_for(
        Duration::from_secs(60),
        "the refused clusters polled and down",
        |m| {
            ["oidc-wrong-key", "oidc-expired", "msk-iam", "kerberos"]
                .iter()
                .all(|c| {
                    m.value("lagwatch_kafka_up", &[("cluster", c)]) == Some(0.0)
                        && m.sum("lagwatch_poll_errors_total", &[("cluster", c)]) >= 2.0
                })
                && idp.grants("wrong-key") >= 1
                && idp.grants("expired") >= 1
        },
    );
    for c in ["oidc-wrong-key", "oidc-expired", "msk-iam"] {
        assert_eq!(
            m.value(
                "kafka_consumergroup_lag_messages",
                &[("cluster", c), ("group", &group)]
            ),
            None,
            "{c} has no lag series"
        );
    }
    let log = lw.log_text();
    let auth_failure = |cluster: &str, cause: &str| {
        log.lines().any(|l| {
            l.contains("Kafka authentication failed")
                && l.contains(&format!("\"cluster\":\"{cluster}\""))
                && l.contains(cause)
        })
    };
    for line in log
        .lines()
        .filter(|l| l.contains("Kafka authentication failed"))
        .take(4)
    {
        eprintln!("{line}");
    }
    // The broker refuses the token signed by a key its JWKS does not hold.
    assert!(
        auth_failure("oidc-wrong-key", "SASL authentication error"),
        "{log}"
    );
    // librdkafka refuses to send a token whose `exp` has passed.
    assert!(auth_failure("oidc-expired", "unexpired token"), "{log}");
    // The MSK IAM token reached the broker in the SASL handshake, signed for the region with
    // the access key from the environment, and the broker refused it.
    let tokens = proxy.tokens();
    let url = msk_url(
        tokens
            .first()
            .expect("an OAUTHBEARER token reached the broker"),
    );
    assert!(
        url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIALAGWATCHTEST0001%2F")
            && url.contains("%2Feu-west-1%2Fkafka-cluster%2Faws4_request&")
            && url.contains("&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=")
            && url.ends_with(&format!("&User-Agent=lagwatch%2F{}", env!("CARGO_PKG_VERSION"))),
        "{url}"
    );
    assert!(
        auth_failure("msk-iam", "SASL authentication error"),
        "{log}"
    );
    // The broker answered the GSSAPI handshake with the mechanisms it takes.
    assert!(
        log.lines()
            .any(|l| l.contains("Kafka authentication failed")
                && l.contains("\"cluster\":\"kerberos\"")
                && l.contains("SASL GSSAPI mechanism handshake failed")
                && l.contains("broker's supported mechanisms: OAUTHBEARER")),
        "{log}"
    );
    // The OIDC cluster's group requests went over lagwatch's own protocol path: no line says
    // they fell back to librdkafka, as the Kerberos cluster's does.
    let fell_back = |cluster: &str| {
        log.lines()
            .filter(|l| {
                l.contains("committed offsets through librdkafka")
                    && l.contains(&format!("\"cluster\":\"{cluster}\""))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(fell_back("oidc"), Vec::<&str>::new());
    assert!(
        fell_back("kerberos")
            .iter()
            .any(|l| l.contains("SASL mechanism GSSAPI is served by librdkafka only")),
        "{log}"
    );
    assert_no_secret("lagwatch log", &log, &secrets);
    assert_no_secret("lagwatch log", &log, &tokens);
    drop(lw);

    native_oauthbearer(&broker, &idp, &cluster_with, &topic, &group);

    // check-config shows the client secret only as <redacted>.
    let config = dir.join("lagwatch.yaml");
    std::fs::write(&config, &yaml).expect("config");
    let (code, shown) = common::check_config(&config, &[(SECRET_VAR, CLIENT_SECRET)]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.contains("sasl.oauthbearer.client.secret") && l.contains("<redacted>")),
        "{shown}"
    );
    assert!(
        shown.contains("    aws_msk_iam:\n      region: \"eu-west-1\"\n      profile: null\n"),
        "{shown}"
    );
    assert_no_secret("check-config output", &shown, &secrets);

    // librdkafka asks for a new token before each one expires: with 3-second tokens, several
    // distinct tokens reach the broker within seconds.
    let source = MskIamTokenSource {
        region: "eu-west-1".into(),
        profile: None,
        environment: aws_environment(),
        lifetime: Duration::from_secs(3),
    };
    let refresh_proxy = CapturingProxy::start(broker.bootstrap_for(Listener::OauthBearer));
    let requests = Arc::new(Mutex::new(RequestCounter::default()));
    let client: BaseConsumer<StatsContext> = ClientConfig::new()
        .set(
            "bootstrap.servers",
            format!("127.0.0.1:{}", refresh_proxy.port),
        )
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("reconnect.backoff.max.ms", "500")
        .set("log_level", "0")
        .create_with_context(
            StatsContext::new("msk-refresh", "admin", requests).with_token_source(source),
        )
        .expect("client");
    let started = std::time::Instant::now();
    while refresh_proxy.tokens().len() < 3 && started.elapsed() < Duration::from_secs(30) {
        let _ = client.poll(Duration::from_millis(100));
    }
    let tokens = refresh_proxy.tokens();
    let dates: std::collections::BTreeSet<String> = tokens
        .iter()
        .map(|t| {
            let url = msk_url(t);
            assert!(url.contains("&X-Amz-Expires=3&"), "{url}");
            url.split("X-Amz-Date=").nth(1).unwrap_or("")[..16].to_string()
        })
        .collect();
    assert!(
        tokens.len() >= 3 && dates.len() >= 2,
        "refreshed tokens within {:?}: {} tokens, signed at {dates:?}",
        started.elapsed(),
        tokens.len()
    );
    eprintln!(
        "{} distinct MSK IAM tokens reached the broker in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
