//! The HTTP server's TLS, client certificates and basic authentication (`web_config_file`), with
//! real clients: curl, and a real Prometheus scraping over TLS with basic auth and a client
//! certificate. Refusals: a missing or wrong password (401), a missing client certificate or one
//! from another CA (TLS handshake failure), a server certificate checked against the wrong CA.
//! Rotation: a new server certificate and a new password are used without a restart; a broken
//! file keeps the settings in force. No Kafka needed: the cluster points at a closed port.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka_cluster::openssl;
use common::{free_port, http_get, unique, LagwatchProcess};

const PASSWORD: &str = "Scrape-pw-4f1c9e";
const ROTATED_PASSWORD: &str = "Rotated-pw-8b2d77";
const USER: &str = "prometheus";

/// A directory removed when the test passes, kept (and named) when it fails.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> WorkDir {
        let dir = std::env::temp_dir().join(unique("lagwatch-http-security"));
        std::fs::create_dir_all(&dir).expect("dir");
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A self-signed CA `NAME-ca.pem` / `NAME-ca.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (key, cert) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    let subject = format!("/CN=lagwatch test CA {name}");
    openssl(
        dir,
        &[
            &["req", "-x509", "-days", "7", "-subj", &subject][..],
            &EC_KEY[..],
            &["-keyout", &key, "-out", &cert][..],
        ]
        .concat(),
    );
}

/// A certificate `NAME.pem` / `NAME.key` signed by CA `ca`, for 127.0.0.1 when `server`.
fn make_cert(dir: &Path, ca: &str, name: &str, server: bool) {
    let (key, csr, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            &["req", "-subj", &subject][..],
            &EC_KEY[..],
            &["-keyout", &key, "-out", &csr][..],
        ]
        .concat(),
    );
    let ext = format!("{name}.ext");
    let usage = if server {
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    } else {
        "extendedKeyUsage=clientAuth\n"
    };
    std::fs::write(dir.join(&ext), usage).expect("ext");
    let (ca_cert, ca_key) = (format!("{ca}-ca.pem"), format!("{ca}-ca.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "7",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
}

/// CA `a` signs the server's and the client's certificates; CA `b` signs a client certificate
/// lagwatch must refuse.
fn make_pki(dir: &Path) {
    make_ca(dir, "a");
    make_ca(dir, "b");
    make_cert(dir, "a", "server", true);
    make_cert(dir, "a", "client", false);
    make_cert(dir, "b", "stranger", false);
}

/// A web configuration requiring a client certificate from CA `a` and `USER`'s password.
fn web_config(password: &str) -> String {
    let hash = bcrypt::hash(password, 6).expect("bcrypt");
    format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: a-ca.pem\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  {USER}: '{hash}'\n"
    )
}

fn start_lagwatch(dir: &Path) -> LagwatchProcess {
    LagwatchProcess::start(&format!(
        "web_config_file: \"{}\"\npoll_interval: 1s\nclusters:\n  - name: nowhere\n    bootstrap_servers: \"127.0.0.1:1\"\n",
        dir.join("web.yml").display()
    ))
}

/// What curl saw: its exit code (0, or why the transfer failed), the HTTP status (0 when there
/// was no response), the response headers and body.
#[derive(Debug)]
struct Curl {
    exit: i32,
    status: u16,
    headers: String,
    body: String,
    stderr: String,
}

fn curl(dir: &Path, port: u16, path: &str, args: &[&str]) -> Curl {
    let (head, body) = (dir.join("curl-head"), dir.join("curl-body"));
    let _ = std::fs::remove_file(&head);
    let _ = std::fs::remove_file(&body);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "%{http_code}", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("curl: {e} (run .ci/setup)"));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        headers: std::fs::read_to_string(&head)
            .unwrap_or_default()
            .to_ascii_lowercase(),
        body: std::fs::read_to_string(&body).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

const TRUSTED: [&str; 6] = [
    "--cacert",
    "a-ca.pem",
    "--cert",
    "client.pem",
    "--key",
    "client.key",
];

fn with(extra: &[&str]) -> Vec<String> {
    TRUSTED.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run(dir: &Path, port: u16, path: &str, args: &[String]) -> Curl {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(dir, port, path, &args)
}

/// Waits (at most 20 s) until `ok` holds for a fresh curl result: the files are checked for
/// changes every second.
fn wait_until(what: &str, mut attempt: impl FnMut() -> Curl, ok: impl Fn(&Curl) -> bool) -> Curl {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let result = attempt();
        if ok(&result) {
            return result;
        }
        assert!(Instant::now() < deadline, "never: {what}: {result:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn curl_needs_a_client_certificate_from_the_ca_and_the_password() {
    let work = WorkDir::new();
    let dir = work.0.as_path();
    make_pki(dir);
    std::fs::write(dir.join("web.yml"), web_config(PASSWORD)).expect("web config");
    let lagwatch = start_lagwatch(dir);
    let port = lagwatch.port;
    let password = format!("{USER}:{PASSWORD}");

    // 1. Everything right: the metrics, with the configured header.
    let ok = run(dir, port, "/metrics", &with(&["-u", &password]));
    assert_eq!((ok.exit, ok.status), (0, 200), "{ok:?}");
    assert!(ok.body.contains("lagwatch_build_info{"), "{ok:?}");
    assert!(ok.headers.contains("x-frame-options: deny"), "{ok:?}");
    let page = run(dir, port, "/", &with(&["-u", &password]));
    assert_eq!(page.status, 200, "{page:?}");

    // 2. No password, a wrong one, an unknown user: 401 with a Basic challenge, on `/metrics`
    //    and on `/` (which lists every group).
    let wrong = format!("{USER}:not-{PASSWORD}");
    let unknown = format!("grafana:{PASSWORD}");
    for (path, extra) in [
        ("/metrics", vec![]),
        ("/metrics", vec!["-u", wrong.as_str()]),
        ("/metrics", vec!["-u", unknown.as_str()]),
        ("/", vec![]),
    ] {
        let refused = run(dir, port, path, &with(&extra));
        assert_eq!(
            (refused.exit, refused.status),
            (0, 401),
            "{path} {extra:?}: {refused:?}"
        );
        assert!(
            refused.headers.contains("www-authenticate: basic"),
            "{refused:?}"
        );
        assert!(!refused.body.contains("lagwatch_build_info"), "{refused:?}");
        assert!(
            refused.headers.contains("x-frame-options: deny"),
            "{refused:?}"
        );
    }

    // 3. The probes need no password (TLS and the client certificate still apply).
    for path in ["/healthz", "/readyz"] {
        let probe = run(dir, port, path, &with(&[]));
        assert!(
            probe.status == 200 || probe.status == 503,
            "{path}: {probe:?}"
        );
    }

    // 4. No client certificate, or one from another CA: the TLS handshake fails, no HTTP
    //    status at all (curl 56: the server's "certificate required" / "unknown ca" alert).
    let no_cert = curl(
        dir,
        port,
        "/metrics",
        &["--cacert", "a-ca.pem", "-u", &password],
    );
    assert_ne!(no_cert.exit, 0, "{no_cert:?}");
    assert_eq!(no_cert.status, 0, "{no_cert:?}");
    assert!(
        no_cert.stderr.contains("certificate required"),
        "{no_cert:?}"
    );
    let stranger = curl(
        dir,
        port,
        "/metrics",
        &[
            "--cacert",
            "a-ca.pem",
            "--cert",
            "stranger.pem",
            "--key",
            "stranger.key",
            "-u",
            &password,
        ],
    );
    assert_ne!(stranger.exit, 0, "{stranger:?}");
    assert_eq!(stranger.status, 0, "{stranger:?}");
    assert!(stranger.stderr.contains("unknown ca"), "{stranger:?}");

    // 5. A client that checks the server against the wrong CA refuses it (curl 60).
    let wrong_ca = curl(
        dir,
        port,
        "/metrics",
        &[
            "--cacert",
            "b-ca.pem",
            "--cert",
            "client.pem",
            "--key",
            "client.key",
        ],
    );
    assert_eq!((wrong_ca.exit, wrong_ca.status), (60, 0), "{wrong_ca:?}");

    // 6. Plain HTTP to the TLS port gets no metrics.
    let (plain_port, plain) = (port, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let refused = std::panic::catch_unwind(|| http_get(plain, "/metrics"));
    assert!(
        refused.is_err() || !refused.as_ref().is_ok_and(|(s, _)| *s == 200),
        "plain HTTP on {plain_port} was served"
    );

    // 7. Rotation: a new server certificate (from a new CA) is served without a restart.
    make_ca(dir, "c");
    make_cert(dir, "c", "renewed", true);
    std::fs::copy(dir.join("renewed.key"), dir.join("server.key")).expect("key");
    std::fs::copy(dir.join("renewed.pem"), dir.join("server.pem")).expect("cert");
    let renewed = [
        "--cacert",
        "c-ca.pem",
        "--cert",
        "client.pem",
        "--key",
        "client.key",
        "-u",
        &password,
    ];
    wait_until(
        "the renewed certificate is served",
        || curl(dir, port, "/metrics", &renewed),
        |c| c.status == 200,
    );
    let old = run(dir, port, "/metrics", &with(&["-u", &password]));
    assert_eq!((old.exit, old.status), (60, 0), "{old:?}");

    // 8. A new password applies to the next request; the old one is refused.
    std::fs::write(dir.join("web.yml"), web_config(ROTATED_PASSWORD)).expect("web config");
    let rotated = format!("{USER}:{ROTATED_PASSWORD}");
    let mut args = renewed.to_vec();
    let last = args.len() - 1;
    args[last] = &rotated;
    wait_until(
        "the new password is accepted",
        || curl(dir, port, "/metrics", &args),
        |c| c.status == 200,
    );
    assert_eq!(curl(dir, port, "/metrics", &renewed).status, 401);

    // 9. A broken file keeps the settings in force, and says why.
    std::fs::write(
        dir.join("web.yml"),
        "basic_auth_users: {prometheus: plain}\n",
    )
    .expect("web");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lagwatch
        .log_text()
        .contains("web configuration not reloaded")
    {
        assert!(Instant::now() < deadline, "{}", lagwatch.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(curl(dir, port, "/metrics", &args).status, 200);
    assert_eq!(curl(dir, port, "/metrics", &renewed).status, 401);

    // No password or hash in any log line.
    let log = lagwatch.log_text();
    assert!(log.contains("web configuration reloaded"), "{log}");
    for secret in [PASSWORD, ROTATED_PASSWORD, "$2b$"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = http_get(([127, 0, 0, 1], port).into(), path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

#[test]
fn prometheus_scrapes_over_tls_with_a_client_certificate_and_basic_auth() {
    let work = WorkDir::new();
    let dir = work.0.as_path();
    make_pki(dir);
    std::fs::write(dir.join("web.yml"), web_config(PASSWORD)).expect("web config");
    let lagwatch = start_lagwatch(dir);
    let path = |f: &str| dir.join(f).display().to_string();

    // One job as it should be, and one per refusal.
    let job = |name: &str, tls: &str, auth: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config: {{{tls}}}\n{auth}    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            lagwatch.port
        )
    };
    let client_tls = format!(
        "ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"",
        path("a-ca.pem"),
        path("client.pem"),
        path("client.key")
    );
    let auth = |password: &str| {
        format!("    basic_auth:\n      username: {USER}\n      password: \"{password}\"\n")
    };
    let jobs = [
        job("lagwatch", &client_tls, &auth(PASSWORD)),
        job("no_password", &client_tls, ""),
        job("wrong_password", &client_tls, &auth("guess")),
        job(
            "no_client_cert",
            &format!("ca_file: \"{}\"", path("a-ca.pem")),
            &auth(PASSWORD),
        ),
        job(
            "wrong_ca",
            &format!(
                "ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"",
                path("b-ca.pem"),
                path("client.pem"),
                path("client.key")
            ),
            &auth(PASSWORD),
        ),
    ];
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}",
            jobs.concat()
        ),
    )
    .expect("prometheus config");
    let prom_port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let _prometheus = Process(
        Command::new("prometheus")
            .arg(format!("--config.file={}", path("prometheus.yml")))
            .arg(format!("--storage.tsdb.path={}", path("prom-data")))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("prometheus is installed by .ci/setup"),
    );

    // Every target scraped at least once: its health and last error, by job.
    let deadline = Instant::now() + Duration::from_secs(90);
    let targets = loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", prom_port)).is_ok();
        if ready {
            let answer = get_json(prom_port, "/api/v1/targets");
            let targets: BTreeMap<String, (String, String)> = answer["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["labels"]["job"].as_str().unwrap_or("").to_string(),
                        (
                            t["health"].as_str().unwrap_or("").to_string(),
                            t["lastError"].as_str().unwrap_or("").to_string(),
                        ),
                    )
                })
                .collect();
            if targets.len() == jobs.len() && targets.values().all(|(h, _)| h != "unknown") {
                break targets;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped every target"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(targets["lagwatch"], ("up".to_string(), String::new()));
    let expected_errors = [
        ("no_password", "401 Unauthorized"),
        ("wrong_password", "401 Unauthorized"),
        ("no_client_cert", "certificate required"),
        ("wrong_ca", "certificate signed by unknown authority"),
    ];
    for (job, error) in expected_errors {
        let (health, last_error) = &targets[job];
        assert_eq!(health, "down", "{job}: {last_error}");
        assert!(last_error.contains(error), "{job}: {last_error}");
    }

    // The series Prometheus stored come from lagwatch.
    let query = "/api/v1/query?query=lagwatch_kafka_up%7Bjob%3D%22lagwatch%22%7D";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = get_json(prom_port, query);
        let series = &result["data"]["result"];
        if series.as_array().is_some_and(|s| !s.is_empty()) {
            assert_eq!(series[0]["metric"]["cluster"], "nowhere", "{result}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no lagwatch series in Prometheus"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(lagwatch);
}
