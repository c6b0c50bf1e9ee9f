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
        let path = write_config(yaml);
        for args in [vec!["check-config", "--config"], vec!["--config"]] {
            let out = Command::new(BIN)
                .args(&args)
                .arg(&path)
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {yaml}: {stderr}");
            assert!(
                stderr.contains(expected),
                "{args:?}: {stderr} should name {expected}"
            );
        }
    }
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/lagwatch.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
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

#[test]
fn serves_text_openmetrics_and_gzip_then_exits_0_on_sigterm() {
    let port = common::free_port();
    let path = write_config(&config_on(port));
    let mut child = Command::new(BIN)
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
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lagwatch did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
