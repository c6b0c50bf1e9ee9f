//! The web configuration file (`web_config_file`), in the format of the Prometheus
//! exporter-toolkit: TLS for the HTTP server (`tls_server_config`), basic authentication
//! (`basic_auth_users`, bcrypt hashes) and extra response headers (`http_server_config.headers`).
//! Parsed and checked here (keys, values, hashes, that every file it names can be read); the TLS
//! setup itself is the HTTP server's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{field_error, ConfigError};

/// The web configuration, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    /// The file it was read from, for messages.
    pub path: PathBuf,
    /// `None`: plain HTTP.
    pub tls: Option<TlsServerConfig>,
    /// User name → bcrypt hash. Empty: no authentication.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Headers added to every response, in name order.
    pub headers: BTreeMap<String, String>,
}

/// `tls_server_config`, with paths resolved against the web configuration file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    /// Set whenever `client_auth` verifies certificates.
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// `client_auth_type`: the values of Go's `tls.ClientAuthType` that verify what they accept.
/// `RequestClientCert` and `RequireAnyClientCert` accept any certificate without checking it,
/// which the exporter-toolkit itself calls insecure: refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    /// A client may present no certificate; one it presents must verify against the CA.
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// `min_version` / `max_version`. rustls speaks TLS 1.2 and 1.3 only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: ClientAuth,
    client_ca_file: Option<PathBuf>,
    #[serde(default = "tls12")]
    min_version: TlsVersion,
    #[serde(default = "tls13")]
    max_version: TlsVersion,
}

fn tls12() -> TlsVersion {
    TlsVersion::Tls12
}

fn tls13() -> TlsVersion {
    TlsVersion::Tls13
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted for compatibility; lagwatch serves HTTP/1.1.
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Headers the exporter-toolkit lets a file set.
const ALLOWED_HEADERS: &[&str] = &[
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

impl WebConfig {
    /// Reads and validates the file at `path`, and checks that every file it names can be read.
    /// Errors name `web_config_file`, the file and the field path inside it.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let fail = |inner: &str, message: String| {
            let at = if inner.is_empty() {
                String::new()
            } else {
                format!("{inner}: ")
            };
            field_error(
                "web_config_file",
                format!("{}: {at}{message}", path.display()),
            )
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail("", format!("cannot read the file: {e}")))?;
        let tree: serde_norway::Value = if text.trim().is_empty() {
            serde_norway::Value::Mapping(Default::default())
        } else {
            serde_norway::from_str(&text).map_err(|e| fail("", format!("invalid YAML: {e}")))?
        };
        let raw: RawWebConfig = serde_path_to_error::deserialize(tree).map_err(|e| {
            let at = e.path().to_string();
            fail(if at == "." { "" } else { &at }, e.inner().to_string())
        })?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let resolve = |p: PathBuf| match dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        };

        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => {
                let required = |value: Option<PathBuf>, key: &str| {
                    value.map(resolve).ok_or_else(|| {
                        fail(&format!("tls_server_config.{key}"), "is required".into())
                    })
                };
                let cert_file = required(t.cert_file, "cert_file")?;
                let key_file = required(t.key_file, "key_file")?;
                let client_ca_file = t.client_ca_file.map(resolve);
                if t.client_auth_type != ClientAuth::NoClientCert && client_ca_file.is_none() {
                    return Err(fail(
                        "tls_server_config.client_ca_file",
                        "is required when client_auth_type verifies client certificates".into(),
                    ));
                }
                if t.min_version > t.max_version {
                    return Err(fail(
                        "tls_server_config.min_version",
                        "is above max_version".into(),
                    ));
                }
                for (key, file) in [
                    ("cert_file", Some(&cert_file)),
                    ("key_file", Some(&key_file)),
                    ("client_ca_file", client_ca_file.as_ref()),
                ] {
                    if let Some(file) = file {
                        std::fs::read(file).map_err(|e| {
                            fail(
                                &format!("tls_server_config.{key}"),
                                format!("cannot read {:?}: {e}", file.display().to_string()),
                            )
                        })?;
                    }
                }
                Some(TlsServerConfig {
                    cert_file,
                    key_file,
                    client_auth: t.client_auth_type,
                    client_ca_file,
                    min_version: t.min_version,
                    max_version: t.max_version,
                })
            }
        };

        let basic_auth_users = raw.basic_auth_users.unwrap_or_default();
        for (user, hash) in &basic_auth_users {
            if user.contains(':') {
                return Err(fail(
                    &format!("basic_auth_users.{user}"),
                    "a user name cannot contain ':'".into(),
                ));
            }
            // The hash itself is not secret, but never shown: a message names the user only.
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(fail(
                    &format!("basic_auth_users.{user}"),
                    "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                        .into(),
                ));
            }
        }

        let headers = raw
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default();
        for (name, value) in &headers {
            let at = format!("http_server_config.headers.{name}");
            if !ALLOWED_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                return Err(fail(
                    &at,
                    format!(
                        "not a header the file may set (one of {})",
                        ALLOWED_HEADERS.join(", ")
                    ),
                ));
            }
            if value.chars().any(|c| c.is_control()) {
                return Err(fail(&at, "the value contains a control character".into()));
            }
        }

        Ok(WebConfig {
            path: path.to_owned(),
            tls,
            basic_auth_users,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lagwatch-web-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn load(dir: &Path, text: &str) -> Result<WebConfig, String> {
        let path = dir.join("web.yml");
        std::fs::write(&path, text).unwrap();
        WebConfig::load(&path).map_err(|e| e.to_string())
    }

    // A bcrypt hash of "secret" at cost 4.
    fn hash() -> String {
        bcrypt::hash("secret", 4).unwrap()
    }

    #[test]
    fn a_full_file_resolves_paths_against_its_directory() {
        let dir = scratch("full");
        for f in ["cert.pem", "key.pem", "ca.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let text = format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS13\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{}'\n",
            hash()
        );
        let web = load(&dir, &text).unwrap();
        let tls = web.tls.unwrap();
        assert_eq!(tls.cert_file, dir.join("cert.pem"));
        assert_eq!(tls.client_ca_file, Some(dir.join("ca.pem")));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(tls.max_version, TlsVersion::Tls13);
        assert_eq!(web.basic_auth_users.len(), 1);
        assert_eq!(web.headers["X-Frame-Options"], "deny");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_shipped_example_loads_and_its_hash_is_of_the_documented_password() {
        let dir = scratch("example");
        for f in ["server.crt", "server.key", "clients-ca.crt"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/web-config.yml");
        let text = std::fs::read_to_string(example).unwrap();
        let web = load(&dir, &text).unwrap();
        let tls = web.tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(web.headers.len(), 3);
        assert!(bcrypt::verify("change-me", &web.basic_auth_users["prometheus"]).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_file_serves_plain_http_without_authentication() {
        let dir = scratch("empty");
        let web = load(&dir, "").unwrap();
        assert_eq!(web.tls, None);
        assert!(web.basic_auth_users.is_empty() && web.headers.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let dir = scratch("errors");
        std::fs::write(dir.join("cert.pem"), "x").unwrap();
        std::fs::write(dir.join("key.pem"), "x").unwrap();
        let file = dir.join("web.yml").display().to_string();
        let cases = [
            // 1. A key the format does not have.
            (
                "tls_server_config: {cert_file: cert.pem, key_file: key.pem, ciphers: []}".to_string(),
                "tls_server_config.ciphers: unknown field `ciphers`",
            ),
            // 2. A missing certificate file.
            (
                "tls_server_config: {cert_file: nope.pem, key_file: key.pem}".to_string(),
                "tls_server_config.cert_file: cannot read",
            ),
            // 3. Client verification without a CA.
            (
                "tls_server_config: {cert_file: cert.pem, key_file: key.pem, client_auth_type: RequireAndVerifyClientCert}".to_string(),
                "tls_server_config.client_ca_file: is required",
            ),
            // 4. A policy that accepts any certificate unchecked.
            (
                "tls_server_config: {cert_file: cert.pem, key_file: key.pem, client_auth_type: RequireAnyClientCert}".to_string(),
                "tls_server_config.client_auth_type: unknown variant `RequireAnyClientCert`",
            ),
            // 5. TLS 1.0 is not spoken.
            (
                "tls_server_config: {cert_file: cert.pem, key_file: key.pem, min_version: TLS10}".to_string(),
                "tls_server_config.min_version: unknown variant `TLS10`",
            ),
            // 6. A plain-text password where a hash belongs; the value is not shown.
            (
                "basic_auth_users: {prometheus: hunter2}".to_string(),
                "basic_auth_users.prometheus: not a bcrypt hash",
            ),
            // 7. A header the format does not let a file set.
            (
                "http_server_config: {headers: {Server: x}}".to_string(),
                "http_server_config.headers.Server: not a header the file may set",
            ),
            // 8. Not YAML.
            ("basic_auth_users: [".to_string(), "invalid YAML"),
        ];
        for (text, want) in cases {
            let message = load(&dir, &text).unwrap_err();
            assert!(
                message.starts_with(&format!("web_config_file: {file}: ")),
                "{message}"
            );
            assert!(message.contains(want), "{text}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        let missing = WebConfig::load(&dir.join("absent.yml"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("absent.yml: cannot read the file"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
