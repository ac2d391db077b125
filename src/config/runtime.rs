//! The sections about the process itself rather than the data: `[state]` (the SQLite
//! outbox), `[server]` (/metrics /healthz /readyz /status), `[log]` and `[daemon]` (shutdown
//! grace, sink backoff), with their defaults and checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::values::{ConfigError, KeyPath};

/// `[state]`: the SQLite outbox.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// SQLite file (created 0600 with its directory).
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// Events every sink has delivered are pruned after this long.
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
}

fn default_state_path() -> PathBuf {
    PathBuf::from("state.db")
}
fn default_retention() -> Duration {
    Duration::from_secs(30 * 86400)
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: default_state_path(),
            retention: default_retention(),
        }
    }
}

/// `[server]`: /metrics /healthz /readyz /status.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port`; `""` disables the listener. Loopback by default.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A sink failing continuously for longer than this makes `/readyz` answer 503 (refused
    /// credentials do at once): short outages of a receiver do not page anyone.
    #[serde(default = "default_sink_unready_after", with = "humantime_serde")]
    pub sink_unready_after: Duration,
}

fn default_listen() -> String {
    "127.0.0.1:9187".into()
}

fn default_sink_unready_after() -> Duration {
    Duration::from_secs(300)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            sink_unready_after: default_sink_unready_after(),
        }
    }
}

/// `[log]`: logs go to stderr, never stdout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The most verbose level logged (dependencies log at most `info`); `RUST_LOG` wins.
    #[serde(default)]
    pub level: LogLevel,
    /// `text` for people, `json` for log shippers.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

/// `log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[daemon]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// On SIGTERM: pollers stop, sinks finish the batch in hand, then exit within this.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Cap of a failing sink's retry backoff (exponential from 0.5 s, full jitter): how long
    /// a recovered receiver may wait for the next attempt at most.
    #[serde(default = "default_sink_max_backoff", with = "humantime_serde")]
    pub sink_max_backoff: Duration,
}

fn default_grace() -> Duration {
    Duration::from_secs(10)
}

fn default_sink_max_backoff() -> Duration {
    Duration::from_secs(60)
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            shutdown_grace: default_grace(),
            sink_max_backoff: default_sink_max_backoff(),
        }
    }
}

impl ServerConfig {
    /// `listen` is `host:port` or empty.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(KeyPath::section("server").err(
                "listen",
                format!("{:?}", self.listen),
                "expected host:port such as 127.0.0.1:9187, or \"\" to disable",
            ));
        }
        Ok(())
    }
}

impl DaemonConfig {
    /// The sink backoff cap must be positive.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        KeyPath::section("daemon").nonzero("sink_max_backoff", self.sink_max_backoff)
    }
}
