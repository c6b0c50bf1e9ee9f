//! lagwatch: a Kafka consumer-lag exporter for Prometheus.
//!
//! Data flows one way, one module per step; a module imports only from the steps before it:
//!
//! - [`config`]: YAML + CLI flags, validated once at start into typed settings.
//! - [`kafka`]: the only module that talks to Kafka (rdkafka, plus `kafka::admin_sys`, the one
//!   module holding `unsafe` FFI for admin calls rdkafka's safe API lacks). One poll of one
//!   cluster yields a [`model::Snapshot`]; failed stages are [`kafka::Stage`]s.
//! - [`model`]: pure functions from a snapshot (and the analytics state kept across polls) to a
//!   [`model::Report`]: lag, time lag, eviction risk, skew, status. No I/O.
//! - [`poll`]: one complete poll of one cluster (collect, read timestamps, finish the model),
//!   shared by the daemon and `lagwatch lag`.
//! - [`cluster_state`]: what is served about each cluster between polls (latest good report,
//!   up, errors, requests, poll durations).
//! - [`metrics`]: renders every cluster's state, family by family, into one cached buffer
//!   (Prometheus text, OpenMetrics, gzip copies) once per poll.
//! - [`human`]: durations written for people; [`status_page`]: the `/` page.
//! - [`http`]: axum server for `/metrics`, `/healthz`, `/readyz` and `/`; a scrape copies the
//!   cached buffer.
//! - [`app`]: wiring: one poll loop per cluster, the HTTP server, graceful shutdown.
//! - [`lag_command`]: `lagwatch lag`, the same polls printed as a table or JSON for a terminal.

pub mod app;
pub mod cluster_state;
pub mod config;
pub mod http;
pub mod human;
pub mod kafka;
pub mod lag_command;
pub mod metrics;
pub mod model;
pub mod poll;
pub mod status_page;
