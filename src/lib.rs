//! clickhouse-audit-exporter: exports a ClickHouse Cloud organization's audit log (activities)
//! and inventory to SIEM sinks, deduplicating through a local SQLite outbox.
//!
//! Module map (one concern each):
//! - `config`: the TOML/env configuration, its defaults and validation (exit 2 on errors).
//! - `event`: the outbox event as sinks see it (envelope fields + verbatim payload).
//! - `format`: event encoders (`json` envelope, `raw`).
//! - `metrics`: every Prometheus metric, one registry per instance.
//! - `store`: the SQLite outbox, cursors and sink positions (migrations in `migrations/`).
//! - `sinks`: the `Sink` trait, `SinkConfig` registry, stdout and file sinks.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dispatch;
pub mod event;
pub mod format;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod server;
pub mod shutdown;
pub mod sinks;
pub mod state_cmd;
pub mod store;
pub mod validate;
