//! SASL on a native connection: SaslHandshake, then SaslAuthenticate rounds of PLAIN (RFC 4616),
//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677) or OAUTHBEARER (RFC 7628, KIP-255: the token of the
//! cluster's [`TokenSource`](crate::kafka::oauth::TokenSource)). The SCRAM messages are pure functions here; the
//! crypto (PBKDF2, HMAC, SHA-2) is OpenSSL's.

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use openssl::base64;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::sign::Signer;

use std::time::SystemTime;

use super::connection::Connection;
use super::security::{Mechanism, Sasl};
use crate::kafka::error::{KafkaCallError, Request};
use crate::kafka::oauth::client_first_message;

/// SaslHandshake v1 and later announce that SaslAuthenticate requests carry the tokens.
const HANDSHAKE: VersionRange = VersionRange { min: 1, max: 1 };
const AUTHENTICATE: VersionRange = VersionRange { min: 0, max: 2 };

fn failed(request: Request, message: impl Into<String>) -> KafkaCallError {
    KafkaCallError::Authentication {
        request,
        message: message.into(),
    }
}

/// Authenticates `connection` with the cluster's SASL settings.
pub async fn authenticate(connection: &mut Connection, sasl: &Sasl) -> Result<(), KafkaCallError> {
    // The token first: a token endpoint that refuses lagwatch costs the broker no handshake.
    let token = match &sasl.tokens {
        Some(tokens) if sasl.mechanism == Mechanism::OauthBearer => {
            let tokens = tokens.clone();
            // An OIDC grant is a blocking HTTP request: off the connection's runtime thread.
            let made = tokio::task::spawn_blocking(move || tokens.token(SystemTime::now()))
                .await
                .map_err(|e| failed(Request::SaslAuthenticate, format!("no token: {e}")))?;
            Some(made.map_err(|e| failed(Request::SaslAuthenticate, format!("no token: {e}")))?)
        }
        _ => None,
    };
    let version = connection.version::<SaslHandshakeRequest>(Request::SaslHandshake, HANDSHAKE)?;
    let request = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
    let answer = connection
        .send(Request::SaslHandshake, &request, version)
        .await?;
    if answer.error_code != 0 {
        let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(failed(
            Request::SaslHandshake,
            format!(
                "the broker refused {} (error code {}); it offers {}",
                sasl.mechanism.name(),
                answer.error_code,
                offered.join(", ")
            ),
        ));
    }
    match sasl.mechanism {
        Mechanism::Plain => {
            let token = format!("\0{}\0{}", sasl.username, sasl.password);
            round(connection, Bytes::from(token.into_bytes())).await?;
            Ok(())
        }
        Mechanism::OauthBearer => {
            let Some(token) = token else {
                return Err(failed(Request::SaslAuthenticate, "no token source"));
            };
            let message = client_first_message(&token);
            let answer = round(connection, Bytes::from(message.into_bytes())).await?;
            if answer.is_empty() {
                return Ok(());
            }
            // RFC 7628 §3.2.2: the broker's error (a JSON status) asks for one `\x01` more,
            // which it answers with the failure.
            let status = String::from_utf8_lossy(&answer).to_string();
            let refused = round(connection, Bytes::from_static(b"\x01")).await.err();
            Err(failed(
                Request::SaslAuthenticate,
                match refused {
                    Some(KafkaCallError::Authentication { message, .. }) => {
                        format!("the broker refused the token ({status}): {message}")
                    }
                    _ => format!("the broker refused the token ({status})"),
                },
            ))
        }
        Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
            let scram = Scram::new(sasl.mechanism, &sasl.username, &client_nonce()?);
            let server_first = round(connection, Bytes::from(scram.client_first())).await?;
            let server_first = text(&server_first)?;
            let (client_final, expected) = scram
                .client_final(&sasl.password, server_first)
                .map_err(|m| failed(Request::SaslAuthenticate, m))?;
            let server_final = round(connection, Bytes::from(client_final)).await?;
            Scram::verify_server_final(text(&server_final)?, &expected)
                .map_err(|m| failed(Request::SaslAuthenticate, m))
        }
    }
}

fn text(bytes: &[u8]) -> Result<&str, KafkaCallError> {
    std::str::from_utf8(bytes).map_err(|_| KafkaCallError::Malformed {
        request: Request::SaslAuthenticate,
        message: "a SCRAM message that is not UTF-8".into(),
    })
}

/// One SaslAuthenticate exchange: sends `token`, returns the broker's.
async fn round(connection: &mut Connection, token: Bytes) -> Result<Bytes, KafkaCallError> {
    let version =
        connection.version::<SaslAuthenticateRequest>(Request::SaslAuthenticate, AUTHENTICATE)?;
    let answer = connection
        .send(
            Request::SaslAuthenticate,
            &SaslAuthenticateRequest::default().with_auth_bytes(token),
            version,
        )
        .await?;
    if answer.error_code != 0 {
        return Err(failed(
            Request::SaslAuthenticate,
            answer
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("error code {}", answer.error_code)),
        ));
    }
    Ok(answer.auth_bytes)
}

fn client_nonce() -> Result<String, KafkaCallError> {
    let mut raw = [0u8; 24];
    openssl::rand::rand_bytes(&mut raw)
        .map_err(|e| failed(Request::SaslAuthenticate, format!("no random nonce: {e}")))?;
    Ok(base64::encode_block(&raw))
}

/// One SCRAM conversation's client side.
pub struct Scram {
    digest: MessageDigest,
    /// `n=user,r=nonce`: part of the signed AuthMessage.
    client_first_bare: String,
    client_nonce: String,
}

impl Scram {
    pub fn new(mechanism: Mechanism, username: &str, nonce: &str) -> Scram {
        let digest = match mechanism {
            Mechanism::ScramSha512 => MessageDigest::sha512(),
            _ => MessageDigest::sha256(),
        };
        // RFC 5802 §5.1: `=` and `,` in the name are escaped.
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Scram {
            digest,
            client_first_bare: format!("n={name},r={nonce}"),
            client_nonce: nonce.to_string(),
        }
    }

    /// `n,,n=user,r=nonce`: no channel binding, no authorization identity.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message for the server's first message, and the server signature the
    /// server-final message must carry.
    pub fn client_final(
        &self,
        password: &str,
        server_first: &str,
    ) -> Result<(String, Vec<u8>), String> {
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|part| part.strip_prefix(name))
                .ok_or_else(|| format!("the server's first message has no {name}"))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err("the server's nonce does not extend the client's".into());
        }
        let salt = base64::decode_block(field("s=")?).map_err(|e| format!("salt: {e}"))?;
        let iterations: usize = field("i=")?
            .parse()
            .map_err(|_| "the iteration count is not a number".to_string())?;
        let crypto = |e: openssl::error::ErrorStack| e.to_string();
        let mut salted = vec![0u8; self.digest.size()];
        openssl::pkcs5::pbkdf2_hmac(
            password.as_bytes(),
            &salt,
            iterations,
            self.digest,
            &mut salted,
        )
        .map_err(crypto)?;
        let client_key = self.hmac(&salted, b"Client Key").map_err(crypto)?;
        let stored_key = hash(self.digest, &client_key).map_err(crypto)?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = self
            .hmac(&stored_key, auth_message.as_bytes())
            .map_err(crypto)?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hmac(&salted, b"Server Key").map_err(crypto)?;
        let server_signature = self
            .hmac(&server_key, auth_message.as_bytes())
            .map_err(crypto)?;
        Ok((
            format!("{without_proof},p={}", base64::encode_block(&proof)),
            server_signature,
        ))
    }

    /// Checks the server-final message: `v=` with the expected signature, or `e=` an error.
    pub fn verify_server_final(server_final: &str, expected: &[u8]) -> Result<(), String> {
        if let Some(error) = server_final.strip_prefix("e=") {
            return Err(format!("the server said {error}"));
        }
        let signature = server_final
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or("the server's final message has no signature")?;
        match base64::decode_block(signature) {
            Ok(s) if s == expected => Ok(()),
            _ => Err("the server's signature does not match: not the broker we know".into()),
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let key = PKey::hmac(key)?;
        let mut signer = Signer::new(self.digest, &key)?;
        signer.update(data)?;
        signer.sign_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_sha_256_matches_the_rfc_7677_example() {
        // RFC 7677 §3: user "user", password "pencil", with the nonces and salt given there.
        let scram = Scram::new(Mechanism::ScramSha256, "user", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (client_final, expected) = scram.client_final("pencil", server_first).unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            Scram::verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", &expected),
            Ok(())
        );
    }

    #[test]
    fn scram_refuses_what_a_genuine_server_would_not_send() {
        let scram = Scram::new(Mechanism::ScramSha512, "a=b,c", "abc");
        // 1. The name is escaped.
        assert_eq!(scram.client_first(), "n,,n=a=3Db=2Cc,r=abc");
        // 2. A nonce that does not extend ours.
        assert!(scram.client_final("p", "r=xyz1,s=AAAA,i=4096").is_err());
        // 3. The nonce echoed back unchanged.
        assert!(scram.client_final("p", "r=abc,s=AAAA,i=4096").is_err());
        // 4. No iteration count.
        assert!(scram.client_final("p", "r=abcd,s=AAAA").is_err());
        // 5. A server error, and a wrong signature.
        let (_, expected) = scram.client_final("p", "r=abcd,s=AAAA,i=16").unwrap();
        assert_eq!(
            Scram::verify_server_final("e=invalid-proof", &expected),
            Err("the server said invalid-proof".into())
        );
        assert!(Scram::verify_server_final("v=AAAA", &expected).is_err());
    }
}
