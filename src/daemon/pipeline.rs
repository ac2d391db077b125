//! `Pipeline`: everything one configuration needs, built once (and again on each reload):
//! the store, one API client per key (with what the state remembers of the API: each key's
//! recent requests and the date format it accepted), the organizations to export and the key
//! each is polled through, and the constructors of its poller, key-watch and sink tasks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Control;
use crate::api::Client;
use crate::api_keys::{ApiKeys, KeyWatch};
use crate::config::Config;
use crate::dispatch::{Backoff, SinkTask};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::poller::activities::{self, ActivityPoller};
use crate::poller::decode_permit::DecodePermit;
use crate::poller::inventory::{self, InventoryPoller};
use crate::poller::{ClientSource, SystemClock};
use crate::server::View;
use crate::store::Store;

/// `meta` key of the API requests of the last process still inside the rate-limit window
/// (the single-key form's; each key of `[[api.keys]]` has its own, suffixed `/<name>`).
const RECENT_REQUESTS_KEY: &str = "api_recent_requests";
/// `meta` key of organization → the name of the key it is polled through (`state show`).
pub const ORG_KEYS_KEY: &str = "api_org_keys";

/// Everything a run needs, built once (and again on each reload).
pub struct Pipeline {
    pub cfg: Config,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// One client per key, and which organizations each polls.
    pub keys: ApiKeys,
    /// Every organization polled (each once), in config order of their keys.
    pub orgs: Vec<String>,
    pub wake: watch::Sender<i64>,
    pub reopen: watch::Sender<u64>,
    /// One activities answer read at a time across the organizations of each API key
    /// (issue 17), by key name.
    pub decode: BTreeMap<String, Arc<DecodePermit>>,
}

/// WARNs about every credential `allow_insecure` lets cross a cleartext transport, at every
/// start and reload, and sets `insecure_transport{component}` to match the configuration.
fn announce_insecure(cfg: &Config, metrics: &Metrics) {
    metrics.insecure_transport.reset();
    for insecure in cfg.insecure_transports() {
        tracing::warn!(
            component = %insecure.component,
            detail = %insecure.detail,
            "allow_insecure: a credential crosses the network unencrypted; anyone on the path can read it"
        );
        metrics
            .insecure_transport
            .with_label_values(&[&insecure.component])
            .set(1);
    }
}

impl Pipeline {
    /// Opens the store, builds the client, resolves the organizations to export.
    pub async fn build(cfg: Config) -> anyhow::Result<Pipeline> {
        Self::build_with(
            cfg,
            Arc::new(Metrics::new()),
            Arc::new(Health::default()),
            None,
        )
        .await
    }

    /// `build`, sharing `metrics` and `health`; on reload `previous` lends its store and
    /// client when the new configuration keeps their settings.
    pub(super) async fn build_with(
        cfg: Config,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        previous: Option<&Pipeline>,
    ) -> anyhow::Result<Pipeline> {
        metrics
            .overlap_seconds
            .set(cfg.activities.overlap.as_secs_f64());
        metrics
            .interval_seconds
            .set(cfg.activities.interval.as_secs_f64());
        announce_insecure(&cfg, &metrics);
        cfg.api.key_specs()?;
        let store = match previous {
            Some(p) if p.cfg.state.path == cfg.state.path => p.store.clone(),
            _ => crate::store::open_guarded(&cfg.state.path)?,
        };
        // Before a client's first request (organization discovery): a client new to this
        // process starts with the requests its key's last process made still in its window.
        let single = cfg.api.keys.is_empty();
        let keys = ApiKeys::build(&cfg.api, &metrics, previous.map(|p| &p.keys), |c, kept| {
            let (store, c) = (store.clone(), c.clone());
            async move {
                if !kept {
                    restore_recent_requests(&store, &c, single).await?;
                }
                restore_date_format(&store, &c).await
            }
        })
        .await?;
        let orgs = keys.orgs();
        // Merged into what is kept: an organization no longer polled keeps its last key.
        let mut routes: serde_json::Map<String, serde_json::Value> = store
            .meta_get(ORG_KEYS_KEY)
            .await?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        routes.extend(keys.routes());
        let routes = serde_json::Value::Object(routes).to_string();
        if let Err(e) = store.meta_set(ORG_KEYS_KEY, routes).await {
            tracing::warn!(error = %format!("{e:#}"), "could not record which key polls which organization in the state");
        }
        health.set_keys(
            keys.keys
                .iter()
                .map(|k| {
                    (
                        k.name.clone(),
                        crate::health::KeyHealth {
                            organizations: k.polls.clone(),
                            also_sees: k
                                .sees
                                .iter()
                                .filter(|o| !k.polls.contains(o))
                                .cloned()
                                .collect(),
                            rate_limit: k.client.rate_limit(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        );
        tracing::info!(orgs = ?orgs, keys = ?keys.names(), sinks = cfg.sink_configs.len(), state = %cfg.state.path.display(), "pipeline ready");
        let max_seq = store.max_seq().await?;
        let decode = keys
            .names()
            .into_iter()
            .map(|name| (name, Arc::default()))
            .collect();
        Ok(Pipeline {
            cfg,
            store,
            metrics,
            health,
            keys,
            orgs,
            wake: watch::channel(max_seq).0,
            reopen: watch::channel(0).0,
            decode,
        })
    }

    /// `meta` key of a key's recent requests.
    fn recent_requests_key(&self, client: &Client) -> String {
        recent_requests_key(client, self.cfg.api.keys.is_empty())
    }

    /// Keeps the key's requests still inside the rate-limit window in the state, so the next
    /// process (a restart, the next `once`) does not send a full burst into a window the API
    /// still counts (a 429 right after every restart otherwise; issue 12).
    pub(super) async fn save_recent_requests(&self) {
        for key in &self.keys.keys {
            let times: Vec<i64> = key
                .client
                .recent_requests()
                .iter()
                .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .collect();
            let text = serde_json::to_string(&times).expect("a list of integers serializes");
            let meta = self.recent_requests_key(&key.client);
            if let Err(e) = self.store.meta_set(&meta, text).await {
                tracing::warn!(key = %key.name, error = %format!("{e:#}"), "could not keep the recent API requests in the state; the next start may meet a 429");
            }
        }
    }

    /// The own-key watch of every key (see `api_keys::watch`).
    pub(super) fn key_watches(&self) -> Vec<KeyWatch> {
        let keys = &self.keys.keys;
        keys.iter()
            .filter_map(|k| {
                let org = k.sees.first()?.clone();
                let peers = keys
                    .iter()
                    .filter(|p| p.name != k.name && p.sees.contains(&org))
                    .map(|p| p.client.clone())
                    .collect();
                Some(KeyWatch {
                    name: k.name.clone(),
                    client: k.client.clone(),
                    org,
                    peers,
                    warning: self.cfg.api.key_expiry_warning,
                    metrics: self.metrics.clone(),
                    health: self.health.clone(),
                })
            })
            .collect()
    }

    pub(super) fn poller(&self, org: &str) -> ActivityPoller {
        ActivityPoller {
            org: org.to_string(),
            source: Arc::new(ClientSource(self.keys.client_for(org).clone())),
            store: self.store.clone(),
            settings: activities::Settings::from(&self.cfg.activities),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            wake: self.wake.clone(),
            clock: Arc::new(SystemClock),
            steady_anchor: std::sync::Mutex::new(None),
            learned: Arc::new(activities::Learned::default()),
            decode: self.decode_permit(org),
        }
    }

    /// The decode permit of the key `org` is polled through. Orgs of one key share its rate
    /// budget, so one holding the permit while it waits for the key's limiter keeps nothing
    /// from the others; orgs of different keys never wait for each other (a key answered 429
    /// for minutes must not stall them).
    fn decode_permit(&self, org: &str) -> Arc<DecodePermit> {
        self.keys
            .key_for(org)
            .and_then(|k| self.decode.get(&k.name))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn inventory_poller(&self, org: &str) -> InventoryPoller {
        InventoryPoller::new(
            org.to_string(),
            inventory::Shared {
                client: self.keys.client_for(org).clone(),
                store: self.store.clone(),
                cfg: Arc::new(self.cfg.inventory.clone()),
                metrics: self.metrics.clone(),
                health: self.health.clone(),
                wake: self.wake.clone(),
                clock: Arc::new(SystemClock),
            },
        )
    }

    pub(super) fn sink_tasks(&self) -> anyhow::Result<Vec<SinkTask>> {
        self.cfg
            .sink_configs
            .iter()
            .map(|sc| {
                Ok(SinkTask {
                    name: sc.name.clone(),
                    sink: sc
                        .build_with_metrics(self.metrics.clone())
                        .with_context(|| format!("building sink {:?}", sc.name))?,
                    batch_max_events: sc.batch_max_events,
                    batch_timeout: sc.batch_timeout(),
                    store: self.store.clone(),
                    metrics: self.metrics.clone(),
                    health: self.health.clone(),
                    backoff: Backoff {
                        max: self.cfg.daemon.sink_max_backoff,
                        ..Backoff::default()
                    },
                    wake: self.wake.subscribe(),
                    reopen: self.reopen.subscribe(),
                    producers_done: None,
                })
            })
            .collect()
    }

    /// Every poller (`org/stream`) this configuration runs, with its interval.
    fn pollers(&self) -> Vec<(String, Duration)> {
        let mut pollers = Vec::new();
        for o in &self.orgs {
            if self.cfg.activities.enabled {
                pollers.push((
                    format!("{o}/{}", activities::STREAM),
                    self.cfg.activities.interval,
                ));
            }
            if self.cfg.inventory.enabled {
                pollers.push((
                    format!("{o}/{}", inventory::STREAM),
                    self.cfg.inventory.interval,
                ));
            }
        }
        pollers
    }

    pub(super) fn poller_keys(&self) -> Vec<String> {
        self.pollers().into_iter().map(|(k, _)| k).collect()
    }

    pub(super) fn sink_names(&self) -> Vec<String> {
        self.cfg
            .sink_configs
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    pub(super) fn view(&self) -> View {
        View {
            store: self.store.clone(),
            pollers: self.pollers(),
            sinks: self.sink_names(),
            keys: self.keys.names(),
            key_expiry_degraded: self.cfg.api.key_expiry_degraded,
            sink_failure_threshold: self.cfg.server.sink_unready_after,
            config_summary: self.cfg.summary(),
        }
    }

    /// Runs until `token` is cancelled, then drains within `daemon.shutdown_grace`.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        self.run_with(token, Control::default()).await
    }

    /// `run`, also answering SIGHUP (`control.hup`) and notifying systemd.
    pub async fn run_with(self, token: CancellationToken, control: Control) -> anyhow::Result<()> {
        super::supervise::supervise(self, token, control).await
    }
}

fn recent_requests_key(client: &Client, single: bool) -> String {
    if single {
        RECENT_REQUESTS_KEY.to_string()
    } else {
        format!("{RECENT_REQUESTS_KEY}/{}", client.key_name())
    }
}

/// Seeds the client with the previous process's requests still inside the rate-limit window
/// (see `Pipeline::save_recent_requests`).
async fn restore_recent_requests(
    store: &Store,
    client: &Client,
    single: bool,
) -> anyhow::Result<()> {
    if let Some(text) = store.meta_get(&recent_requests_key(client, single)).await?
        && let Ok(ms) = serde_json::from_str::<Vec<u64>>(&text)
    {
        let times: Vec<_> = ms
            .into_iter()
            .map(|m| std::time::UNIX_EPOCH + Duration::from_millis(m))
            .collect();
        client.seed_recent_requests(&times);
    }
    Ok(())
}

/// The date format the API last accepted, when the API refused the configured one (a step
/// further down rfc3339 → naive → date): a restart does not probe blindly again.
async fn restore_date_format(store: &Store, client: &Client) -> anyhow::Result<()> {
    let configured = client.effective_date_format();
    let below = |f| {
        std::iter::successors(crate::api::dates::step_down(configured), |d| {
            crate::api::dates::step_down(*d)
        })
        .any(|d| d == f)
    };
    if let Some(format) = store
        .meta_get(activities::DATE_FORMAT_KEY)
        .await?
        .as_deref()
        .and_then(crate::api::dates::format_from_name)
        && below(format)
    {
        tracing::info!(
            key = %client.key_name(),
            configured = crate::api::dates::format_name(configured),
            using = crate::api::dates::format_name(format),
            "using the activities date format the API accepted last time (kept in the state)"
        );
        client.set_date_format(format);
    }
    Ok(())
}
