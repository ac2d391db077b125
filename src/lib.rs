//! clickhouse-audit-exporter: exports a ClickHouse Cloud organization's audit log (activities)
//! and inventory to SIEM sinks, deduplicating through a local SQLite outbox.
//!
//! Module map (one concern each):
//! - `emulator`: the built-in fake ClickHouse Cloud control-plane API (tests, `demo`, `emulator`).
pub mod emulator;
