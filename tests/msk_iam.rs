//! AWS MSK IAM tokens compared byte for byte with the tokens AWS's own Python signer
//! (`aws-msk-iam-sasl-signer-python`, pinned in `tests/msk_iam/requirements.txt`, installed into
//! a venv by `.ci/setup`) makes for the same region, credentials and signing time
//! (`tests/msk_iam/sign.py` fixes botocore's clock), and the token source both Kafka clients ask
//! (librdkafka's refresh hook, the native path's SaslAuthenticate) sends exactly that token. The
//! broker side (the token reaching the SASL handshake over both clients, refresh before expiry)
//! is in `tests/oauth.rs`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use lagwatch::kafka::msk_iam::{sign, AwsCredentials, TOKEN_LIFETIME};

/// The venv `.ci/setup` installs the signer into.
fn python() -> PathBuf {
    let cache = std::env::var_os("LAGWATCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lagwatch")))
        .expect("HOME or LAGWATCH_CACHE");
    let python = cache.join("msk-signer/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run .ci/setup",
        python.display()
    );
    python
}

/// The Python signer's token and expiry (ms since the epoch).
fn python_token(region: &str, credentials: &AwsCredentials, seconds: u64) -> (String, u64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/msk_iam/sign.py");
    let out = Command::new(python())
        .arg(script)
        .args([
            region,
            &credentials.access_key_id,
            &credentials.secret_access_key,
            credentials.session_token.as_deref().unwrap_or("-"),
            &seconds.to_string(),
        ])
        .output()
        .expect("run the Python signer");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let token = lines.next().expect("token").to_string();
    let expiry = lines.next().and_then(|l| l.parse().ok()).expect("expiry");
    (token, expiry)
}

#[test]
fn tokens_are_byte_for_byte_those_of_the_python_signer() {
    let credentials = |id: &str, secret: &str, token: Option<&str>| AwsCredentials {
        access_key_id: id.into(),
        secret_access_key: secret.into(),
        session_token: token.map(str::to_string),
    };
    // Why each case: 1 long-term keys (no session token); 2 temporary keys whose session token
    // and secret need percent-encoding (`/`, `+`, `=`); 3 another region and a time just before
    // midnight (the date scope and X-Amz-Date agree); 4 a leap day; 5 a year-2038+ time.
    let cases = [
        (
            "us-east-1",
            credentials(
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                None,
            ),
            1_700_000_000,
        ),
        (
            "eu-west-1",
            credentials(
                "ASIAXAMPLE0000000001",
                "abc+def/ghi=jkl",
                Some("FwoGZXIvYXdzEJr//////////wEaDK+token==with/odd+chars"),
            ),
            1_718_000_000,
        ),
        (
            "ap-southeast-2",
            credentials("AKIDEXAMPLE", "secret", Some("tok")),
            1_735_689_599,
        ),
        (
            "us-gov-west-1",
            credentials("AKIDEXAMPLE", "secret", None),
            1_709_208_000,
        ),
        (
            "eu-central-1",
            credentials("AKIDEXAMPLE", "s", Some("t")),
            2_200_000_000,
        ),
    ];
    for (n, (region, creds, seconds)) in cases.iter().enumerate() {
        let (expected, expiry_ms) = python_token(region, creds, *seconds);
        let ours = sign(
            region,
            creds,
            UNIX_EPOCH + Duration::from_secs(*seconds) + Duration::from_millis(250),
            TOKEN_LIFETIME,
            "aws-msk-iam-sasl-signer-python/1.0.2",
        )
        .expect("token");
        assert_eq!(ours.value, expected, "case {}", n + 1);
        assert_eq!(
            ours.expires_at,
            UNIX_EPOCH + Duration::from_millis(expiry_ms),
            "case {}",
            n + 1
        );
    }
}

#[test]
fn the_token_source_shared_by_both_kafka_clients_sends_the_signed_token_and_keeps_it() {
    use lagwatch::config::{AwsEnvironment, AwsMskIam};
    use lagwatch::kafka::msk_iam::{MskIamTokenSource, USER_AGENT};
    use lagwatch::kafka::oauth::{client_first_message, Method, TokenSource};

    let credentials = AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "s3cret/key".into(),
        session_token: None,
    };
    let settings = AwsMskIam {
        region: "eu-west-1".into(),
        profile: None,
        environment: AwsEnvironment(
            [
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "s3cret/key"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
    };
    // What librdkafka's refresh hook and the native path's SaslAuthenticate both ask.
    let source = TokenSource::new(Method::MskIam(MskIamTokenSource::new(&settings)));
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let token = source.token(start).expect("token");
    let signed =
        sign("eu-west-1", &credentials, start, TOKEN_LIFETIME, USER_AGENT).expect("signed");
    assert_eq!(token.value, signed.value);
    assert_eq!(token.expires_at, start + TOKEN_LIFETIME);
    assert_eq!(
        client_first_message(&token),
        format!("n,,\u{1}auth=Bearer {}\u{1}\u{1}", signed.value)
    );
    // Kept for three quarters of its 15 minutes, then signed again.
    let kept = source
        .token(start + Duration::from_secs(674))
        .expect("token");
    assert_eq!(kept.value, token.value);
    let fresh = source
        .token(start + Duration::from_secs(675))
        .expect("token");
    assert_ne!(fresh.value, token.value);
    assert_eq!(
        fresh.expires_at,
        start + Duration::from_secs(675) + TOKEN_LIFETIME
    );
}
