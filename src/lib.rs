//! clickhouse-audit-exporter: exports a ClickHouse Cloud organization's audit log (activities)
//! and inventory to SIEM sinks, deduplicating through a local SQLite outbox.
//!
//! Module map (one concern each):
//! - `config`: the TOML/env configuration, its defaults and validation (exit 2 on errors).
//! - `event`: the outbox event as sinks see it (envelope fields + verbatim payload).
//! - `format`: event encoders (`json` envelope, `raw`, and the SIEM formats `ecs`, `ocsf`,
//!   `cef` over one activity-type catalogue).
//! - `metrics`: every Prometheus metric, one registry per instance.
//! - `store`: the SQLite outbox, cursors and sink positions (migrations in `migrations/`).
//! - `sinks`: the `Sink` trait, `SinkConfig` registry, stdout, file and webhook (Standard
//!   Webhooks signing) sinks.

pub mod config;
pub mod event;
pub mod format;
pub mod health;
pub mod metrics;
pub mod poller;
pub mod sinks;
pub mod store;
