//! lagwatch's own Kafka protocol path, beside librdkafka, for the group requests librdkafka
//! cannot batch or lacks: FindCoordinator with many keys and OffsetFetch with many groups per
//! request. Messages are encoded and decoded by the `kafka-protocol` crate; TLS and the SCRAM
//! crypto are OpenSSL's (the library librdkafka links, so the same PEM files and key
//! passwords work).
//!
//! One module per job: `security` (the cluster's `kafka:` properties, or why the native path
//! cannot use them), `connection` (TCP, TLS, framing, ApiVersions, request counting), `auth`
//! (SASL PLAIN, SCRAM and OAUTHBEARER), `groups` (the group requests). Async over a current-thread tokio
//! runtime the client owns: the collector is blocking and calls [`NativeClient`]'s methods
//! from its poll thread.

mod auth;
mod connection;
mod coordinated;
mod groups;
mod listing;
mod messages;
mod security;
mod share;
mod streams;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, FindCoordinatorRequest, ListGroupsRequest, OffsetFetchRequest,
};

use crate::config::ClusterConfig;
use crate::kafka::error::{BrokerRef, KafkaCallError, Request};
use crate::kafka::stats::RequestCounter;
use connection::{Connection, Endpoint};
pub use groups::FetchedOffsets;
use groups::Key;
pub use listing::{Described, Listed, Listing, GROUP_TYPES};
pub use security::{Mechanism, Security};
pub use share::{ShareGroupDescription, ShareGroupMember, ShareOffsetEntry, ShareOffsets};
pub use streams::{StreamsGroupDescription, StreamsGroupMember};

/// Versions the native path speaks: FindCoordinator v4+ takes many keys; OffsetFetch v8+ many
/// groups; v10 names topics by id only, which lagwatch does not map.
const FIND_COORDINATOR: kafka_protocol::protocol::VersionRange =
    kafka_protocol::protocol::VersionRange { min: 4, max: 6 };
const OFFSET_FETCH: kafka_protocol::protocol::VersionRange =
    kafka_protocol::protocol::VersionRange { min: 8, max: 9 };

/// A failed native call and the broker it went to, when one was reached or chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeError {
    pub broker: Option<BrokerRef>,
    pub error: KafkaCallError,
}

/// One cluster's native client: a connection per broker, kept across polls and opened again
/// after a failure.
pub struct NativeClient {
    runtime: Runtime,
    brokers: Brokers,
}

/// The current-thread runtime the native path's I/O runs on. Shut down without waiting when
/// dropped: the collector is dropped on an async worker when its poll loop stops, where a
/// runtime's ordinary drop would block (and tokio refuses that with a panic).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    /// Runs `step` to completion; `None` only after the runtime was shut down.
    fn block_on<F: std::future::Future>(&self, step: F) -> Option<F::Output> {
        Some(self.0.as_ref()?.block_on(step))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The connections of one cluster.
struct Brokers {
    endpoint: Endpoint,
    bootstrap: Vec<String>,
    /// Broker addresses by node id: from the cluster metadata and FindCoordinator answers.
    addresses: HashMap<i32, String>,
    /// By node id; a connection whose request failed is dropped and opened again on next use.
    connections: HashMap<i32, Connection>,
    /// To a bootstrap server, while no broker's address is known.
    bootstrap_connection: Option<Connection>,
}

impl NativeClient {
    /// A client for `cluster`, or why the native path cannot serve it (the caller falls back
    /// to librdkafka). Connects to nothing yet.
    pub fn new(
        cluster: &ClusterConfig,
        requests: Arc<Mutex<RequestCounter>>,
        timeout: Duration,
    ) -> Result<NativeClient, String> {
        let security = Security::from_cluster(cluster)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime for the native path: {e}"))?;
        Ok(NativeClient {
            runtime: Runtime(Some(runtime)),
            brokers: Brokers {
                endpoint: Endpoint {
                    security,
                    client_id: format!("lagwatch-{}", cluster.name),
                    timeout,
                    requests,
                },
                bootstrap: cluster
                    .bootstrap_servers
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                addresses: HashMap::new(),
                connections: HashMap::new(),
                bootstrap_connection: None,
            },
        })
    }

    /// Takes the brokers of the latest cluster metadata (node id, `host:port`), so requests go
    /// to nodes by id rather than to the bootstrap servers.
    pub fn set_brokers(&mut self, brokers: impl IntoIterator<Item = (i32, String)>) {
        for (id, address) in brokers {
            if self.brokers.addresses.get(&id) != Some(&address) {
                self.brokers.connections.remove(&id);
                self.brokers.addresses.insert(id, address);
            }
        }
    }

    /// Connects to a broker and says which version of each group request lagwatch would use
    /// with it; `Unsupported` when the broker lacks one (the caller falls back to librdkafka).
    pub fn check_versions(&mut self) -> Result<BTreeMap<Request, i16>, NativeError> {
        let NativeClient { runtime, brokers } = self;
        runtime
            .block_on(async {
                let (_, connection) = brokers.any().await?;
                let fail = |error| NativeError {
                    broker: Some(connection.broker().clone()),
                    error,
                };
                let find = connection
                    .version::<FindCoordinatorRequest>(Request::FindCoordinator, FIND_COORDINATOR)
                    .map_err(fail)?;
                let fetch = connection
                    .version::<OffsetFetchRequest>(Request::OffsetFetch, OFFSET_FETCH)
                    .map_err(fail)?;
                let list = connection
                    .version::<ListGroupsRequest>(Request::ListGroups, listing::LIST_GROUPS)
                    .map_err(fail)?;
                let describe = connection
                    .version::<ConsumerGroupDescribeRequest>(
                        Request::ConsumerGroupDescribe,
                        listing::CONSUMER_GROUP_DESCRIBE,
                    )
                    .map_err(fail)?;
                Ok(BTreeMap::from([
                    (Request::FindCoordinator, find),
                    (Request::OffsetFetch, fetch),
                    (Request::ListGroups, list),
                    (Request::ConsumerGroupDescribe, describe),
                ]))
            })
            .unwrap_or_else(|| Err(no_bootstrap()))
    }

    /// The groups of every type on each of `brokers` (node ids of the latest metadata):
    /// ListGroups v5 with the type filter, one request per broker, all within `budget`.
    pub fn list_groups(&mut self, brokers: &[i32], budget: Duration) -> Listing {
        let NativeClient {
            runtime,
            brokers: b,
        } = self;
        // The timer is made inside the runtime: it needs the runtime's clock.
        match runtime.block_on(async { tokio::time::timeout(budget, b.list_groups(brokers)).await })
        {
            Some(Ok(listing)) => listing,
            Some(Err(_)) => {
                self.brokers.drop_connections();
                Listing {
                    groups: Vec::new(),
                    errors: vec![out_of_time(Request::ListGroups, budget)],
                }
            }
            None => Listing::default(),
        }
    }

    /// KIP-848 groups' states and member counts, one result per group in the order given:
    /// ConsumerGroupDescribe batched per coordinator, a group whose coordinator moved or is
    /// loading asked again, all within `budget`.
    pub fn describe_consumer_groups(
        &mut self,
        groups: &[String],
        budget: Duration,
    ) -> Vec<Result<Described, NativeError>> {
        if groups.is_empty() {
            return Vec::new();
        }
        let NativeClient { runtime, brokers } = self;
        let step =
            async { tokio::time::timeout(budget, brokers.describe_consumer_groups(groups)).await };
        match runtime.block_on(step) {
            Some(Ok(described)) => described,
            Some(Err(_)) => {
                self.brokers.drop_connections();
                let error = out_of_time(Request::ConsumerGroupDescribe, budget);
                groups.iter().map(|_| Err(error.clone())).collect()
            }
            None => Vec::new(),
        }
    }

    /// The committed offsets of each group (every partition with a commit), one result per
    /// group in the order given: FindCoordinator and OffsetFetch batched per coordinator, all
    /// within `budget`.
    pub fn committed_offsets(&mut self, groups: &[String], budget: Duration) -> FetchedOffsets {
        if groups.is_empty() {
            return Vec::new();
        }
        let NativeClient { runtime, brokers } = self;
        let step = async { tokio::time::timeout(budget, brokers.committed_offsets(groups)).await };
        let outcome = runtime.block_on(step);
        self.timed_out(outcome, Request::OffsetFetch, groups, budget)
    }

    /// One result per group of a call bounded by `budget`: its own when it finished in time,
    /// else a Timeout for every group (and every connection dropped: one may hold a request
    /// half written or an answer unread); nothing after the runtime was shut down.
    fn timed_out<T>(
        &mut self,
        outcome: Option<Result<Vec<Result<T, NativeError>>, tokio::time::error::Elapsed>>,
        request: Request,
        groups: &[String],
        budget: Duration,
    ) -> Vec<Result<T, NativeError>> {
        match outcome {
            Some(Ok(results)) => results,
            Some(Err(_)) => {
                self.brokers.drop_connections();
                let error = out_of_time(request, budget);
                groups.iter().map(|_| Err(error.clone())).collect()
            }
            None => Vec::new(),
        }
    }
}

/// A call that did not finish within its share of the poll's deadline.
fn out_of_time(request: Request, budget: Duration) -> NativeError {
    NativeError {
        broker: None,
        error: KafkaCallError::Timeout {
            request,
            timeout: budget,
        },
    }
}

impl Brokers {
    /// Drops every connection: a call cut short by its deadline may have left a request half
    /// written or its answer unread on one. They are opened again on next use.
    fn drop_connections(&mut self) {
        self.connections.clear();
        self.bootstrap_connection = None;
    }

    /// The connection to node `id`, opened if there is none.
    async fn node(&mut self, id: i32) -> Result<&mut Connection, NativeError> {
        let Brokers {
            endpoint,
            addresses,
            connections,
            ..
        } = self;
        match connections.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let address = addresses.get(&id).cloned();
                let broker = BrokerRef::Node {
                    id,
                    address: address.clone(),
                };
                let Some(address) = address else {
                    return Err(NativeError {
                        broker: Some(broker),
                        error: KafkaCallError::Io {
                            request: Request::Connect,
                            message: "no address known".into(),
                        },
                    });
                };
                match Connection::open(endpoint, broker.clone(), &address).await {
                    Ok(c) => Ok(v.insert(c)),
                    Err(error) => Err(NativeError {
                        broker: Some(broker),
                        error,
                    }),
                }
            }
        }
    }

    /// Any live connection: an open one, else the first known broker that accepts one, else a
    /// bootstrap server.
    async fn any(&mut self) -> Result<(Key, &mut Connection), NativeError> {
        let mut ids: Vec<i32> = self.connections.keys().copied().collect();
        let mut known: Vec<i32> = self
            .addresses
            .keys()
            .copied()
            .filter(|id| !ids.contains(id))
            .collect();
        known.sort_unstable();
        ids.extend(known);
        let mut last = None;
        for id in ids {
            match self.node(id).await {
                Ok(_) => {
                    last = Some(id);
                    break;
                }
                Err(_) => continue,
            }
        }
        if let Some(id) = last {
            return self.node(id).await.map(|c| (Key::Node(id), c));
        }
        if self.bootstrap_connection.is_none() {
            self.bootstrap_connection =
                Some(open_bootstrap(&self.endpoint, &self.bootstrap).await?);
        }
        match self.bootstrap_connection.as_mut() {
            Some(c) => Ok((Key::Bootstrap, c)),
            None => Err(no_bootstrap()),
        }
    }

    /// Drops a connection whose request failed: the next use opens a fresh one.
    fn forget(&mut self, key: Key) {
        match key {
            Key::Node(id) => {
                self.connections.remove(&id);
            }
            Key::Bootstrap => self.bootstrap_connection = None,
        }
    }
}

fn no_bootstrap() -> NativeError {
    NativeError {
        broker: None,
        error: KafkaCallError::Io {
            request: Request::Connect,
            message: "no bootstrap servers".into(),
        },
    }
}

/// Opens a connection to the first bootstrap server that answers.
async fn open_bootstrap(
    endpoint: &Endpoint,
    bootstrap: &[String],
) -> Result<Connection, NativeError> {
    let mut last = None;
    for address in bootstrap {
        let broker = BrokerRef::Bootstrap(address.clone());
        match Connection::open(endpoint, broker.clone(), address).await {
            Ok(c) => return Ok(c),
            Err(error) => {
                last = Some(NativeError {
                    broker: Some(broker),
                    error,
                })
            }
        }
    }
    Err(last.unwrap_or_else(no_bootstrap))
}
