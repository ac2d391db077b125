//! Logging setup: `tracing` to stderr (never stdout, which may carry events), text or JSON,
//! level from config unless `RUST_LOG` says otherwise.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber; a second call is a no-op.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Our crate at the chosen level; dependencies one notch quieter below debug.
        let deps = match level {
            LogLevel::Trace | LogLevel::Debug => "info",
            other => other.as_str(),
        };
        EnvFilter::new(format!(
            "{deps},clickhouse_audit_exporter={}",
            level.as_str()
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
