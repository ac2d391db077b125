//! clickhouse-audit-exporter: exports a ClickHouse Cloud organization's audit log (activities)
//! and inventory to SIEM sinks, deduplicating through a local SQLite outbox.
//!
//! Module map (one concern each):
//! - `api`: the ClickHouse Cloud API client (rate limiter, retries, envelope decoding, wire types).
//! - `config`: the TOML/env configuration, its defaults and validation (exit 2 on errors).
//! - `event`: the outbox event as sinks see it (envelope fields + verbatim payload).
//! - `format`: event encoders (`json` envelope, `raw`).
//! - `metrics`: every Prometheus metric, one registry per instance.
//! - `sinks`: the `Sink` trait, `SinkConfig` registry, stdout and file sinks.

pub mod api;
pub mod config;
pub mod event;
pub mod format;
pub mod metrics;
pub mod sinks;
