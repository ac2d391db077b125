//! Configuration: serde data types with documented defaults, `Config::load` (defaults → TOML
//! file → `CH_AUDIT__SECTION__KEY` env), and `validate()`. Errors name the key and the value and
//! map to exit code 2 (`ConfigError`). Secrets are `SecretString` so `Debug` never shows them.
//!
//! This file holds the whole file's `Config`, loading, the validation that spans sections, the
//! `/status` summary and the world-readable-secrets warning; each section lives in its own
//! file with its defaults and its own checks: `api` (`[api]`, `Credentials`), `activities`,
//! `inventory` (`[inventory]` and its findings), `runtime` (`[state]`, `[server]`, `[log]`,
//! `[daemon]`). Sink configs live with their sinks (`sinks::SinkConfig`).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::sinks::SinkConfig;
use crate::values::ConfigError;

mod activities;
mod api;
mod api_keys;
mod inventory;
mod runtime;

pub use activities::ActivitiesConfig;
pub use api::{ApiConfig, Credentials, DateFormat};
pub use api_keys::{ApiKeyConfig, KeySpec, default_name as api_keys_default_name};
pub use inventory::{
    BackupStale, FindingsConfig, IgnoreFields, InventoryConfig, InvitationStale, KeyExpiring,
    KeyUnused, Resource, ServiceUnhealthy, Severity, Toggle,
};
pub use runtime::{DaemonConfig, LogConfig, LogFormat, LogLevel, ServerConfig, StateConfig};

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
    /// Each section checks its own keys; what spans sections is checked here.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.api.validate()?;
        self.daemon.validate()?;
        self.activities.validate()?;
        self.inventory.validate()?;
        self.server.validate()?;
        self.validate_retention()?;
        self.validate_sinks()
    }

    /// Dedupe keys live as long as events: whatever a poll, a day-mode window or a sweep
    /// re-reads (`ActivitiesConfig::reread`) must still be stored, or it would be exported
    /// again.
    /// Every credential that `allow_insecure` lets cross a cleartext transport (the API, then
    /// the sinks in order): the daemon WARNs about each at every start and sets its gauge.
    pub fn insecure_transports(&self) -> Vec<crate::cleartext::Insecure> {
        let api = self.api.cleartext().ok().flatten();
        api.into_iter()
            .chain(self.sink_configs.iter().filter_map(|s| s.insecure.clone()))
            .collect()
    }

    fn validate_retention(&self) -> Result<(), ConfigError> {
        // `checked_add`: an overlap near `Duration::MAX` (e.g. "18446744073709551615s") made the
        // sum panic instead of failing validation.
        let min_retention = self
            .activities
            .reread()
            .checked_add(Duration::from_secs(3600));
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
        Ok(())
    }

    /// At least one sink, and unique names (they key each sink's delivery position).
    fn validate_sinks(&self) -> Result<(), ConfigError> {
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
                "keys": self.api.keys.iter().map(|k| serde_json::json!({
                    "name": k.name(), "key_id": k.key_id, "organizations": k.organizations,
                    "rate_limit_requests": k.rate_limit_requests.unwrap_or(self.api.rate_limit_requests),
                    "rate_limit_window": humantime::format_duration(k.rate_limit_window.unwrap_or(self.api.rate_limit_window)).to_string(),
                })).collect::<Vec<_>>(),
                "key_expiry_warning": humantime::format_duration(self.api.key_expiry_warning).to_string(),
                "key_expiry_degraded": humantime::format_duration(self.api.key_expiry_degraded).to_string(),
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

    /// Resolves API credentials (`ApiConfig::credentials`): `api.key_id` or
    /// `CLICKHOUSE_CLOUD_API_KEY`; the secret from `api.key_secret`, `api.key_secret_file`,
    /// `CLICKHOUSE_CLOUD_API_SECRET`, or `$CREDENTIALS_DIRECTORY/key_secret`, in that order.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        self.api.credentials()
    }
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
    "api_key",
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
