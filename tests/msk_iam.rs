//! AWS MSK IAM tokens compared byte for byte with the tokens AWS's own Python signer
//! (`aws-msk-iam-sasl-signer-python`, pinned in `tests/msk_iam/requirements.txt`, installed into
//! a venv by `.ci/setup`) makes for the same region, credentials and signing time
//! (`tests/msk_iam/sign.py` fixes botocore's clock). The broker side (the token reaching the
//! SASL handshake, refresh before expiry) is in `tests/oauth.rs`.

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
