//! lagwatch: a Kafka consumer-lag exporter for Prometheus.
//!
//! Data flows one way, one module per step:
//!
//! - [`config`]: YAML + CLI flags, validated once at start into typed settings.
//! - [`kafka`]: the only module that talks to Kafka (rdkafka, plus `kafka::admin_sys`, the one
//!   module holding `unsafe` FFI for admin calls rdkafka's safe API lacks). One poll of one
//!   cluster yields a [`model::Snapshot`].
//! - [`model`]: pure functions from a snapshot to a [`model::Report`] (lag, sums). No I/O.
//! - [`metrics`]: renders the latest report of every cluster, family by family, into one cached
//!   buffer (Prometheus text, OpenMetrics, gzip copies) once per poll.
//! - [`http`]: axum server for `/metrics`, `/healthz`, `/readyz` and `/` (the [`status_page`]);
//!   a scrape copies the cached buffer.
//! - [`app`]: wiring: one poll loop per cluster, the HTTP server, graceful shutdown.
//! - [`lag_command`]: `lagwatch lag`, the same polls printed as a table or JSON for a terminal.

pub mod app;
pub mod config;
pub mod http;
pub mod kafka;
pub mod lag_command;
pub mod metrics;
pub mod model;
pub mod status_page;
