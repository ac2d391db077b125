//! clickhouse-audit-exporter: exports a ClickHouse Cloud organization's audit log (activities)
//! and inventory to SIEM sinks, deduplicating through a local SQLite outbox.
//!
//! Module map (one concern each):
//! - `api`: the ClickHouse Cloud API client (rate limiter, retries, envelope decoding, wire types).
//! - `api_keys`: several API keys in one process (a client and budget each, which key polls
//!   which organization), the own-key watch (expiry, disabled/deleted) and least privilege.
//! - `cleartext`: the rule that no credential crosses a cleartext transport to a non-loopback
//!   host (API and every sink), with its `allow_insecure` escape.
//! - `cli`: the command line and its dispatch (each command's flags live with the command);
//!   `main.rs` only maps errors to exit codes.
//! - `config`: the TOML/env configuration, its defaults and validation (exit 2 on errors), one
//!   file per section.
//! - `daemon`: wiring for `run` and `once`: store, client, pollers, sink tasks, server, shutdown,
//!   SIGHUP reload, background gauge refresh and pruning.
//! - `demo`: the daemon against the built-in emulator with a stdout sink.
//! - `dispatch`: one task per sink: read after its position, deliver with retry, commit.
//! - `emulator`: the built-in fake ClickHouse Cloud control-plane API (tests, `demo`, `emulator`).
//! - `event`: the outbox event as sinks see it (envelope fields + verbatim payload).
//! - `footprint`: the process's memory footprint (malloc arenas, handing freed heap back,
//!   paging out the executable's startup code once settled).
//! - `format`: event encoders (`json` envelope, `raw`, and the SIEM formats `ecs`, `ocsf`,
//!   `cef` over one activity-type catalogue).
//! - `health`: what pollers and sinks last did, for `/readyz`, `/status` and `once`.
//! - `http`: the one home of HTTP plumbing (client, Retry-After, status classes, POST + gzip,
//!   URL checks and redaction) for the API client, the HTTP sinks and `healthcheck`.
//! - `logging`: tracing to stderr, text or JSON.
//! - `metrics`: every Prometheus metric, one registry per instance.
//! - `notify`: systemd's sd_notify protocol (READY, STATUS, RELOADING, STOPPING, WATCHDOG).
//! - `poller`: activity polling (windows, cursor rule, dedupe) behind `ActivitySource`; inventory
//!   polling (snapshots, change events, posture findings).
//! - `retry`: the one retry backoff (capped exponential, jitter mode named) for the API client,
//!   dispatch and Splunk's acknowledgement polls.
//! - `server`: /metrics /healthz /readyz /status.
//! - `shutdown`: SIGTERM/SIGINT/SIGHUP handling.
//! - `sinks`: the `Sink` trait, `SinkConfig` registry, stdout, file, webhook (Standard
//!   Webhooks signing), syslog (RFC 5424), splunk_hec, clickhouse, kafka, otlp,
//!   elasticsearch (`_bulk`) and azure_logs_ingestion (Microsoft Sentinel) sinks.
//! - `state_cmd`: `state show | rewind | verify | reset` and their flags.
//! - `store`: the SQLite outbox, cursors, sink positions, inventory snapshots and findings
//!   (migrations in `migrations/`).
//! - `validate`: the `validate` command's config, credential and permission checks.
//! - `values`: leaf config-value types (`ConfigError`, `KeyPath`, secret files, sizes) that
//!   `config` and the sink configs share without importing each other.

pub mod api;
pub mod api_keys;
pub mod cleartext;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dispatch;
pub mod emulator;
pub mod event;
pub mod footprint;
pub mod format;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod poller;
pub mod retry;
pub mod server;
pub mod shutdown;
pub mod sinks;
pub mod state_cmd;
pub mod store;
pub mod validate;
pub mod values;
