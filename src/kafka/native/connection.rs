//! One connection to one broker: TCP, TLS (OpenSSL), SASL, then ApiVersions; requests framed
//! and encoded with the `kafka-protocol` crate, one at a time, each counted in the cluster's
//! request counter as it is written.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request as ProtocolRequest, StrBytes, VersionRange,
};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::auth;
use super::security::{Security, Tls};
use crate::kafka::error::{BrokerRef, KafkaCallError, Request};
use crate::kafka::stats::RequestCounter;

/// The largest answer accepted, in bytes: a length beyond it is a broken stream, not an answer.
const MAX_FRAME: usize = 256 << 20;

/// ApiVersions v3 carries the client's name and version (KIP-511); every Kafka since 2.4 has it.
const API_VERSIONS: i16 = 3;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What a connection needs besides the address: the same for every broker of a cluster.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub security: Security,
    pub client_id: String,
    /// Per request (and per connection set-up step).
    pub timeout: Duration,
    pub requests: Arc<Mutex<RequestCounter>>,
}

/// An open, authenticated connection with the versions its broker speaks.
pub struct Connection {
    stream: Box<dyn Stream>,
    broker: BrokerRef,
    /// The `broker` label of `lagwatch_kafka_requests_total`: the node id, or `bootstrap`.
    label: String,
    client_id: StrBytes,
    timeout: Duration,
    requests: Arc<Mutex<RequestCounter>>,
    correlation: i32,
    /// Supported (min, max) version per API key, from ApiVersions.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `address` (`host:port`) and readies the connection: TLS, SASL and
    /// ApiVersions as the cluster's security settings say.
    pub async fn open(
        endpoint: &Endpoint,
        broker: BrokerRef,
        address: &str,
    ) -> Result<Connection, KafkaCallError> {
        let io = |message: String| KafkaCallError::Io {
            request: Request::Connect,
            message,
        };
        let timeout = endpoint.timeout;
        let tcp = within(timeout, Request::Connect, async {
            TcpStream::connect(address)
                .await
                .map_err(|e| io(format!("{address}: {e}")))
        })
        .await?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &endpoint.security.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let host = address
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .unwrap_or(address)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let ssl = connector(tls)
                    .and_then(|c| {
                        c.configure()?
                            .verify_hostname(tls.verify_hostname)
                            .into_ssl(host)
                    })
                    .map_err(|e| io(format!("TLS set-up: {e}")))?;
                let mut stream = tokio_openssl::SslStream::new(ssl, tcp)
                    .map_err(|e| io(format!("TLS set-up: {e}")))?;
                within(timeout, Request::Connect, async {
                    Pin::new(&mut stream)
                        .connect()
                        .await
                        .map_err(|e| io(format!("TLS handshake with {address}: {e}")))
                })
                .await?;
                Box::new(stream)
            }
        };
        let label = match &broker {
            BrokerRef::Node { id, .. } => id.to_string(),
            BrokerRef::Bootstrap(_) => "bootstrap".to_string(),
        };
        let mut connection = Connection {
            stream,
            broker,
            label,
            client_id: StrBytes::from_string(endpoint.client_id.clone()),
            timeout,
            requests: endpoint.requests.clone(),
            correlation: 0,
            versions: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("lagwatch"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let answer = connection
            .send(Request::ApiVersions, &request, API_VERSIONS)
            .await?;
        if answer.error_code != 0 {
            return Err(broker_error(Request::ApiVersions, answer.error_code, None));
        }
        connection.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = &endpoint.security.sasl {
            auth::authenticate(&mut connection, sasl).await?;
        }
        Ok(connection)
    }

    /// The broker this connection reaches.
    pub fn broker(&self) -> &BrokerRef {
        &self.broker
    }

    /// The highest version of `R` both the broker and `ours` speak.
    pub fn version<R: ProtocolRequest>(
        &self,
        request: Request,
        ours: VersionRange,
    ) -> Result<i16, KafkaCallError> {
        negotiate(request, self.versions.get(&R::KEY).copied(), ours)
    }

    /// Sends one request and reads its answer.
    pub async fn send<R: ProtocolRequest>(
        &mut self,
        request: Request,
        body: &R,
        version: i16,
    ) -> Result<R::Response, KafkaCallError> {
        within(self.timeout, request, self.exchange(request, body, version)).await
    }

    async fn exchange<R: ProtocolRequest>(
        &mut self,
        request: Request,
        body: &R,
        version: i16,
    ) -> Result<R::Response, KafkaCallError> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let frame = encode(body, version, correlation, &self.client_id)
            .map_err(|message| KafkaCallError::Argument { request, message })?;
        let io = |e: std::io::Error| KafkaCallError::Io {
            request,
            message: e.to_string(),
        };
        self.stream.write_all(&frame).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        match self.requests.lock() {
            Ok(mut c) => c.add(&self.label, 1),
            Err(poisoned) => poisoned.into_inner().add(&self.label, 1),
        }
        let size = self.stream.read_i32().await.map_err(io)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_FRAME)
            .ok_or_else(|| KafkaCallError::Malformed {
                request,
                message: format!("an answer of {size} bytes"),
            })?;
        let mut answer = vec![0u8; size];
        self.stream.read_exact(&mut answer).await.map_err(io)?;
        decode::<R>(&answer, version, correlation)
            .map_err(|message| KafkaCallError::Malformed { request, message })
    }
}

/// `step` bounded by `timeout`: past it, a [`KafkaCallError::Timeout`] of `request`.
async fn within<T>(
    timeout: Duration,
    request: Request,
    step: impl std::future::Future<Output = Result<T, KafkaCallError>>,
) -> Result<T, KafkaCallError> {
    tokio::time::timeout(timeout, step)
        .await
        .map_err(|_| KafkaCallError::Timeout { request, timeout })?
}

/// The version to use: the highest both sides speak, or why there is none.
fn negotiate(
    request: Request,
    broker: Option<(i16, i16)>,
    ours: VersionRange,
) -> Result<i16, KafkaCallError> {
    let unsupported = |broker: String| KafkaCallError::Unsupported {
        request,
        broker,
        needed: ours.to_string(),
    };
    let (min, max) = broker.ok_or_else(|| unsupported("none".into()))?;
    let both = ours.intersect(&VersionRange { min, max });
    if both.is_empty() {
        return Err(unsupported(format!("{min}..{max}")));
    }
    Ok(both.max)
}

/// A request frame: size, header, body.
fn encode<R: ProtocolRequest>(
    body: &R,
    version: i16,
    correlation: i32,
    client_id: &StrBytes,
) -> Result<BytesMut, String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(client_id.clone()));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| "request too large".to_string())?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Decodes an answer's header and body; the correlation id must be the request's.
fn decode<R: ProtocolRequest>(
    answer: &[u8],
    version: i16,
    correlation: i32,
) -> Result<R::Response, String> {
    let mut buf = bytes::Bytes::copy_from_slice(answer);
    let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
        .map_err(|e| e.to_string())?;
    if header.correlation_id != correlation {
        return Err(format!(
            "correlation id {} answers request {correlation}",
            header.correlation_id
        ));
    }
    let response = R::Response::decode(&mut buf, version).map_err(|e| e.to_string())?;
    if buf.has_remaining() {
        return Err(format!("{} bytes left after the answer", buf.remaining()));
    }
    Ok(response)
}

/// A broker's error code as a typed error.
pub fn broker_error(request: Request, code: i16, message: Option<&StrBytes>) -> KafkaCallError {
    let name = kafka_protocol::ResponseError::try_from_code(code)
        .map(|e| e.to_string())
        .unwrap_or_default();
    KafkaCallError::Broker {
        request,
        code,
        name,
        message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
    }
}

/// The TLS context: CA, client certificate and key as librdkafka reads them (PEM files).
fn connector(tls: &Tls) -> Result<SslConnector, openssl::error::ErrorStack> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    match &tls.ca {
        Some(ca) if Path::new(ca).is_dir() => builder.load_verify_locations(None, Some(ca))?,
        Some(ca) => builder.set_ca_file(ca)?,
        None => builder.set_default_verify_paths()?,
    }
    if let Some(cert) = &tls.certificate {
        builder.set_certificate_chain_file(cert)?;
    }
    if let Some(key) = &tls.key {
        match &tls.key_password {
            Some(password) => {
                let pem = std::fs::read(key).map_err(|_| openssl::error::ErrorStack::get())?;
                let key = openssl::pkey::PKey::private_key_from_pem_passphrase(
                    &pem,
                    password.as_bytes(),
                )?;
                builder.set_private_key(&key)?;
            }
            None => builder.set_private_key_file(key, SslFiletype::PEM)?,
        }
        builder.check_private_key()?;
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

    #[test]
    fn the_highest_common_version_is_chosen_or_the_gap_named() {
        let ours = VersionRange { min: 8, max: 9 };
        // 1. The broker speaks more than we do: our highest.
        assert_eq!(negotiate(Request::OffsetFetch, Some((1, 10)), ours), Ok(9));
        // 2. The broker stops at 8: 8.
        assert_eq!(negotiate(Request::OffsetFetch, Some((1, 8)), ours), Ok(8));
        // 3. Too old a broker: unsupported, naming both ranges.
        let e = negotiate(Request::OffsetFetch, Some((1, 7)), ours).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OffsetFetch: the broker supports versions 1..7, lagwatch needs 8..9"
        );
        // 4. An API the broker does not list.
        assert!(negotiate(Request::OffsetFetch, None, ours).is_err());
    }

    #[test]
    fn frames_round_trip_and_bad_answers_are_errors_not_panics() {
        let request = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_static_str("g1")]);
        let frame = encode(&request, 4, 7, &StrBytes::from_static_str("lagwatch-test")).unwrap();
        let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(size as usize, frame.len() - 4);
        // An answer built as a broker would: header v1 (flexible) with correlation 7.
        let response =
            FindCoordinatorResponse::default().with_coordinators(vec![Coordinator::default()
                .with_key(StrBytes::from_static_str("g1"))
                .with_port(9092)]);
        let mut answer = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(7)
            .encode(&mut answer, FindCoordinatorResponse::header_version(4))
            .unwrap();
        response.encode(&mut answer, 4).unwrap();
        let decoded = decode::<FindCoordinatorRequest>(&answer, 4, 7).unwrap();
        assert_eq!(decoded.coordinators[0].port, 9092);
        // 1. Another request's answer.
        assert!(decode::<FindCoordinatorRequest>(&answer, 4, 8)
            .unwrap_err()
            .contains("correlation id 7"));
        // 2. Truncated: an error, never a panic.
        for cut in 0..answer.len() {
            assert!(
                decode::<FindCoordinatorRequest>(&answer[..cut], 4, 7).is_err(),
                "cut {cut}"
            );
        }
        // 3. Trailing garbage.
        let mut longer = answer.to_vec();
        longer.push(0);
        assert!(decode::<FindCoordinatorRequest>(&longer, 4, 7).is_err());
    }
}
