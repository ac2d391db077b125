//! Several API keys in one process (issue 16): `ApiKeys`, one `KeyRun` per configured key, each
//! with its own `Client` (so its own rate-limit budget: one key's 429s and 401s never slow
//! another key's organizations), the organizations it sees (configured or discovered) and the
//! ones polled through it. An organization reachable through two keys is polled once, through
//! the first key in config order. A key that sees no organization is a start-up error naming it.
//!
//! Files: `mod.rs` (building the set, routing an organization to its key), `watch.rs` (the
//! own-key watch: expiry, disabled or deleted keys), `record.rs` (the key record of the spec's
//! `ApiKey` schema, and finding ours in a key list), `privilege.rs` (least privilege for
//! `validate`).

mod privilege;
mod record;
mod watch;

use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use sha2::Digest;

use crate::api::Client;
use crate::config::{ApiConfig, KeySpec};
use crate::metrics::Metrics;

pub use privilege::{Privilege, needed_permissions};
pub use record::{KeyRecord, find_own};
pub use watch::{KeyState, KeyWatch};

/// One configured key at run time.
#[derive(Clone)]
pub struct KeyRun {
    /// `api.keys[i]` or `api` (for messages).
    pub at: String,
    pub name: String,
    pub client: Client,
    /// Organizations the key sees (configured, or discovered), in the API's order.
    pub sees: Vec<String>,
    /// Organizations polled through this key (those an earlier key does not poll already).
    pub polls: Vec<String>,
    /// `[api]` settings, the key's budget and a digest of its credentials: equal means the
    /// client (and its rate-limit window) can be kept across a reload.
    identity: String,
}

impl std::fmt::Debug for KeyRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRun")
            .field("name", &self.name)
            .field("sees", &self.sees)
            .field("polls", &self.polls)
            .finish_non_exhaustive()
    }
}

/// Every configured key, in config order.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    pub keys: Vec<KeyRun>,
}

fn identity(cfg: &ApiConfig, key: &KeySpec) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(key.credentials.key_id.as_bytes())
        .chain_update([0])
        .chain_update(key.credentials.key_secret.expose_secret().as_bytes())
        .finalize();
    format!(
        "{}|{:?}|{}|{:?}|{:?}|{:?}|{}|{:?}|{}|{}",
        cfg.base_url,
        cfg.request_timeout,
        cfg.max_retries,
        cfg.max_backoff,
        cfg.date_format,
        cfg.allow_insecure,
        key.rate_limit_requests,
        key.rate_limit_window,
        key.name,
        STANDARD.encode(digest)
    )
}

impl ApiKeys {
    /// Builds a client per key (keeping `previous`'s client of a key whose settings did not
    /// change), hands each to `prepare` (with whether it was kept) before its first request,
    /// resolves the organizations each sees and decides which key polls which.
    pub async fn build<F, Fut>(
        cfg: &ApiConfig,
        metrics: &Arc<Metrics>,
        previous: Option<&ApiKeys>,
        prepare: F,
    ) -> anyhow::Result<ApiKeys>
    where
        F: Fn(&Client, bool) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let mut keys = Vec::new();
        for spec in cfg.key_specs()? {
            let identity = identity(cfg, &spec);
            let kept = previous
                .and_then(|p| p.keys.iter().find(|k| k.identity == identity))
                .map(|k| k.client.clone());
            let (at, name, organizations) = (
                spec.at.clone(),
                spec.name.clone(),
                spec.organizations.clone(),
            );
            let was_kept = kept.is_some();
            let client = match kept {
                Some(c) => c,
                None => Client::for_key(cfg, spec, metrics.clone())
                    .with_context(|| format!("building the API client of `{at}` ({name:?})"))?,
            };
            prepare(&client, was_kept).await?;
            let sees = if organizations.is_empty() {
                discover(&client, &at, &name).await?
            } else {
                organizations
            };
            keys.push(KeyRun {
                at,
                name,
                client,
                sees,
                polls: Vec::new(),
                identity,
            });
        }
        let mut set = ApiKeys { keys };
        set.assign();
        for k in &set.keys {
            metrics
                .api_key_organizations
                .with_label_values(&[&k.name])
                .set(k.polls.len() as i64);
        }
        Ok(set)
    }

    /// Each organization to the first key (config order) that sees it; says so when a later
    /// key sees it too.
    fn assign(&mut self) {
        let mut taken: Vec<(String, String)> = Vec::new();
        for k in &mut self.keys {
            k.polls.clear();
            for org in &k.sees {
                match taken.iter().find(|(o, _)| o == org) {
                    Some((_, first)) => tracing::info!(
                        org = %org,
                        key = %k.name,
                        polled_through = %first,
                        "organization reachable through several API keys: polled once, through the first in config order"
                    ),
                    None => {
                        taken.push((org.clone(), k.name.clone()));
                        k.polls.push(org.clone());
                    }
                }
            }
        }
    }

    /// Every polled organization, in config order of their keys.
    pub fn orgs(&self) -> Vec<String> {
        self.keys.iter().flat_map(|k| k.polls.clone()).collect()
    }

    /// The key that polls `org`.
    pub fn key_for(&self, org: &str) -> Option<&KeyRun> {
        self.keys.iter().find(|k| k.polls.iter().any(|o| o == org))
    }

    /// The client that polls `org` (the first key's for an organization no key polls, which
    /// only a caller's mistake produces).
    pub fn client_for(&self, org: &str) -> &Client {
        match self.key_for(org) {
            Some(k) => &k.client,
            None => &self.keys[0].client,
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.name.clone()).collect()
    }

    /// Organization → name of the key that polls it (for `/status` and `state show`).
    pub fn routes(&self) -> serde_json::Map<String, serde_json::Value> {
        self.keys
            .iter()
            .flat_map(|k| k.polls.iter().map(|o| (o.clone(), k.name.clone().into())))
            .collect()
    }
}

/// Every organization the key can see; none is an error naming the key.
async fn discover(client: &Client, at: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let list = client.organizations().await.with_context(|| {
        format!(
            "API key `{at}` ({name:?}): listing the organizations it can see (set `organizations` to skip)"
        )
    })?;
    let ids: Vec<String> = list.into_iter().filter_map(|o| o.id).collect();
    anyhow::ensure!(
        !ids.is_empty(),
        "API key `{at}` ({name:?}) sees no organization: remove it or give it access to one"
    );
    Ok(ids)
}
