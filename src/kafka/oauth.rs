//! OAUTHBEARER tokens (KIP-255) from the token source librdkafka would use for the same
//! cluster: AWS MSK IAM ([`MskIamTokenSource`], the cluster's `aws_msk_iam`), an OIDC
//! client-credentials grant (`sasl.oauthbearer.method: oidc`), or the unsecured JWT of
//! `enable.sasl.oauthbearer.unsecure.jwt` (`sasl.oauthbearer.config`). librdkafka fetches OIDC
//! and unsecured tokens itself and asks for MSK IAM tokens through its refresh hook
//! (`StatsContext`); lagwatch's own protocol path asks a [`TokenSource`] for every method. A
//! token is kept until three quarters of its lifetime have passed, then a fresh one is made.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use super::msk_iam::{http_post, uri_encode, MskIamError, MskIamTokenSource};
use crate::config::AwsMskIam;

/// How long a request to an OIDC token endpoint may take.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bearer token, who it names and when it expires. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    pub value: String,
    pub principal: String,
    pub expires_at: SystemTime,
    /// SASL extensions sent beside the token (`sasl.oauthbearer.extensions`, or the
    /// `extension_NAME=value` pairs of an unsecured JWT's configuration).
    pub extensions: Vec<(String, String)>,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("value", &"<redacted>")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// Why no token could be had. Messages name URLs and properties, never secrets or tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    MskIam(#[from] MskIamError),
    #[error("OAUTHBEARER token endpoint {url}: {reason}")]
    Endpoint { url: String, reason: String },
    #[error("the OAUTHBEARER token from {url} expired {seconds} s ago")]
    Expired { url: String, seconds: u64 },
}

/// Where a cluster's tokens come from.
#[derive(Debug, Clone)]
pub enum Method {
    MskIam(MskIamTokenSource),
    Oidc(Oidc),
    Unsecured(Unsecured),
}

/// `sasl.oauthbearer.method: oidc`: the client-credentials grant.
#[derive(Clone, PartialEq, Eq)]
pub struct Oidc {
    pub token_endpoint: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub extensions: Vec<(String, String)>,
    /// `https.ca.location`: the CA certificates (file or directory) the token endpoint's
    /// certificate is checked against; the system's without it (or with `probe`).
    pub ca: Option<PathBuf>,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish()
    }
}

/// `enable.sasl.oauthbearer.unsecure.jwt`: an unsigned JWT built from `sasl.oauthbearer.config`
/// (`principal=NAME [principalClaimName=sub] [scopeClaimName=scope] [scope=a,b]
/// [lifeSeconds=3600] [extension_NAME=value ...]`), as librdkafka builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsecured {
    pub principal: String,
    pub principal_claim: String,
    pub scope_claim: String,
    pub scope: Vec<String>,
    pub life: Duration,
    pub extensions: Vec<(String, String)>,
}

/// One cluster's token source, with the token it last made.
#[derive(Debug)]
pub struct TokenSource {
    method: Method,
    /// The last token and when it was made.
    cached: Mutex<Option<(SystemTime, BearerToken)>>,
}

impl TokenSource {
    pub fn new(method: Method) -> TokenSource {
        TokenSource {
            method,
            cached: Mutex::new(None),
        }
    }

    /// The token source librdkafka would use for a cluster's `kafka:` properties (`get`) with
    /// OAUTHBEARER, and `aws_msk_iam`; `Err` says why there is none lagwatch can use.
    pub fn from_properties(
        get: &dyn Fn(&str) -> Option<String>,
        msk_iam: Option<&AwsMskIam>,
    ) -> Result<TokenSource, String> {
        if let Some(settings) = msk_iam {
            return Ok(TokenSource::new(Method::MskIam(MskIamTokenSource::new(
                settings,
            ))));
        }
        let method = get("sasl.oauthbearer.method").unwrap_or_else(|| "default".into());
        if method.eq_ignore_ascii_case("oidc") {
            if get("https.ca.pem").is_some() {
                return Err(
                    "the property https.ca.pem is not read by lagwatch's own protocol path".into(),
                );
            }
            let required = |key: &str| {
                get(key)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("sasl.oauthbearer.method oidc needs {key}"))
            };
            return Ok(TokenSource::new(Method::Oidc(Oidc {
                token_endpoint: required("sasl.oauthbearer.token.endpoint.url")?,
                client_id: required("sasl.oauthbearer.client.id")?,
                client_secret: required("sasl.oauthbearer.client.secret")?,
                scope: get("sasl.oauthbearer.scope").filter(|s| !s.is_empty()),
                extensions: parse_extensions(
                    &get("sasl.oauthbearer.extensions").unwrap_or_default(),
                )?,
                ca: get("https.ca.location")
                    .filter(|c| !c.is_empty() && c != "probe")
                    .map(PathBuf::from),
            })));
        }
        if get("enable.sasl.oauthbearer.unsecure.jwt").is_some_and(|v| v == "true") {
            let config = get("sasl.oauthbearer.config").unwrap_or_default();
            return Ok(TokenSource::new(Method::Unsecured(Unsecured::parse(
                &config,
            )?)));
        }
        Err(
            "SASL OAUTHBEARER without a token source: set the cluster's aws_msk_iam, \
             sasl.oauthbearer.method: oidc, or enable.sasl.oauthbearer.unsecure.jwt"
                .into(),
        )
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The token to send at `now`: the last one while less than three quarters of its
    /// lifetime have passed, else a fresh one.
    pub fn token(&self, now: SystemTime) -> Result<BearerToken, TokenError> {
        let mut cached = match self.cached.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((made, token)) = cached.as_ref() {
            let lifetime = token.expires_at.duration_since(*made).unwrap_or_default();
            if now >= *made && now < *made + lifetime * 3 / 4 {
                return Ok(token.clone());
            }
        }
        let token = self.fresh(now)?;
        *cached = Some((now, token.clone()));
        Ok(token)
    }

    /// A new token, made at `now`.
    fn fresh(&self, now: SystemTime) -> Result<BearerToken, TokenError> {
        match &self.method {
            Method::MskIam(source) => {
                let token = source.token(now)?;
                Ok(BearerToken {
                    value: token.value,
                    principal: "lagwatch".into(),
                    expires_at: token.expires_at,
                    extensions: Vec::new(),
                })
            }
            Method::Oidc(oidc) => oidc.fetch(now),
            Method::Unsecured(unsecured) => Ok(unsecured.token(now)),
        }
    }
}

/// `sasl.oauthbearer.extensions`: `key=value` pairs separated by commas.
fn parse_extensions(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() && k != "auth" => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "sasl.oauthbearer.extensions: {pair:?} is not a key=value pair"
            )),
        })
        .collect()
}

impl Oidc {
    /// The client-credentials grant: a form POST to the token endpoint, the client
    /// authenticated with HTTP basic, as librdkafka sends it. The token's `exp` (or the
    /// answer's `expires_in`) says when it expires; its `sub` names the principal.
    fn fetch(&self, now: SystemTime) -> Result<BearerToken, TokenError> {
        let fail = |reason: String| TokenError::Endpoint {
            url: self.token_endpoint.clone(),
            reason,
        };
        let mut body = "grant_type=client_credentials".to_string();
        if let Some(scope) = &self.scope {
            body.push_str(&format!("&scope={}", uri_encode(scope)));
        }
        let basic = STANDARD.encode(format!("{}:{}", self.client_id, self.client_secret));
        let headers = [
            format!("Authorization: Basic {basic}"),
            "Accept: application/json".to_string(),
        ];
        let (status, answer) = http_post(
            &self.token_endpoint,
            &body,
            &headers,
            self.ca.as_deref(),
            ENDPOINT_TIMEOUT,
        )
        .map_err(|e| fail(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        if status != 200 {
            // The OAuth error code and description only (RFC 6749 §5.2): never the body whole.
            let error = json["error"].as_str().unwrap_or("");
            let description = json["error_description"].as_str().unwrap_or("");
            return Err(fail(
                format!("HTTP status {status} {error} {description}")
                    .trim()
                    .to_string(),
            ));
        }
        let Some(value) = json["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(fail("no access_token in the answer".into()));
        };
        let claims = jwt_claims(value);
        let expires_at = claims
            .as_ref()
            .and_then(|c| c["exp"].as_f64())
            .map(|exp| UNIX_EPOCH + Duration::from_secs_f64(exp.max(0.0)))
            .or_else(|| {
                json["expires_in"]
                    .as_u64()
                    .map(|s| now + Duration::from_secs(s))
            })
            .ok_or_else(|| fail("the token has no exp and the answer no expires_in".into()))?;
        if expires_at <= now {
            return Err(TokenError::Expired {
                url: self.token_endpoint.clone(),
                seconds: now.duration_since(expires_at).unwrap_or_default().as_secs(),
            });
        }
        Ok(BearerToken {
            value: value.to_string(),
            principal: claims
                .as_ref()
                .and_then(|c| c["sub"].as_str().map(str::to_string))
                .unwrap_or_default(),
            expires_at,
            extensions: self.extensions.clone(),
        })
    }
}

/// The claims of a JWT (its middle part), when the token is one.
fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Unsecured {
    /// Reads `sasl.oauthbearer.config`: space-separated `key=value` pairs.
    pub fn parse(config: &str) -> Result<Unsecured, String> {
        let mut out = Unsecured {
            principal: String::new(),
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            scope: Vec::new(),
            life: Duration::from_secs(3600),
            extensions: Vec::new(),
        };
        for pair in config.split_whitespace() {
            let bad = || format!("sasl.oauthbearer.config: {pair:?} is not understood");
            let (key, value) = pair.split_once('=').ok_or_else(bad)?;
            if value.contains('"') {
                return Err(format!("sasl.oauthbearer.config: {key} contains a '\"'"));
            }
            match key {
                "principal" => out.principal = value.into(),
                "principalClaimName" => out.principal_claim = value.into(),
                "scopeClaimName" => out.scope_claim = value.into(),
                "scope" => {
                    for s in value.split(',').filter(|s| !s.is_empty()) {
                        if !out.scope.iter().any(|x| x == s) {
                            out.scope.push(s.to_string());
                        }
                    }
                }
                "lifeSeconds" => {
                    let seconds: u64 = value.parse().map_err(|_| bad())?;
                    out.life = Duration::from_secs(seconds.max(1));
                }
                _ => match key.strip_prefix("extension_") {
                    Some(name) if !name.is_empty() => {
                        out.extensions.push((name.into(), value.into()))
                    }
                    _ => return Err(bad()),
                },
            }
        }
        if out.principal.is_empty() {
            return Err("sasl.oauthbearer.config: no principal=<value>".into());
        }
        Ok(out)
    }

    /// The unsigned JWT (`{"alg":"none"}`, claims principal, `iat`, `exp` to the millisecond,
    /// and the scope as a list) valid for `life` from `now`.
    pub fn token(&self, now: SystemTime) -> BearerToken {
        let millis = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let seconds = |ms: u128| format!("{}.{:03}", ms / 1000, ms % 1000);
        let life_ms = self.life.as_millis();
        let scope = match self.scope.is_empty() {
            true => String::new(),
            false => format!(
                ",\"{}\":[\"{}\"]",
                self.scope_claim,
                self.scope.join("\",\"")
            ),
        };
        let claims = format!(
            "{{\"{}\":\"{}\",\"iat\":{},\"exp\":{}{scope}}}",
            self.principal_claim,
            self.principal,
            seconds(millis),
            seconds(millis + life_ms),
        );
        BearerToken {
            value: format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode("{\"alg\":\"none\"}"),
                URL_SAFE_NO_PAD.encode(claims)
            ),
            principal: self.principal.clone(),
            expires_at: UNIX_EPOCH
                + Duration::from_millis(u64::try_from(millis + life_ms).unwrap_or(u64::MAX)),
            extensions: self.extensions.clone(),
        }
    }
}

/// The SASL OAUTHBEARER client initial response (RFC 7628 §3.1): the GS2 header without an
/// authorization identity, the token, then each extension, each followed by `\x01`, and one
/// more `\x01` to end.
pub fn client_first_message(token: &BearerToken) -> String {
    let mut out = format!("n,,\x01auth=Bearer {}\x01", token.value);
    for (key, value) in &token.extensions {
        out.push_str(&format!("{key}={value}\x01"));
    }
    out.push('\x01');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_client_first_message_carries_the_token_and_extensions() {
        let token = BearerToken {
            value: "abc.def.ghi".into(),
            principal: "p".into(),
            expires_at: UNIX_EPOCH,
            extensions: vec![("traceId".into(), "123".into()), ("org".into(), "x".into())],
        };
        assert_eq!(
            client_first_message(&token),
            "n,,\x01auth=Bearer abc.def.ghi\x01traceId=123\x01org=x\x01\x01"
        );
        let bare = BearerToken {
            extensions: Vec::new(),
            ..token
        };
        assert_eq!(
            client_first_message(&bare),
            "n,,\x01auth=Bearer abc.def.ghi\x01\x01"
        );
        // The token never shows in a debug form.
        assert!(!format!("{bare:?}").contains("abc.def"));
    }

    #[test]
    fn the_unsecured_jwt_is_built_as_librdkafka_builds_it() {
        let u = Unsecured::parse(
            "principal=admin scope=read,write,read lifeSeconds=600 extension_traceId=42",
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_millis(1_549_251_467_546);
        let t = u.token(now);
        let parts: Vec<&str> = t.value.split('.').collect();
        // {"alg":"none"}, the claims, an empty signature.
        assert_eq!(parts[0], "eyJhbGciOiJub25lIn0");
        assert_eq!(parts[2], "");
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            r#"{"sub":"admin","iat":1549251467.546,"exp":1549252067.546,"scope":["read","write"]}"#
        );
        assert_eq!(t.expires_at, now + Duration::from_secs(600));
        assert_eq!(t.extensions, vec![("traceId".into(), "42".into())]);
        // Other claim names; no scope claim without a scope.
        let u = Unsecured::parse("principalClaimName=azp principal=svc").unwrap();
        let claims = jwt_claims(&u.token(now).value).unwrap();
        assert_eq!(claims["azp"], "svc");
        assert!(claims.get("scope").is_none());
        // No principal, or a pair librdkafka does not know: refused.
        assert!(Unsecured::parse("scope=a").is_err());
        assert!(Unsecured::parse("principal=a colour=blue").is_err());
    }

    #[test]
    fn the_source_is_the_one_librdkafka_would_use() {
        // 1. OIDC with everything it needs, and extensions.
        let s = TokenSource::from_properties(
            &properties(&[
                ("sasl.oauthbearer.method", "OIDC"),
                ("sasl.oauthbearer.token.endpoint.url", "https://idp/token"),
                ("sasl.oauthbearer.client.id", "id"),
                ("sasl.oauthbearer.client.secret", "s3cret"),
                ("sasl.oauthbearer.scope", "kafka"),
                ("sasl.oauthbearer.extensions", "a=1, b=2"),
            ]),
            None,
        )
        .unwrap();
        match s.method() {
            Method::Oidc(o) => {
                assert_eq!(o.scope.as_deref(), Some("kafka"));
                assert_eq!(
                    o.extensions,
                    vec![("a".into(), "1".into()), ("b".into(), "2".into())]
                );
                assert!(!format!("{o:?}").contains("s3cret"));
            }
            other => panic!("{other:?}"),
        }
        // 2. OIDC without its endpoint: the reason names the property.
        let e =
            TokenSource::from_properties(&properties(&[("sasl.oauthbearer.method", "oidc")]), None)
                .unwrap_err();
        assert!(e.contains("sasl.oauthbearer.token.endpoint.url"), "{e}");
        // 3. The unsecured JWT.
        let s = TokenSource::from_properties(
            &properties(&[
                ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
                ("sasl.oauthbearer.config", "principal=me"),
            ]),
            None,
        )
        .unwrap();
        assert!(matches!(s.method(), Method::Unsecured(u) if u.principal == "me"));
        // 4. No source at all.
        assert!(TokenSource::from_properties(&properties(&[]), None).is_err());
        // 5. An extension named auth would replace the token.
        assert!(parse_extensions("auth=x").is_err());
    }

    #[test]
    fn a_token_is_kept_for_three_quarters_of_its_lifetime() {
        let source = TokenSource::new(Method::Unsecured(
            Unsecured::parse("principal=me lifeSeconds=100").unwrap(),
        ));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = source.token(t0).unwrap();
        // 74 s later: the same token.
        assert_eq!(source.token(t0 + Duration::from_secs(74)).unwrap(), first);
        // 75 s later: a new one, valid 100 s from then.
        let second = source.token(t0 + Duration::from_secs(75)).unwrap();
        assert_ne!(second, first);
        assert_eq!(second.expires_at, t0 + Duration::from_secs(175));
    }
}
