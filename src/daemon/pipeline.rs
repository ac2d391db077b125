//! `Pipeline`: everything one configuration needs, built once (and again on each reload):
//! the store, the API client (with what the state remembers of the API: its recent requests
//! and the date format it accepted), the organizations to export, and the constructors of its
//! poller and sink tasks.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use sha2::Digest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Control;
use crate::api::Client;
use crate::config::{Config, Credentials};
use crate::dispatch::{Backoff, SinkTask};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::poller::activities::{self, ActivityPoller};
use crate::poller::inventory::{self, InventoryPoller};
use crate::poller::{ClientSource, SystemClock};
use crate::server::View;
use crate::store::Store;

/// `meta` key of the API requests of the last process still inside the rate-limit window.
const RECENT_REQUESTS_KEY: &str = "api_recent_requests";

/// Everything a run needs, built once (and again on each reload).
pub struct Pipeline {
    pub cfg: Config,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub client: Client,
    pub orgs: Vec<String>,
    pub wake: watch::Sender<i64>,
    pub reopen: watch::Sender<u64>,
    /// `[api]` settings plus a digest of the credentials: equal means the client can be kept.
    pub(super) api_identity: String,
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
        let creds = cfg.credentials()?;
        let api_identity = api_identity(&cfg, &creds);
        let store = match previous {
            Some(p) if p.cfg.state.path == cfg.state.path => p.store.clone(),
            _ => crate::store::open_guarded(&cfg.state.path)?,
        };
        let client = match previous {
            Some(p) if p.api_identity == api_identity => p.client.clone(),
            _ => {
                Client::new(&cfg.api, creds, metrics.clone()).context("building the API client")?
            }
        };
        if previous.is_none() {
            restore_recent_requests(&store, &client).await?;
        }
        restore_date_format(&store, &client, &cfg).await?;
        let orgs = resolve_orgs(&cfg, &client).await?;
        tracing::info!(orgs = ?orgs, sinks = cfg.sink_configs.len(), state = %cfg.state.path.display(), "pipeline ready");
        let max_seq = store.max_seq().await?;
        Ok(Pipeline {
            cfg,
            store,
            metrics,
            health,
            client,
            orgs,
            wake: watch::channel(max_seq).0,
            reopen: watch::channel(0).0,
            api_identity,
        })
    }

    /// Keeps the key's requests still inside the rate-limit window in the state, so the next
    /// process (a restart, the next `once`) does not send a full burst into a window the API
    /// still counts (a 429 right after every restart otherwise; issue 12).
    pub(super) async fn save_recent_requests(&self) {
        let times: Vec<i64> = self
            .client
            .recent_requests()
            .iter()
            .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .collect();
        let text = serde_json::to_string(&times).expect("a list of integers serializes");
        if let Err(e) = self.store.meta_set(RECENT_REQUESTS_KEY, text).await {
            tracing::warn!(error = %format!("{e:#}"), "could not keep the recent API requests in the state; the next start may meet a 429");
        }
    }

    pub(super) fn poller(&self, org: &str) -> ActivityPoller {
        ActivityPoller {
            org: org.to_string(),
            source: Arc::new(ClientSource(self.client.clone())),
            store: self.store.clone(),
            settings: activities::Settings::from(&self.cfg.activities),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            wake: self.wake.clone(),
            clock: Arc::new(SystemClock),
            steady_anchor: std::sync::Mutex::new(None),
            learned: Arc::new(activities::Learned::default()),
        }
    }

    pub(super) fn inventory_poller(&self, org: &str) -> InventoryPoller {
        InventoryPoller::new(
            org.to_string(),
            inventory::Shared {
                client: self.client.clone(),
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

/// `[api]` settings plus a digest of the credentials: equal means the client can be kept.
fn api_identity(cfg: &Config, creds: &Credentials) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(creds.key_id.as_bytes())
        .chain_update([0])
        .chain_update(creds.key_secret.expose_secret().as_bytes())
        .finalize();
    format!("{:?}|{}", cfg.api, STANDARD.encode(digest))
}

/// Seeds the client with the previous process's requests still inside the rate-limit window
/// (see `Pipeline::save_recent_requests`).
async fn restore_recent_requests(store: &Store, client: &Client) -> anyhow::Result<()> {
    if let Some(text) = store.meta_get(RECENT_REQUESTS_KEY).await?
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
async fn restore_date_format(store: &Store, client: &Client, cfg: &Config) -> anyhow::Result<()> {
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
            configured = crate::api::dates::format_name(cfg.api.date_format),
            using = crate::api::dates::format_name(format),
            "using the activities date format the API accepted last time (kept in the state)"
        );
        client.set_date_format(format);
    }
    Ok(())
}

/// `api.organizations`, or every organization the key can see when that is empty.
async fn resolve_orgs(cfg: &Config, client: &Client) -> anyhow::Result<Vec<String>> {
    if !cfg.api.organizations.is_empty() {
        return Ok(cfg.api.organizations.clone());
    }
    let list = client
        .organizations()
        .await
        .context("listing the organizations this key can see (set api.organizations to skip)")?;
    let ids: Vec<String> = list.into_iter().filter_map(|o| o.id).collect();
    anyhow::ensure!(!ids.is_empty(), "the API key sees no organization");
    Ok(ids)
}
