//! Configuration: serde data types with documented defaults, `Config::load` (defaults → TOML
//! file → `CH_AUDIT__SECTION__KEY` env), and `validate()`. Errors name the key and the value and
//! map to exit code 2 (`ConfigError`). Secrets are `SecretString` so `Debug` never shows them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::sinks::SinkConfig;
use crate::values::{ConfigError, read_secret_file};

mod inventory;

pub use inventory::{
    BackupStale, FindingsConfig, IgnoreFields, InventoryConfig, InvitationStale, KeyExpiring,
    KeyUnused, Resource, ServiceUnhealthy, Severity, Toggle,
};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub activities: ActivitiesConfig,
    #[serde(default)]
    pub inventory: InventoryConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// `[[sinks]]`: each table's `type` picks the variant; parsed by `sinks::SinkConfig::parse`
    /// so that an unknown key names its sink.
    #[serde(default)]
    sinks: RawSinks,
    /// Parsed sinks (filled by `load`).
    #[serde(skip)]
    pub sink_configs: Vec<SinkConfig>,
}

/// The raw `[[sinks]]` tables, kept only until parsed. They may hold secrets (tokens,
/// passwords), so `Debug` shows how many there are, never their values.
#[derive(Default, Deserialize)]
#[serde(transparent)]
struct RawSinks(Vec<serde_json::Map<String, serde_json::Value>>);

impl std::fmt::Debug for RawSinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} raw sink table(s), see sink_configs]", self.0.len())
    }
}

/// `[api]`: how to reach and authenticate to the ClickHouse Cloud control plane.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Control-plane base URL (paths `/v1/...` are appended).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// API key id; else env `CLICKHOUSE_CLOUD_API_KEY`.
    #[serde(default)]
    pub key_id: Option<String>,
    /// API key secret; else `key_secret_file`, env `CLICKHOUSE_CLOUD_API_SECRET`,
    /// or `$CREDENTIALS_DIRECTORY/key_secret` (systemd `LoadCredential=key_secret:…`).
    #[serde(default)]
    pub key_secret: Option<SecretString>,
    /// File holding the key secret (trailing newline ignored).
    #[serde(default)]
    pub key_secret_file: Option<PathBuf>,
    /// Organizations to export; empty = every organization the key can see.
    #[serde(default)]
    pub organizations: Vec<String>,
    /// Timeout of one HTTP request (connect + full body).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// At most this many requests in ANY rolling `rate_limit_window`, shared by every call.
    #[serde(default = "default_rate_limit_requests")]
    pub rate_limit_requests: u32,
    /// The rolling window of the rate limit (vendor: 10 requests / 10 s per key).
    #[serde(default = "default_rate_limit_window", with = "humantime_serde")]
    pub rate_limit_window: Duration,
    /// How `from_date`/`to_date` are written: `rfc3339` (the default,
    /// `YYYY-MM-DDTHH:MM:SS.000Z`: the only date-time form seen to pass the live API, which
    /// refuses other fraction lengths), `naive` (`YYYY-MM-DDTHH:MM:SS.000`, UTC without a zone,
    /// what the vendor's Splunk poller sends; unproven live), or `date` (`YYYY-MM-DD`). A 400
    /// about dates switches the client to `date` for good.
    #[serde(default)]
    pub date_format: DateFormat,
    /// Retries of one call after 5xx, timeouts and connection errors (429s wait and retry too).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Cap of the exponential retry backoff.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
}

fn default_base_url() -> String {
    "https://api.clickhouse.cloud".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_rate_limit_requests() -> u32 {
    10
}
fn default_rate_limit_window() -> Duration {
    Duration::from_secs(10)
}
fn default_max_retries() -> u32 {
    5
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            base_url: default_base_url(),
            key_id: None,
            key_secret: None,
            key_secret_file: None,
            organizations: Vec::new(),
            request_timeout: default_request_timeout(),
            rate_limit_requests: default_rate_limit_requests(),
            rate_limit_window: default_rate_limit_window(),
            date_format: DateFormat::default(),
            max_retries: default_max_retries(),
            max_backoff: default_max_backoff(),
        }
    }
}

/// The wire form of the activity window bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DateFormat {
    Naive,
    #[default]
    Rfc3339,
    Date,
}

/// `[activities]`: the audit-log poller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitiesConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time between polls of one organization.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Each poll re-reads `[cursor - overlap, now]`; activities visible later than this after
    /// their `createdAt` (plus clock skew) can be missed.
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,
    /// Where a fresh state starts: `now - initial_lookback`.
    #[serde(default = "default_initial_lookback", with = "humantime_serde")]
    pub initial_lookback: Duration,
    /// Longer ranges are split and fetched oldest first.
    #[serde(default = "default_max_window", with = "humantime_serde")]
    pub max_window: Duration,
    /// A window answering more activities than this is split in halves from then on
    /// (the API has no pagination).
    #[serde(default = "default_split_threshold")]
    pub split_threshold: usize,
    /// Stop reading an answer past this size and split the window instead (bounded memory
    /// whatever the backlog; a one-second window is always read whole).
    #[serde(
        default = "default_max_response_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub max_response_bytes: u64,
    /// How often each organization's recent past is re-read in wide windows (a self-verifying
    /// sweep that stores whatever the polls missed); `"0s"` turns sweeps off.
    #[serde(default = "default_reconcile_interval", with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// How far back a sweep re-reads (widened by a day towards the past, so a zone reading of
    /// the bounds is covered).
    #[serde(default = "default_reconcile_lookback", with = "humantime_serde")]
    pub reconcile_lookback: Duration,
    /// Observed visibility delays grow the poll's overlap up to this.
    #[serde(default = "default_max_overlap", with = "humantime_serde")]
    pub max_overlap: Duration,
}

fn default_reconcile_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_reconcile_lookback() -> Duration {
    Duration::from_secs(2 * 86400)
}
fn default_max_overlap() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_max_response_bytes() -> u64 {
    32 << 20
}

fn yes() -> bool {
    true
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_overlap() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_initial_lookback() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_max_window() -> Duration {
    Duration::from_secs(86400)
}
fn default_split_threshold() -> usize {
    50_000
}

impl Default for ActivitiesConfig {
    fn default() -> Self {
        ActivitiesConfig {
            enabled: true,
            interval: default_interval(),
            overlap: default_overlap(),
            initial_lookback: default_initial_lookback(),
            max_window: default_max_window(),
            split_threshold: default_split_threshold(),
            max_response_bytes: default_max_response_bytes(),
            reconcile_interval: default_reconcile_interval(),
            reconcile_lookback: default_reconcile_lookback(),
            max_overlap: default_max_overlap(),
        }
    }
}

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
    #[serde(default)]
    pub level: LogLevel,
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

/// API credentials resolved from config, files and environment.
pub struct Credentials {
    pub key_id: String,
    pub key_secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .field("key_secret", &"[REDACTED]")
            .finish()
    }
}

/// Where the environment is read from: the process, or a map in tests.
pub type EnvSource = Option<std::collections::HashMap<String, String>>;

impl Config {
    /// Loads defaults, then the TOML file at `path` (missing file = defaults only when
    /// `required` is false), then `CH_AUDIT__SECTION__KEY` variables, then validates.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        Self::load_with_env(path, required, None)
    }

    /// `load` with an explicit environment (tests).
    pub fn load_with_env(
        path: &Path,
        required: bool,
        env: EnvSource,
    ) -> Result<Config, ConfigError> {
        if required && !path.exists() {
            return Err(ConfigError(format!(
                "config file {} not found (set --config or CH_AUDIT_CONFIG)",
                path.display()
            )));
        }
        let file = config::File::from(path)
            .format(config::FileFormat::Toml)
            .required(required);
        Self::build(
            config::Config::builder().add_source(file),
            env,
            &path.display().to_string(),
        )
    }

    /// Parses a TOML string (tests, `demo`).
    pub fn from_toml(toml: &str, env: EnvSource) -> Result<Config, ConfigError> {
        let src = config::File::from_str(toml, config::FileFormat::Toml);
        Self::build(config::Config::builder().add_source(src), env, "<inline>")
    }

    fn build(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
        env: EnvSource,
        origin: &str,
    ) -> Result<Config, ConfigError> {
        let environment = config::Environment::with_prefix("CH_AUDIT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("api.organizations")
            .with_list_parse_key("inventory.resources")
            .with_list_parse_key("inventory.service_idle_states")
            .with_list_parse_key("inventory.ignore_fields.services")
            .with_list_parse_key("inventory.ignore_fields.keys")
            .with_list_parse_key("inventory.ignore_fields.members")
            .with_list_parse_key("inventory.ignore_fields.invitations")
            .with_list_parse_key("inventory.ignore_fields.backups")
            .with_list_parse_key("inventory.findings.admin_roles")
            .with_list_parse_key("inventory.findings.service_unhealthy.states")
            .source(env);
        let raw = builder
            .add_source(environment)
            .build()
            .map_err(|e| ConfigError(format!("reading config {origin}: {e}")))?;
        let mut cfg: Config = raw
            .try_deserialize()
            .map_err(|e| ConfigError(format!("config {origin}: {}", describe_serde_error(&e))))?;
        cfg.sink_configs = cfg
            .sinks
            .0
            .iter()
            .enumerate()
            .map(|(i, table)| SinkConfig::parse(i, table))
            .collect::<Result<_, _>>()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values serde cannot: URLs, ranges, unique sink names, a non-empty sink list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.api.base_url)
            .map_err(|e| ConfigError::key("api.base_url", format!("{:?}", self.api.base_url), e))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError::key(
                "api.base_url",
                format!("{:?}", self.api.base_url),
                "must be an http(s) URL with a host",
            ));
        }
        if self.api.rate_limit_requests == 0 {
            return Err(ConfigError::key(
                "api.rate_limit_requests",
                0,
                "must be at least 1",
            ));
        }
        nonzero("api.rate_limit_window", self.api.rate_limit_window)?;
        nonzero("api.request_timeout", self.api.request_timeout)?;
        nonzero("daemon.sink_max_backoff", self.daemon.sink_max_backoff)?;
        nonzero("activities.interval", self.activities.interval)?;
        nonzero("activities.max_window", self.activities.max_window)?;
        // Upper bounds keep the poller's millisecond arithmetic far from i64 overflow (an
        // absurd `max_window = "500000000y"` passed validation, found while fuzzing, issue 8).
        const DAY: u64 = 86_400;
        for (key, d, max) in [
            ("activities.interval", self.activities.interval, DAY),
            ("activities.overlap", self.activities.overlap, 7 * DAY),
            (
                "activities.max_overlap",
                self.activities.max_overlap,
                7 * DAY,
            ),
            (
                "activities.reconcile_interval",
                self.activities.reconcile_interval,
                30 * DAY,
            ),
            (
                "activities.reconcile_lookback",
                self.activities.reconcile_lookback,
                366 * DAY,
            ),
            (
                "activities.max_window",
                self.activities.max_window,
                366 * DAY,
            ),
            (
                "activities.initial_lookback",
                self.activities.initial_lookback,
                3660 * DAY,
            ),
        ] {
            if d > Duration::from_secs(max) {
                return Err(ConfigError::key(
                    key,
                    format!("\"{}\"", humantime::format_duration(d)),
                    format!(
                        "must be at most {}",
                        humantime::format_duration(Duration::from_secs(max))
                    ),
                ));
            }
        }
        self.inventory.validate()?;
        if self.activities.split_threshold == 0 {
            return Err(ConfigError::key(
                "activities.split_threshold",
                0,
                "must be at least 1",
            ));
        }
        if self.activities.max_overlap < self.activities.overlap {
            return Err(ConfigError::key(
                "activities.max_overlap",
                format!(
                    "\"{}\"",
                    humantime::format_duration(self.activities.max_overlap)
                ),
                "must be at least activities.overlap (observed delays only ever grow the overlap)",
            ));
        }
        if self.activities.reconcile_interval > Duration::ZERO
            && self.activities.reconcile_lookback.is_zero()
        {
            return Err(ConfigError::key(
                "activities.reconcile_lookback",
                "\"0s\"",
                "must be positive while activities.reconcile_interval is on (\"0s\" turns sweeps off)",
            ));
        }
        if self.api.key_secret.is_some() && self.api.key_secret_file.is_some() {
            return Err(ConfigError(
                "config keys `api.key_secret` and `api.key_secret_file` are both set: keep one"
                    .into(),
            ));
        }
        if !self.server.listen.is_empty()
            && self.server.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::key(
                "server.listen",
                format!("{:?}", self.server.listen),
                "expected host:port such as 127.0.0.1:9187, or \"\" to disable",
            ));
        }
        // `checked_add`: an overlap near `Duration::MAX` (e.g. "18446744073709551615s") made the
        // sum panic instead of failing validation.
        // Dedupe keys live as long as events: whatever a poll, a day-mode window (up to two
        // whole days) or a sweep (lookback + one day) re-reads must still be stored, or it
        // would be exported again.
        let reread = self.activities.max_overlap.max(self.activities.overlap)
            + Duration::from_secs(2 * DAY)
            + if self.activities.reconcile_interval.is_zero() {
                Duration::ZERO
            } else {
                self.activities.reconcile_lookback + Duration::from_secs(DAY)
            };
        let min_retention = reread.checked_add(Duration::from_secs(3600));
        if min_retention.is_none_or(|min| self.state.retention < min) {
            return Err(ConfigError::key(
                "state.retention",
                format!("\"{}\"", humantime::format_duration(self.state.retention)),
                format!(
                    "must exceed what the poller may re-read (activities.max_overlap + 2 days of day-mode windows + activities.reconcile_lookback + 1 day) by at least 1h: at least {} (dedupe keys live as long as events)",
                    humantime::format_duration(min_retention.unwrap_or(Duration::MAX))
                ),
            ));
        }
        if self.sink_configs.is_empty() {
            return Err(ConfigError(
                "config key `sinks` is empty: add at least one [[sinks]] table (e.g. type = \"stdout\")"
                    .into(),
            ));
        }
        let mut names = HashSet::new();
        for (i, sink) in self.sink_configs.iter().enumerate() {
            if !names.insert(sink.name.as_str()) {
                return Err(ConfigError::key(
                    &format!("sinks[{i}].name"),
                    format!("{:?}", sink.name),
                    "duplicate sink name (names key each sink's delivery position)",
                ));
            }
        }
        Ok(())
    }

    /// A secret-free summary for `/status` and logs.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "api": {
                "base_url": self.api.base_url,
                "key_id": self.api.key_id,
                "organizations": self.api.organizations,
                "date_format": format!("{:?}", self.api.date_format).to_lowercase(),
                "rate_limit": format!("{} per {}", self.api.rate_limit_requests, humantime::format_duration(self.api.rate_limit_window)),
            },
            "activities": {
                "enabled": self.activities.enabled,
                "interval": humantime::format_duration(self.activities.interval).to_string(),
                "overlap": humantime::format_duration(self.activities.overlap).to_string(),
                "initial_lookback": humantime::format_duration(self.activities.initial_lookback).to_string(),
                "max_window": humantime::format_duration(self.activities.max_window).to_string(),
            },
            "inventory": {
                "enabled": self.inventory.enabled,
                "interval": humantime::format_duration(self.inventory.interval).to_string(),
                "resources": self.inventory.resources.iter().map(|r| r.plural()).collect::<Vec<_>>(),
                "backup_interval": humantime::format_duration(self.inventory.backup_interval).to_string(),
                "backups_per_cycle": self.inventory.backups_per_cycle,
            },
            "state": { "path": self.state.path, "retention": humantime::format_duration(self.state.retention).to_string() },
            "sinks": self.sink_configs.iter().map(|s| serde_json::json!({
                "name": s.name, "type": s.kind.type_name(), "format": s.format.as_str(), "batch_max_events": s.batch_max_events,
            })).collect::<Vec<_>>(),
        })
    }

    /// Resolves API credentials: `api.key_id` or `CLICKHOUSE_CLOUD_API_KEY`; the secret from
    /// `api.key_secret`, `api.key_secret_file`, `CLICKHOUSE_CLOUD_API_SECRET`, or
    /// `$CREDENTIALS_DIRECTORY/key_secret`, in that order.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let key_id = self
            .api
            .key_id
            .clone()
            .or_else(|| std::env::var("CLICKHOUSE_CLOUD_API_KEY").ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "no API key id: set `api.key_id` or env CLICKHOUSE_CLOUD_API_KEY".into(),
                )
            })?;
        let key_secret = if let Some(s) = &self.api.key_secret {
            s.clone()
        } else if let Some(path) = &self.api.key_secret_file {
            read_secret_file(path, "api.key_secret_file")?
        } else if let Ok(s) = std::env::var("CLICKHOUSE_CLOUD_API_SECRET") {
            SecretString::from(s)
        } else if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            read_secret_file(
                &Path::new(&dir).join("key_secret"),
                "$CREDENTIALS_DIRECTORY/key_secret",
            )?
        } else {
            return Err(ConfigError(
                "no API key secret: set `api.key_secret`, `api.key_secret_file`, env \
                 CLICKHOUSE_CLOUD_API_SECRET, or systemd LoadCredential=key_secret:…"
                    .into(),
            ));
        };
        if key_secret.expose_secret().is_empty() {
            return Err(ConfigError("the API key secret is empty".into()));
        }
        Ok(Credentials { key_id, key_secret })
    }
}

fn nonzero(key: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::key(key, "\"0s\"", "must be greater than zero"));
    }
    Ok(())
}

/// Turns a `config`/serde error into a message naming the key and the value when possible.
fn describe_serde_error(e: &config::ConfigError) -> String {
    e.to_string()
}

/// Keys whose inline values are secrets (each also has a `*_file` form).
const SECRET_KEYS: &[&str] = &[
    "key_secret",
    "password",
    "sasl_password",
    "token",
    "basic_auth_password",
    "bearer_token",
    "signing_secret",
];

/// When the config file at `path` is readable by every user and holds inline secrets: a
/// warning naming the file, the keys (never their values) and the fix.
pub fn world_readable_secrets(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o004 == 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| SECRET_KEYS.contains(k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    (!keys.is_empty()).then(|| {
        format!(
            "{} is readable by every user (mode {:o}) and holds secrets ({}): chmod 0640 or 0600, or move them to *_file keys / $CREDENTIALS_DIRECTORY",
            path.display(),
            mode & 0o777,
            keys.join(", ")
        )
    })
}
