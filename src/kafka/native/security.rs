//! How the native path reaches a cluster: read from the same `kafka:` properties librdkafka gets,
//! or the reason it cannot (then the cluster's group calls stay on librdkafka).

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{AwsMskIam, ClusterConfig};
use crate::kafka::oauth::TokenSource;

/// The connection settings of one cluster.
#[derive(Clone)]
pub struct Security {
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
}

/// TLS as librdkafka's `ssl.*` properties describe it.
#[derive(Clone, PartialEq, Eq)]
pub struct Tls {
    /// `ssl.ca.location`: a PEM file or a directory of CA certificates; the system's default
    /// trust store without it.
    pub ca: Option<PathBuf>,
    /// `ssl.certificate.location` and `ssl.key.location`: the client certificate (mutual TLS).
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `ssl.key.password`: the passphrase of an encrypted key.
    pub key_password: Option<String>,
    /// `ssl.endpoint.identification.algorithm`: `https` (librdkafka's default) checks the
    /// broker's name or address against its certificate, `none` does not.
    pub verify_hostname: bool,
}

/// SASL mechanisms the native path speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OauthBearer,
}

impl Mechanism {
    /// The name SaslHandshake carries.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OauthBearer => "OAUTHBEARER",
        }
    }
}

#[derive(Clone)]
pub struct Sasl {
    pub mechanism: Mechanism,
    /// PLAIN and SCRAM: `sasl.username` and `sasl.password`.
    pub username: String,
    pub password: String,
    /// OAUTHBEARER: the token source librdkafka would use, shared by the cluster's connections.
    pub tokens: Option<Arc<TokenSource>>,
}

// Hand-written so that no password reaches a log through `{:?}`.
impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field(
                "tls",
                &self.tls.as_ref().map(|t| (&t.ca, &t.certificate, &t.key)),
            )
            .field(
                "sasl",
                &self.sasl.as_ref().map(|s| (s.mechanism, &s.username)),
            )
            .finish()
    }
}

/// Properties that only tune librdkafka (timeouts, buffers, logging, its own features): they
/// change nothing in how a connection is secured, so the native path may ignore them. Any
/// other `ssl.*`, `sasl.*` or `security.*` property it does not read sends the cluster's group
/// calls to librdkafka, so no security setting is silently dropped.
const SECURITY_PREFIXES: [&str; 3] = ["ssl.", "sasl.", "security."];

/// Security properties the native path reads.
const READ: [&str; 18] = [
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.config",
    "enable.sasl.oauthbearer.unsecure.jwt",
];

impl Security {
    /// Reads the cluster's security properties and its `aws_msk_iam`. `Err` says why the
    /// native path cannot connect like librdkafka does (GSSAPI, OAUTHBEARER without a token
    /// source, a property it does not read).
    pub fn from_cluster(cluster: &ClusterConfig) -> Result<Security, String> {
        Security::from_properties(
            cluster
                .kafka
                .iter()
                .map(|(k, v)| (k.as_str(), v.value.as_str())),
            cluster.aws_msk_iam.as_ref(),
        )
    }

    pub fn from_properties<'a>(
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
        msk_iam: Option<&AwsMskIam>,
    ) -> Result<Security, String> {
        let mut get = std::collections::HashMap::new();
        // Reported after the protocol and mechanism, so a Kerberos cluster is told so rather
        // than about one of its mechanism's own properties.
        let mut unread = None;
        for (key, value) in properties {
            if SECURITY_PREFIXES.iter().any(|p| key.starts_with(p)) && !READ.contains(&key) {
                unread = unread.or(Some(key));
            }
            get.insert(key, value);
        }
        let protocol = get
            .get("security.protocol")
            .map(|p| p.to_ascii_lowercase())
            .unwrap_or_else(|| "plaintext".into());
        let (tls, sasl) = match protocol.as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => return Err(format!("security.protocol {other} is not known")),
        };
        let path = |key: &str| get.get(key).map(PathBuf::from);
        let tls = tls.then(|| Tls {
            ca: path("ssl.ca.location"),
            certificate: path("ssl.certificate.location"),
            key: path("ssl.key.location"),
            key_password: get.get("ssl.key.password").map(|s| s.to_string()),
            verify_hostname: !get
                .get("ssl.endpoint.identification.algorithm")
                .is_some_and(|a| a.eq_ignore_ascii_case("none")),
        });
        let sasl = if sasl {
            // librdkafka's default mechanism is GSSAPI.
            let name = get
                .get("sasl.mechanism")
                .or_else(|| get.get("sasl.mechanisms"))
                .map(|m| m.to_ascii_uppercase())
                .unwrap_or_else(|| "GSSAPI".into());
            let mechanism = match name.as_str() {
                "PLAIN" => Mechanism::Plain,
                "SCRAM-SHA-256" => Mechanism::ScramSha256,
                "SCRAM-SHA-512" => Mechanism::ScramSha512,
                "OAUTHBEARER" => Mechanism::OauthBearer,
                other => {
                    return Err(format!(
                        "SASL mechanism {other} is served by librdkafka only"
                    ))
                }
            };
            let tokens = match mechanism {
                Mechanism::OauthBearer => Some(Arc::new(TokenSource::from_properties(
                    &|key| get.get(key).map(|v| v.to_string()),
                    msk_iam,
                )?)),
                _ => None,
            };
            Some(Sasl {
                mechanism,
                username: get.get("sasl.username").unwrap_or(&"").to_string(),
                password: get.get("sasl.password").unwrap_or(&"").to_string(),
                tokens,
            })
        } else {
            None
        };
        if let Some(key) = unread {
            return Err(format!(
                "the property {key} is not read by lagwatch's own protocol path"
            ));
        }
        Ok(Security { tls, sasl })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_properties_are_read_like_librdkafka_or_refused_with_a_reason() {
        // 1. Nothing set: PLAINTEXT, librdkafka's default.
        let s = Security::from_properties([], None).unwrap();
        assert!(s.tls.is_none() && s.sasl.is_none());
        // 2. Mutual TLS with an encrypted key; hostname checked by default.
        let s = Security::from_properties(
            [
                ("security.protocol", "SSL"),
                ("ssl.ca.location", "/ca.pem"),
                ("ssl.certificate.location", "/c.pem"),
                ("ssl.key.location", "/k.pem"),
                ("ssl.key.password", "x"),
            ],
            None,
        )
        .unwrap();
        let tls = s.tls.unwrap();
        assert_eq!(tls.key_password.as_deref(), Some("x"));
        assert!(tls.verify_hostname && s.sasl.is_none());
        // 3. SASL_SSL with SCRAM-SHA-512, spelled in lower case, hostname check off.
        let s = Security::from_properties(
            [
                ("security.protocol", "sasl_ssl"),
                ("sasl.mechanisms", "scram-sha-512"),
                ("sasl.username", "u"),
                ("sasl.password", "p"),
                ("ssl.endpoint.identification.algorithm", "none"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(s.sasl.as_ref().unwrap().mechanism, Mechanism::ScramSha512);
        assert!(!s.tls.unwrap().verify_hostname);
        // 4. SASL without a mechanism is GSSAPI in librdkafka: refused, saying so.
        let e =
            Security::from_properties([("security.protocol", "SASL_PLAINTEXT")], None).unwrap_err();
        assert!(e.contains("GSSAPI"), "{e}");
        // 5. OAUTHBEARER without a token source: refused, saying so; with OIDC, its own.
        let e = Security::from_properties(
            [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "OAUTHBEARER"),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.contains("OAUTHBEARER without a token source"), "{e}");
        let oidc = [
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            ("sasl.oauthbearer.token.endpoint.url", "http://idp/token"),
            ("sasl.oauthbearer.client.id", "id"),
            ("sasl.oauthbearer.client.secret", "s"),
        ];
        let s = Security::from_properties(oidc, None).unwrap();
        let sasl = s.sasl.unwrap();
        assert_eq!(sasl.mechanism, Mechanism::OauthBearer);
        assert!(sasl.tokens.is_some() && s.tls.is_none());
        // 5b. An OIDC property librdkafka has that the native path does not read (a JWT
        // bearer grant) keeps the cluster on librdkafka.
        let jwt_bearer = (
            "sasl.oauthbearer.grant.type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        );
        let e = Security::from_properties(oidc.into_iter().chain([jwt_bearer]), None).unwrap_err();
        assert!(e.contains("sasl.oauthbearer.grant.type"), "{e}");
        // 6. A security property the native path does not read is never dropped silently.
        let e = Security::from_properties([("ssl.key.pem", "...")], None).unwrap_err();
        assert!(e.contains("ssl.key.pem"), "{e}");
        // 7. Tuning properties are librdkafka's own business.
        assert!(Security::from_properties([("socket.timeout.ms", "1000")], None).is_ok());
        // 8. The debug form never shows the password.
        let s = Security::from_properties(
            [
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "u"),
                ("sasl.password", "hunter2"),
            ],
            None,
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
