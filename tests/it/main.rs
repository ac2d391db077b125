//! The one integration test crate (ripgrep style): a module per behaviour, shared helpers in
//! `support/`.

mod azure_logs_ingestion;
mod cleartext;
mod cli;
mod clickhouse_sink;
mod client;
mod config;
mod elasticsearch;
mod emulator;
mod faults;
mod formats;
mod inventory;
mod kafka;
mod keys;
mod object_store;
mod ops;
mod otlp;
mod pipeline;
mod security;
mod security_lake;
mod splunk;
mod support;
mod syslog;
mod webhook;
