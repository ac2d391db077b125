//! The own-key watch (issue 16): at start and every inventory interval, read each of our keys'
//! own record from its organization's key list (`GET /v1/organizations/{org}/keys`, permission
//! `control-plane:organization:view-api-keys`) and report it: the
//! `api_own_key_expiry_timestamp_seconds{key}` and `api_own_key_state{key,state}` gauges, a WARN from
//! `api.key_expiry_warning` before `expireAt`, `/readyz` degraded from `api.key_expiry_degraded`
//! before it (judged by `server::readiness` at each request, from `Health`), and a key that is
//! disabled, expired or deleted named as such, not only as a 401. When our key is refused
//! (401), another of our keys that sees the same organization reads its record; without one,
//! the 401's own message is all there is.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::record::{KeyRecord, find_own};
use crate::api::{ApiError, Client};
use crate::health::Health;
use crate::metrics::Metrics;

/// Every state `api_own_key_state{state}` takes.
const STATES: [&str; 6] = [
    "enabled", "disabled", "expired", "deleted", "refused", "unknown",
];

/// What the watch found out about one key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    Enabled {
        expires: Option<DateTime<Utc>>,
        roles: Vec<String>,
    },
    Disabled,
    Expired(Option<DateTime<Utc>>),
    Deleted,
    /// 401 and no other key could say why: the API's message.
    Refused(String),
    /// The record could not be read (e.g. 403: the key lacks view-api-keys).
    Unknown(String),
}

impl KeyState {
    pub fn label(&self) -> &'static str {
        match self {
            KeyState::Enabled { .. } => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::Expired(_) => "expired",
            KeyState::Deleted => "deleted",
            KeyState::Refused(_) => "refused",
            KeyState::Unknown(_) => "unknown",
        }
    }

    fn of(record: &KeyRecord, now: DateTime<Utc>) -> KeyState {
        let expires = record.expires().ok().flatten();
        if record.disabled() {
            KeyState::Disabled
        } else if expires.is_some_and(|e| e <= now) {
            KeyState::Expired(expires)
        } else {
            KeyState::Enabled {
                expires,
                roles: record.role_names(),
            }
        }
    }
}

/// Watches one of our keys.
pub struct KeyWatch {
    pub name: String,
    pub client: Client,
    /// The organization whose key list holds the key (the first it sees).
    pub org: String,
    /// Our other keys that see `org`: they can read this key's record when it is refused.
    pub peers: Vec<Client>,
    pub warning: Duration,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

impl KeyWatch {
    /// Reads the key's record; `None` on a transient failure (the last state stands).
    pub async fn check(&self) -> Option<KeyState> {
        let now = Utc::now();
        let key_id = self.client.key_id();
        match self.client.keys(&self.org).await {
            Ok(list) => Some(match find_own(&list, key_id) {
                Some(r) => KeyState::of(&r, now),
                None => KeyState::Unknown(format!(
                    "the key is not in the key list of organization {} (matched by id and keySuffix)",
                    self.org
                )),
            }),
            Err(ApiError::Unauthorized { message, .. }) => {
                for peer in &self.peers {
                    if let Ok(list) = peer.keys(&self.org).await {
                        return Some(match find_own(&list, key_id) {
                            None => KeyState::Deleted,
                            Some(r) => match KeyState::of(&r, now) {
                                KeyState::Enabled { .. } => KeyState::Refused(format!(
                                    "{message} (the key is enabled: is its secret wrong?)"
                                )),
                                other => other,
                            },
                        });
                    }
                }
                let lower = message.to_lowercase();
                Some(if lower.contains("disabled") {
                    KeyState::Disabled
                } else if lower.contains("expired") {
                    KeyState::Expired(None)
                } else {
                    KeyState::Refused(message)
                })
            }
            Err(e @ (ApiError::Forbidden { .. } | ApiError::NotFound { .. })) => {
                Some(KeyState::Unknown(format!(
                    "cannot read the key list of organization {} ({e}): the key's expiry is not watched; grant control-plane:organization:view-api-keys",
                    self.org
                )))
            }
            Err(e) => {
                tracing::warn!(key = %self.name, org = %self.org, error = %e, "could not read our API key's record; will try again next cycle");
                None
            }
        }
    }

    /// Publishes `state`: gauges, health (for `/readyz` and `/status`) and logs.
    pub fn report(&self, state: &KeyState) {
        let name = self.name.as_str();
        for s in STATES {
            self.metrics
                .api_own_key_state
                .with_label_values(&[name, s])
                .set(i64::from(s == state.label()));
        }
        let expires = match state {
            KeyState::Enabled { expires, .. } => *expires,
            KeyState::Expired(at) => *at,
            _ => None,
        };
        match expires {
            Some(at) => self
                .metrics
                .api_own_key_expiry
                .with_label_values(&[name])
                .set(at.timestamp() as f64),
            None => {
                let _ = self.metrics.api_own_key_expiry.remove_label_values(&[name]);
            }
        }
        let detail = match state {
            KeyState::Enabled { expires: None, .. } => None,
            KeyState::Enabled {
                expires: Some(at), ..
            } => {
                let left = (*at - Utc::now()).to_std().unwrap_or_default();
                let left_text = humantime::format_duration(Duration::from_secs(left.as_secs()));
                if left <= self.warning {
                    tracing::warn!(key = %name, expires_at = %at.to_rfc3339(), in_ = %left_text, "our API key expires soon: create a new key and put it in the configuration before then, or the audit trail stops");
                }
                Some(format!("expires {} (in {left_text})", at.to_rfc3339()))
            }
            KeyState::Disabled => Some(
                "the key is disabled in ClickHouse Cloud: enable it or configure another key"
                    .into(),
            ),
            KeyState::Expired(at) => Some(format!(
                "the key expired{}: configure a new key",
                at.map(|a| format!(" at {}", a.to_rfc3339()))
                    .unwrap_or_default()
            )),
            KeyState::Deleted => Some(
                "the key no longer exists in its organization (deleted): configure another key"
                    .into(),
            ),
            KeyState::Refused(m) | KeyState::Unknown(m) => Some(m.clone()),
        };
        match state {
            KeyState::Enabled { .. } => {}
            KeyState::Unknown(m) => tracing::warn!(key = %name, org = %self.org, "{m}"),
            _ => {
                tracing::error!(key = %name, org = %self.org, state = state.label(), detail = detail.as_deref().unwrap_or(""), "our API key cannot be used: the organizations polled through it are not exported")
            }
        }
        self.health
            .key_checked(name, state.label(), expires, detail);
    }

    /// Checks now, then every `every`, until dropped.
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(state) = self.check().await {
                self.report(&state);
            }
        }
    }
}
