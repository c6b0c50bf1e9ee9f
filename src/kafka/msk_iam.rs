//! AWS MSK IAM authentication tokens: the OAUTHBEARER token of an MSK cluster is a SigV4
//! presigned `GET https://kafka.{region}.amazonaws.com/?Action=kafka-cluster:Connect` URL
//! (service `kafka-cluster`, `X-Amz-Expires` 900 s, only `host` signed, the empty payload's
//! SHA-256), with a `User-Agent` parameter appended after signing, encoded as
//! base64url without padding — exactly what AWS's MSK IAM SASL signer libraries build (the
//! tests compare tokens with the Python signer's byte for byte).
//!
//! [`MskIamTokenSource`] is the token source of one cluster: it loads credentials from the
//! standard AWS chain on every call (so rotated credentials are picked up) and signs a fresh
//! token. librdkafka's OAUTHBEARER refresh hook calls it (`StatsContext::generate_oauth_token`),
//! at 80 % of each token's lifetime; any other Kafka client of lagwatch can call it the same way.
//!
//! Credentials, in the AWS SDKs' order: the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`; profile from the configuration,
//! else `AWS_PROFILE`, else `default`), then web identity (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE`
//! and `AWS_ROLE_ARN`, STS `AssumeRoleWithWebIdentity` over HTTPS), then container credentials
//! (EKS Pod Identity and ECS:
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the token of
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`, over plain
//! HTTP to the node-local agent). The environment is the snapshot the configuration took at
//! start.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::{AwsEnvironment, AwsMskIam};

/// `X-Amz-Expires` of every token, as AWS's signers set it.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The `User-Agent` parameter of lagwatch's tokens (MSK logs it).
pub const USER_AGENT: &str = concat!("lagwatch/", env!("CARGO_PKG_VERSION"));
const SERVICE: &str = "kafka-cluster";
/// SHA-256 of the empty body of the signed GET.
const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How long a request to the container credentials agent may take.
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(5);

/// AWS credentials. `Debug` shows the access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A signed token and when it expires. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct MskToken {
    pub value: String,
    pub expires_at: SystemTime,
}

impl fmt::Debug for MskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MskToken")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why no token could be made. Messages name variables, files and URLs, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum MskIamError {
    #[error("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in {file}, or run with EKS Pod Identity / ECS container credentials")]
    NoCredentials { file: String },
    #[error("AWS shared credentials file {file}: profile {profile:?} has no aws_access_key_id and aws_secret_access_key")]
    IncompleteProfile { file: String, profile: String },
    #[error("AWS web identity (AssumeRoleWithWebIdentity) at {url}: {reason}")]
    WebIdentity { url: String, reason: String },
    #[error("AWS container credentials from {url}: {reason}")]
    Container { url: String, reason: String },
    #[error("the signing time is before 1970")]
    Clock,
}

/// Signs an MSK IAM token for `region` with `credentials` at `now`, valid for `lifetime`.
pub fn sign(
    region: &str,
    credentials: &AwsCredentials,
    now: SystemTime,
    lifetime: Duration,
    user_agent: &str,
) -> Result<MskToken, MskIamError> {
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| MskIamError::Clock)?
        .as_secs();
    let signed_at = UNIX_EPOCH + Duration::from_secs(seconds);
    // 2023-11-14T22:13:20Z → 20231114T221320Z
    let amz_date: String = humantime::format_rfc3339_seconds(signed_at)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let day = &amz_date[..8];
    let host = format!("kafka.{region}.amazonaws.com");
    let scope = format!("{day}/{region}/{SERVICE}/aws4_request");
    // Query parameters in the order AWS's signers write them; the canonical query sorts them.
    let mut params: Vec<(&str, String)> = vec![
        ("Action", "kafka-cluster:Connect".to_string()),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        (
            "X-Amz-Credential",
            format!("{}/{scope}", credentials.access_key_id),
        ),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", lifetime.as_secs().to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    if let Some(token) = &credentials.session_token {
        params.push(("X-Amz-Security-Token", token.clone()));
    }
    let mut sorted: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    sorted.sort();
    let canonical_query = join_query(&sorted);
    let canonical_request =
        format!("GET\n/\n{canonical_query}\nhost:{host}\n\nhost\n{EMPTY_PAYLOAD_SHA256}");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        day,
    );
    for part in [region, SERVICE, "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let signature = hex(&hmac_sha256(&key, &string_to_sign));
    params.push(("X-Amz-Signature", signature));
    params.push(("User-Agent", user_agent.to_string()));
    let query: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    let url = format!("https://{host}/?{}", join_query(&query));
    Ok(MskToken {
        value: URL_SAFE_NO_PAD.encode(url),
        expires_at: signed_at + lifetime,
    })
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4's URI encoding: every byte but the RFC 3986 unreserved characters as `%XX`.
pub(crate) fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn join_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The token source of one MSK cluster.
#[derive(Debug, Clone)]
pub struct MskIamTokenSource {
    pub region: String,
    /// Profile of the shared credentials file; `None`: `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// The credential chain's variables as the process started with them.
    pub environment: AwsEnvironment,
    pub lifetime: Duration,
}

impl MskIamTokenSource {
    /// The source of a cluster's tokens, valid [`TOKEN_LIFETIME`] each.
    pub fn new(settings: &AwsMskIam) -> MskIamTokenSource {
        MskIamTokenSource {
            region: settings.region.clone(),
            profile: settings.profile.clone(),
            environment: settings.environment.clone(),
            lifetime: TOKEN_LIFETIME,
        }
    }
}

impl MskIamTokenSource {
    /// A fresh token signed at `now` with the credentials the chain finds now.
    pub fn token(&self, now: SystemTime) -> Result<MskToken, MskIamError> {
        let credentials = self.credentials()?;
        sign(&self.region, &credentials, now, self.lifetime, USER_AGENT)
    }

    /// The first credentials of the chain: environment, shared file, container.
    pub fn credentials(&self) -> Result<AwsCredentials, MskIamError> {
        let env = &self.environment;
        if let (Some(id), Some(secret)) = (
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
        ) {
            return Ok(AwsCredentials {
                access_key_id: id.to_string(),
                secret_access_key: secret.to_string(),
                session_token: env.get("AWS_SESSION_TOKEN").map(str::to_string),
            });
        }
        let file = self.credentials_file();
        if let Some(credentials) = self.profile_credentials(&file)? {
            return Ok(credentials);
        }
        if let (Some(token_file), Some(role)) = (
            env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
            env.get("AWS_ROLE_ARN"),
        ) {
            return self.web_identity_credentials(token_file, role);
        }
        if let Some(url) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            return self.container_credentials(url);
        }
        if let Some(path) = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            return self.container_credentials(&format!("http://169.254.170.2{path}"));
        }
        Err(MskIamError::NoCredentials {
            file: file.display().to_string(),
        })
    }

    fn credentials_file(&self) -> PathBuf {
        match self.environment.get("AWS_SHARED_CREDENTIALS_FILE") {
            Some(f) => PathBuf::from(f),
            None => {
                PathBuf::from(self.environment.get("HOME").unwrap_or("/")).join(".aws/credentials")
            }
        }
    }

    /// The profile's keys from the shared credentials file; `None` when the file or the
    /// profile does not exist.
    fn profile_credentials(
        &self,
        file: &std::path::Path,
    ) -> Result<Option<AwsCredentials>, MskIamError> {
        let Ok(text) = std::fs::read_to_string(file) else {
            return Ok(None);
        };
        let profile = self
            .profile
            .as_deref()
            .or(self.environment.get("AWS_PROFILE"))
            .unwrap_or("default");
        let Some(keys) = ini_section(&text, profile) else {
            return Ok(None);
        };
        match (
            keys.get("aws_access_key_id"),
            keys.get("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => Ok(Some(AwsCredentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: keys.get("aws_session_token").cloned(),
            })),
            _ => Err(MskIamError::IncompleteProfile {
                file: file.display().to_string(),
                profile: profile.to_string(),
            }),
        }
    }

    /// EKS IRSA: STS `AssumeRoleWithWebIdentity` with the projected service-account token (read
    /// at every call: the kubelet rotates it), a POST over HTTPS to the regional STS endpoint
    /// (`AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else `https://sts.{AWS_REGION}.amazonaws.com`,
    /// the cluster's region when `AWS_REGION` is unset). Unsigned: the token is the proof.
    fn web_identity_credentials(
        &self,
        token_file: &str,
        role_arn: &str,
    ) -> Result<AwsCredentials, MskIamError> {
        let env = &self.environment;
        let endpoint = match env
            .get("AWS_ENDPOINT_URL_STS")
            .or(env.get("AWS_ENDPOINT_URL"))
        {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let region = env
                    .get("AWS_REGION")
                    .or(env.get("AWS_DEFAULT_REGION"))
                    .unwrap_or(&self.region);
                format!("https://sts.{region}.amazonaws.com")
            }
        };
        let fail = |reason: String| MskIamError::WebIdentity {
            url: endpoint.clone(),
            reason,
        };
        let token = std::fs::read_to_string(token_file).map_err(|e| {
            fail(format!(
                "cannot read AWS_WEB_IDENTITY_TOKEN_FILE {token_file}: {e}"
            ))
        })?;
        let session = env.get("AWS_ROLE_SESSION_NAME").unwrap_or("lagwatch");
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session),
            ("WebIdentityToken", token.trim()),
        ];
        let body: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (uri_encode(k), uri_encode(v)))
            .collect();
        let (status, answer) = http_post(
            &format!("{endpoint}/"),
            &join_query(&body),
            &[],
            None,
            CONTAINER_TIMEOUT,
        )
        .map_err(|e| fail(e.to_string()))?;
        if status != 200 {
            let code = xml_text(&answer, "Code").unwrap_or_default();
            let message = xml_text(&answer, "Message").unwrap_or_default();
            return Err(fail(format!("HTTP status {status}: {code} {message}")));
        }
        match (
            xml_text(&answer, "AccessKeyId"),
            xml_text(&answer, "SecretAccessKey"),
        ) {
            (Some(id), Some(secret)) => Ok(AwsCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: xml_text(&answer, "SessionToken"),
            }),
            _ => Err(fail(
                "no AccessKeyId and SecretAccessKey in the answer".into(),
            )),
        }
    }

    /// EKS Pod Identity / ECS: `GET url` with the authorization token, answering
    /// `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}`. Plain HTTP only: the agents
    /// listen on link-local or loopback addresses.
    fn container_credentials(&self, url: &str) -> Result<AwsCredentials, MskIamError> {
        let fail = |reason: String| MskIamError::Container {
            url: url.to_string(),
            reason,
        };
        let env = &self.environment;
        let authorization = match env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("cannot read token file {path}: {e}")))?
                    .trim()
                    .to_string(),
            ),
            None => env
                .get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
                .map(str::to_string),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| fail("only http:// URLs are supported".into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let address = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let body = http_get(&address, authority, path, authorization.as_deref())
            .map_err(|e| fail(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| fail(format!("not JSON: {e}")))?;
        let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_string);
        match (field("AccessKeyId"), field("SecretAccessKey")) {
            (Some(id), Some(secret)) => Ok(AwsCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: field("Token"),
            }),
            _ => Err(fail(
                "no AccessKeyId and SecretAccessKey in the answer".into(),
            )),
        }
    }
}

/// A form POST with libcurl (HTTPS with the CA certificates of `ca`, a file or a directory,
/// else the system's) and `headers` besides the form's content type; the status and body.
/// Also the OIDC token request (`kafka::oauth`).
pub(crate) fn http_post(
    url: &str,
    body: &str,
    headers: &[String],
    ca: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<(u32, String), curl::Error> {
    let mut easy = curl::easy::Easy::new();
    easy.url(url)?;
    match ca {
        Some(dir) if dir.is_dir() => easy.capath(dir)?,
        Some(file) => easy.cainfo(file)?,
        None => {}
    }
    easy.post(true)?;
    easy.post_fields_copy(body.as_bytes())?;
    easy.timeout(timeout)?;
    let mut list = curl::easy::List::new();
    list.append("Content-Type: application/x-www-form-urlencoded")?;
    for header in headers {
        list.append(header)?;
    }
    easy.http_headers(list)?;
    let mut answer = Vec::new();
    {
        let mut transfer = easy.transfer();
        transfer.write_function(|data| {
            answer.extend_from_slice(data);
            Ok(data.len())
        })?;
        transfer.perform()?;
    }
    Ok((
        easy.response_code()?,
        String::from_utf8_lossy(&answer).to_string(),
    ))
}

/// The text of the first `<tag>…</tag>` of an STS answer (its values need no unescaping but
/// `&amp;`-style entities, which keys and tokens never contain).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

/// One `GET` over HTTP/1.1 with `Connection: close`; the body of a 200 answer.
fn http_get(
    address: &str,
    host: &str,
    path: &str,
    authorization: Option<&str>,
) -> std::io::Result<String> {
    use std::net::ToSocketAddrs;
    let target = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, CONTAINER_TIMEOUT)?;
    stream.set_read_timeout(Some(CONTAINER_TIMEOUT))?;
    stream.set_write_timeout(Some(CONTAINER_TIMEOUT))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n");
    if let Some(a) = authorization {
        request.push_str(&format!("Authorization: {a}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.take(1 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(std::io::Error::other(format!("HTTP status {status}")));
    }
    Ok(body.to_string())
}

/// The keys of `[section]` in an INI file (`key = value`, `#` and `;` comments).
fn ini_section(text: &str, section: &str) -> Option<BTreeMap<String, String>> {
    let mut current: Option<&str> = None;
    let mut found = None::<BTreeMap<String, String>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim());
            if current == Some(section) {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        if current == Some(section) {
            if let (Some(keys), Some((k, v))) = (found.as_mut(), line.split_once('=')) {
                keys.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("tok/en+1=".into()),
        }
    }

    #[test]
    fn tokens_are_what_the_python_signer_makes() {
        // aws-msk-iam-sasl-signer-python 1.0.2, us-east-1, these credentials, signed at
        // 1700000000 (tests/msk_iam/sign.py); tests/msk_iam.rs compares more cases live.
        let token = sign(
            "us-east-1",
            &example(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            TOKEN_LIFETIME,
            "aws-msk-iam-sasl-signer-python/1.0.2",
        )
        .expect("token");
        assert_eq!(token.value, "aHR0cHM6Ly9rYWZrYS51cy1lYXN0LTEuYW1hem9uYXdzLmNvbS8_QWN0aW9uPWthZmthLWNsdXN0ZXIlM0FDb25uZWN0JlgtQW16LUFsZ29yaXRobT1BV1M0LUhNQUMtU0hBMjU2JlgtQW16LUNyZWRlbnRpYWw9QUtJREVYQU1QTEUlMkYyMDIzMTExNCUyRnVzLWVhc3QtMSUyRmthZmthLWNsdXN0ZXIlMkZhd3M0X3JlcXVlc3QmWC1BbXotRGF0ZT0yMDIzMTExNFQyMjEzMjBaJlgtQW16LUV4cGlyZXM9OTAwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCZYLUFtei1TZWN1cml0eS1Ub2tlbj10b2slMkZlbiUyQjElM0QmWC1BbXotU2lnbmF0dXJlPWI5MzdmNGIzM2NhNTZhZWJiMTk0NzBlMDQ0NjBkNzg5ZjY0MDZlODNkOTcwMDMyZTFiY2Q3ZTExZTRkNjYwNjcmVXNlci1BZ2VudD1hd3MtbXNrLWlhbS1zYXNsLXNpZ25lci1weXRob24lMkYxLjAuMg");
        assert_eq!(
            token.expires_at,
            UNIX_EPOCH + Duration::from_millis(1_700_000_900_000)
        );
    }

    fn source(vars: &[(&str, &str)], profile: Option<&str>) -> MskIamTokenSource {
        MskIamTokenSource {
            region: "eu-west-1".into(),
            profile: profile.map(str::to_string),
            environment: AwsEnvironment(
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            lifetime: TOKEN_LIFETIME,
        }
    }

    #[test]
    fn the_chain_takes_the_environment_then_the_profile_file() {
        let dir = std::env::temp_dir().join(format!("msk-iam-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n# team\n[monitoring]\naws_access_key_id=AKIDMON\naws_secret_access_key=s2\naws_session_token=t2\n[broken]\naws_access_key_id=AKIDX\n",
        )
        .expect("file");
        let f = file.display().to_string();
        let id = |s: &MskIamTokenSource| s.credentials().map(|c| c.access_key_id);
        // 1. The environment wins over the file.
        let env = source(
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "s0"),
                ("AWS_SHARED_CREDENTIALS_FILE", &f),
            ],
            None,
        );
        assert_eq!(id(&env).ok().as_deref(), Some("AKIDENV"));
        // 2. Without it, the default profile.
        let default = source(&[("AWS_SHARED_CREDENTIALS_FILE", &f)], None);
        assert_eq!(id(&default).ok().as_deref(), Some("AKIDDEFAULT"));
        // 3. AWS_PROFILE picks another profile, with its session token.
        let named = source(
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", &f),
                ("AWS_PROFILE", "monitoring"),
            ],
            None,
        );
        let c = named.credentials().expect("monitoring");
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKIDMON", Some("t2"))
        );
        // 4. The configured profile wins over AWS_PROFILE.
        let configured = source(
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", &f),
                ("AWS_PROFILE", "monitoring"),
            ],
            Some("default"),
        );
        assert_eq!(id(&configured).ok().as_deref(), Some("AKIDDEFAULT"));
        // 5. A profile without its secret is an error naming the file and profile.
        let broken = source(&[("AWS_SHARED_CREDENTIALS_FILE", &f)], Some("broken"));
        let e = broken.credentials().expect_err("incomplete").to_string();
        assert!(e.contains(&f) && e.contains("broken"), "{e}");
        // 6. Nothing anywhere: the error says where it looked.
        let none = source(&[("HOME", "/nonexistent")], None);
        let e = none.credentials().expect_err("none").to_string();
        assert!(e.contains("/nonexistent/.aws/credentials"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn keys(c: &AwsCredentials) -> (&str, &str, Option<&str>) {
        (
            c.access_key_id.as_str(),
            c.secret_access_key.as_str(),
            c.session_token.as_deref(),
        )
    }

    /// A scratch directory holding a token file with `content`; returns both paths.
    fn token_file(test: &str, content: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("msk-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, content).expect("token");
        let path = file.display().to_string();
        (dir, path)
    }

    #[test]
    fn container_credentials_come_from_the_agent_with_its_authorization_token() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let agent = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).expect("read");
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = r#"{"AccessKeyId":"ASIAPOD","SecretAccessKey":"pod-secret","Token":"pod-token","Expiration":"2030-01-01T00:00:00Z"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            request
        });
        let (dir, tf) = token_file("pod", "eks-pod-identity-token\n");
        let url = format!("http://127.0.0.1:{port}/v1/credentials");
        let s = source(
            &[
                ("HOME", "/nonexistent"),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &tf),
            ],
            None,
        );
        let c = s.credentials().expect("pod identity");
        assert_eq!(keys(&c), ("ASIAPOD", "pod-secret", Some("pod-token")));
        let request = agent.join().expect("agent");
        assert!(
            request.starts_with("GET /v1/credentials HTTP/1.1\r\n")
                && request.contains("\r\nAuthorization: eks-pod-identity-token\r\n"),
            "{request}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fake STS on a loopback port answering one request with `status` and `body`; returns
    /// the endpoint and the request it received.
    fn fake_sts(
        status: &'static str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            // Headers, then the form body (its length is small: one read after the headers).
            while let Ok(n) = stream.read(&mut buf) {
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            String::from_utf8_lossy(&request).to_string()
        });
        (format!("http://127.0.0.1:{port}"), handle)
    }

    #[test]
    fn web_identity_credentials_come_from_sts_with_the_projected_token() {
        let (dir, tf) = token_file("irsa", "eyJhbGciOi.projected+token/x\n");
        let irsa = |endpoint: &str| {
            source(
                &[
                    ("HOME", "/nonexistent"),
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", &tf),
                    ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/lagwatch"),
                    ("AWS_ENDPOINT_URL_STS", endpoint),
                ],
                None,
            )
        };
        let (endpoint, sts) = fake_sts(
            "200 OK",
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAIRSA</AccessKeyId><SecretAccessKey>irsa-secret</SecretAccessKey><SessionToken>irsa-session</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        );
        let s = irsa(&endpoint);
        let c = s.credentials().expect("web identity");
        assert_eq!(keys(&c), ("ASIAIRSA", "irsa-secret", Some("irsa-session")));
        let request = sts.join().expect("sts");
        assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
        let body = request.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        assert_eq!(
            body,
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Flagwatch&RoleSessionName=lagwatch&WebIdentityToken=eyJhbGciOi.projected%2Btoken%2Fx"
        );

        // STS refusing names its error code and message, never the token.
        let (endpoint, sts) = fake_sts(
            "403 Forbidden",
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>",
        );
        let s = irsa(&endpoint);
        let e = s.credentials().expect_err("refused").to_string();
        let _ = sts.join();
        assert!(
            e.contains("HTTP status 403: AccessDenied Not authorized") && !e.contains("projected"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let shown = format!("{:?}", example());
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("tok/en"),
            "{shown}"
        );
        let token = sign(
            "us-east-1",
            &example(),
            SystemTime::now(),
            TOKEN_LIFETIME,
            USER_AGENT,
        )
        .expect("token");
        assert!(!format!("{token:?}").contains(&token.value[..20]));
        let env = AwsEnvironment(BTreeMap::from([(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "zzsecretzz".to_string(),
        )]));
        assert_eq!(format!("{env:?}"), "[\"AWS_SECRET_ACCESS_KEY\"]");
    }
}
