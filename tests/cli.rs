//! The `lagwatch` binary: configuration errors, check-config, HTTP content negotiation and
//! SIGTERM. No broker needed: the cluster points at a closed port.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lagwatch");

fn write_config(body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(common::unique("lagwatch-cli"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("lagwatch.yaml");
    std::fs::write(&path, body).expect("write config");
    path
}

fn config_on(port: u16) -> String {
    format!(
        r#"
listen: "127.0.0.1:{port}"
poll_interval: 1s
clusters:
  - name: nowhere
    bootstrap_servers: "127.0.0.1:1"
    kafka:
      sasl.password: "hunter2-secret"
"#
    )
}

#[test]
fn check_config_accepts_the_shipped_files_and_redacts_secrets() {
    for file in ["config/example.yaml", "config/lagwatch.yaml"] {
        let out = Command::new(BIN)
            .args(["check-config", "--config", file])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = write_config(&config_on(9));
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!stdout.contains("hunter2-secret"), "{stdout}");
    assert!(stdout.contains("<redacted>"), "{stdout}");
}

/// Both `check-config` and the daemon refuse the file at `path` with exit code 2 and a message
/// containing `expected`, and print nothing on standard output (no "ok").
fn assert_refused(path: &std::path::Path, expected: &str) {
    for args in [vec!["check-config", "--config"], vec!["--config"]] {
        let out = Command::new(BIN)
            .args(&args)
            .arg(path)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let config = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(out.status.code(), Some(2), "{args:?} {config}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr} should say {expected}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed as ok");
    }
}

#[test]
fn bad_configuration_exits_2_naming_the_field() {
    let cases = [
        (
            "clusters:\n  - name: a\n    bootstrap_servers: x:1\n    poll_interval: 3x\n",
            "clusters[0].poll_interval: invalid duration \"3x\"",
        ),
        (
            "clusters:\n  - name: a\n    bootstrap_servers: x:1\n    colour: blue\n",
            "clusters[0]",
        ),
        ("poll_intervall: 5s\nclusters: []\n", "poll_intervall"),
    ];
    for (yaml, expected) in cases {
        assert_refused(&write_config(yaml), expected);
    }
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/lagwatch.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_config_creates_the_kafka_client_without_connecting() {
    // A "broker" that only counts connections: one made and closed stays in its backlog.
    let broker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = broker.local_addr().expect("address").port();
    let path = write_config(&format!(
        "clusters:\n  - name: a\n    bootstrap_servers: \"127.0.0.1:{port}\"\n"
    ));
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    broker.set_nonblocking(true).expect("nonblocking");
    match broker.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("check-config connected to the broker: {other:?}"),
    }
}

#[test]
fn what_librdkafka_or_the_file_system_would_refuse_exits_2_before_serving() {
    let dir = std::env::temp_dir().join(common::unique("lagwatch-cli-early"));
    std::fs::create_dir_all(&dir).expect("dir");
    let not_a_cert = dir.join("garbage.pem");
    std::fs::write(&not_a_cert, "not a certificate\n").expect("write");
    std::fs::write(
        dir.join("web.yml"),
        "tls_server_config:\n  cert_file: server.pem\n",
    )
    .expect("web");
    std::fs::write(dir.join("web-typo.yml"), "basic_auth_user: {}\n").expect("web");
    let cluster = |kafka: &str| {
        format!(
            "listen: \"127.0.0.1:{}\"\nclusters:\n  - name: a\n    bootstrap_servers: \"127.0.0.1:1\"\n    kafka: {{{kafka}}}\n",
            common::free_port()
        )
    };
    let cases = [
        // 1. A misspelt property.
        (
            cluster("securty.protocol: ssl"),
            "clusters[0].kafka.securty.protocol: no such librdkafka property".to_string(),
        ),
        // 2. A value librdkafka does not take.
        (
            cluster("security.protocol: ssl2"),
            "clusters[0].kafka.security.protocol: invalid value: ".to_string(),
        ),
        // 3. A certificate file that is not there.
        (
            cluster("security.protocol: ssl, ssl.ca.location: /nonexistent/ca.pem"),
            "clusters[0].kafka.ssl.ca.location: cannot read \"/nonexistent/ca.pem\": No such file or directory".to_string(),
        ),
        // 4. A certificate file librdkafka cannot load: creating the client fails.
        (
            cluster(&format!(
                "security.protocol: ssl, ssl.ca.location: \"{}\"",
                not_a_cert.display()
            )),
            "clusters[0].kafka: cannot create the Kafka client: ".to_string(),
        ),
        // 5. A web configuration whose certificate is missing.
        (
            format!("web_config_file: web.yml\n{}", cluster("")),
            format!(
                "web_config_file: {}: tls_server_config.key_file: is required",
                dir.join("web.yml").display()
            ),
        ),
        // 6. A web configuration with a misspelt key.
        (
            format!("web_config_file: web-typo.yml\n{}", cluster("")),
            format!(
                "web_config_file: {}: basic_auth_user: unknown field `basic_auth_user`",
                dir.join("web-typo.yml").display()
            ),
        ),
    ];
    let path = dir.join("lagwatch.yaml");
    for (yaml, expected) in cases {
        std::fs::write(&path, &yaml).expect("config");
        assert_refused(&path, &expected);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `METHOD path` with an empty body: the response head and body.
fn request(port: u16, method: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_string(), body.to_string())
}

fn get_raw(port: u16, path: &str, headers: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    (head, raw[split + 4..].to_vec())
}

/// The daemon with `args` on the configuration of `config_on(port)`, its log piped, once it
/// listens.
fn start_daemon(port: u16, args: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let path = write_config(&config_on(port));
    let child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "lagwatch did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, path)
}

#[test]
fn serves_text_openmetrics_and_gzip_then_exits_0_on_sigterm() {
    let port = common::free_port();
    let (mut child, _) = start_daemon(port, &[]);

    let (head, body) = get_raw(port, "/metrics", "");
    let text = String::from_utf8_lossy(&body).to_string();
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(text.contains("lagwatch_build_info{"), "{text}");
    assert!(
        text.contains("lagwatch_kafka_up{cluster=\"nowhere\"} 0"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));
    assert!(
        text.contains("# TYPE lagwatch_poll_errors_total counter"),
        "{text}"
    );

    let (head, body) = get_raw(
        port,
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0\r\n",
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(String::from_utf8_lossy(&body).trim_end().ends_with("# EOF"));

    let (head, body) = get_raw(port, "/metrics", "Accept-Encoding: gzip\r\n");
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{head}"
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut unzipped)
        .expect("gzip body");
    assert!(unzipped.contains("lagwatch_build_info{"));

    assert!(get_raw(port, "/healthz", "").0.starts_with("HTTP/1.1 200"));
    // Reload over HTTP is off without --web.enable-reload.
    let (head, _) = request(port, "POST", "/-/reload");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // SIGTERM: clean exit 0, promptly, even with a poll stuck on an unreachable broker.
    let pid = child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            let _ = child
                .stderr
                .take()
                .map(|mut e| e.read_to_string(&mut stderr));
            assert_eq!(status.code(), Some(0), "{stderr}");
            assert!(
                !stderr.contains("hunter2-secret"),
                "secrets never reach the log"
            );
            assert!(stderr.contains("lagwatch started"), "{stderr}");
            // Written to a pipe, not a terminal: no colour codes.
            assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lagwatch did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn json_logs_are_one_object_a_line_and_carry_no_secret() {
    let port = common::free_port();
    let (child, _) = start_daemon(port, &["--log-format", "json", "--log-level", "trace"]);
    // Long enough for a poll of the closed port to fail and be logged.
    assert!(get_raw(port, "/healthz", "").0.starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut messages = Vec::new();
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        messages.push(
            value["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        assert!(!line.contains("hunter2-secret"), "{line}");
        assert!(!line.contains('\u{1b}'), "{line}");
    }
    assert!(messages.iter().any(|m| m == "lagwatch started"), "{stderr}");
    assert!(messages.iter().any(|m| m == "shutting down"), "{stderr}");
}

#[test]
fn sighup_and_post_reload_apply_a_good_file_and_keep_the_running_one_on_a_bad_file() {
    let port = common::free_port();
    let (child, path) = start_daemon(port, &["--web.enable-reload", "--log-format", "json"]);
    let metrics = || String::from_utf8_lossy(&get_raw(port, "/metrics", "").1).to_string();
    let wait_for = |what: &str, check: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = metrics();
            if check(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "never: {what}:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let pid = child.id() as libc::pid_t;
    let hangup = || {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };
    assert!(metrics().contains("lagwatch_config_last_reload_successful 1"));

    // 1. SIGHUP with a file that does not load: still running, the old clusters served.
    std::fs::write(
        &path,
        config_on(port).replace("poll_interval: 1s", "poll_interval: 3x"),
    )
    .expect("config");
    hangup();
    let text = wait_for("the failed reload is shown", &|t| {
        t.contains("lagwatch_config_last_reload_successful 0")
    });
    assert!(
        text.contains("lagwatch_kafka_up{cluster=\"nowhere\"}"),
        "{text}"
    );

    // 2. POST /-/reload says why.
    let (head, body) = request(port, "POST", "/-/reload");
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert!(
        body.contains("poll_interval: invalid duration \"3x\""),
        "{body}"
    );

    // 3. A good file adding a cluster, over HTTP: applied at once.
    let two = format!(
        "{}  - name: elsewhere\n    bootstrap_servers: \"127.0.0.1:2\"\n",
        config_on(port)
    );
    std::fs::write(&path, &two).expect("config");
    let (head, body) = request(port, "POST", "/-/reload");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let text = metrics();
    assert!(
        text.contains("lagwatch_config_last_reload_successful 1"),
        "{text}"
    );
    assert!(
        text.contains("lagwatch_kafka_up{cluster=\"elsewhere\"}"),
        "{text}"
    );
    assert!(
        text.contains("lagwatch_kafka_up{cluster=\"nowhere\"}"),
        "{text}"
    );

    // 4. SIGHUP with `nowhere` removed and `listen` changed: `nowhere` stops, the port stays.
    let other_port = common::free_port();
    let one = format!(
        "listen: \"127.0.0.1:{other_port}\"\nclusters:\n  - name: elsewhere\n    bootstrap_servers: \"127.0.0.1:2\"\n"
    );
    std::fs::write(&path, one).expect("config");
    hangup();
    let text = wait_for("nowhere is removed", &|t| {
        !t.contains("cluster=\"nowhere\"")
    });
    assert!(
        text.contains("lagwatch_kafka_up{cluster=\"elsewhere\"}"),
        "{text}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", other_port)).is_err());

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    for message in [
        "configuration not reloaded: keeping the one in force",
        "configuration reloaded",
        "changed in the configuration file: takes effect at the next start",
    ] {
        assert!(log.contains(message), "{message}:\n{log}");
    }
    assert!(!log.contains("hunter2-secret"), "{log}");
}
