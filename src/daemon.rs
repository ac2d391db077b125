//! Wiring: open the store, build the API client and sinks, resolve organizations, then either
//! run the daemon (pollers + sink tasks + server until SIGTERM, then drain within the grace
//! period) or `once` (one cycle per org, deliver everything pending, report failures).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::Client;
use crate::config::Config;
use crate::dispatch::{Backoff, Mode, SinkTask};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::poller::activities::{self, ActivityPoller};
use crate::poller::{ClientSource, SystemClock};
use crate::server::{self, ServerState};
use crate::store::Store;

/// Everything a run needs, built once.
pub struct Pipeline {
    pub cfg: Config,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub client: Client,
    pub orgs: Vec<String>,
    pub wake: watch::Sender<i64>,
    pub reopen: watch::Sender<u64>,
}

impl Pipeline {
    /// Opens the store, builds the client, resolves the organizations to export.
    pub async fn build(cfg: Config) -> anyhow::Result<Pipeline> {
        let metrics = Arc::new(Metrics::new());
        metrics
            .overlap_seconds
            .set(cfg.activities.overlap.as_secs_f64());
        let creds = cfg.credentials()?;
        let store = Store::open(&cfg.state.path)?;
        let client =
            Client::new(&cfg.api, creds, metrics.clone()).context("building the API client")?;
        let orgs = if cfg.api.organizations.is_empty() {
            let list = client.organizations().await.context(
                "listing the organizations this key can see (set api.organizations to skip)",
            )?;
            let ids: Vec<String> = list.into_iter().filter_map(|o| o.id).collect();
            anyhow::ensure!(!ids.is_empty(), "the API key sees no organization");
            ids
        } else {
            cfg.api.organizations.clone()
        };
        tracing::info!(orgs = ?orgs, sinks = cfg.sink_configs.len(), state = %cfg.state.path.display(), "pipeline ready");
        let max_seq = store.max_seq().await?;
        Ok(Pipeline {
            cfg,
            store,
            metrics,
            health: Arc::new(Health::default()),
            client,
            orgs,
            wake: watch::channel(max_seq).0,
            reopen: watch::channel(0).0,
        })
    }

    fn poller(&self, org: &str) -> ActivityPoller {
        ActivityPoller {
            org: org.to_string(),
            source: Arc::new(ClientSource(self.client.clone())),
            store: self.store.clone(),
            settings: activities::Settings::from(&self.cfg.activities),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            wake: self.wake.clone(),
            clock: Arc::new(SystemClock),
        }
    }

    fn sink_tasks(&self) -> anyhow::Result<Vec<SinkTask>> {
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
                    store: self.store.clone(),
                    metrics: self.metrics.clone(),
                    health: self.health.clone(),
                    backoff: Backoff::default(),
                    wake: self.wake.subscribe(),
                    reopen: self.reopen.subscribe(),
                    producers_done: None,
                })
            })
            .collect()
    }

    fn server_state(&self) -> ServerState {
        let pollers = if self.cfg.activities.enabled {
            self.orgs
                .iter()
                .map(|o| {
                    (
                        format!("{o}/{}", activities::STREAM),
                        self.cfg.activities.interval,
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        ServerState {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            store: self.store.clone(),
            pollers,
            sinks: self
                .cfg
                .sink_configs
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            sink_failure_threshold: Duration::from_secs(300),
            config_summary: self.cfg.summary(),
        }
    }

    /// Runs until `token` is cancelled, then drains within `daemon.shutdown_grace`.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let listen = self.cfg.server.listen.clone();
        if !listen.is_empty() {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding server.listen {listen}"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving /metrics /healthz /readyz /status");
            tasks.spawn(server::run(
                listener,
                Arc::new(self.server_state()),
                token.clone(),
            ));
        }
        let sink_token = CancellationToken::new();
        let mut sink_handles = Vec::new();
        for task in self.sink_tasks()? {
            sink_handles.push(tasks.spawn(task.run(Mode::Follow, sink_token.clone())));
        }
        if self.cfg.activities.enabled {
            for org in &self.orgs {
                tasks.spawn(self.poller(org).run(token.clone()));
            }
        }
        tasks.spawn(prune_loop(
            self.store.clone(),
            self.cfg
                .sink_configs
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            self.cfg.state.retention,
            self.metrics.clone(),
            token.clone(),
        ));
        tasks.close();
        let all_sinks_dead = async {
            for h in &mut sink_handles {
                let _ = h.await;
            }
        };
        tokio::select! {
            _ = token.cancelled() => {}
            _ = all_sinks_dead => {
                token.cancel();
                anyhow::bail!("every sink has stopped (see the errors above); nothing left to deliver to");
            }
        }
        // Pollers stop at once; sinks finish the batch in hand.
        sink_token.cancel();
        let grace = self.cfg.daemon.shutdown_grace;
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "shutdown grace period over; undelivered events stay in the outbox for next start"
            );
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// One cycle per org, delivering while it polls, then everything pending to every sink.
    pub async fn once(self) -> anyhow::Result<()> {
        let token = CancellationToken::new();
        let polled = CancellationToken::new();
        let mode = Mode::Drain {
            give_up_after: Duration::from_secs(60),
        };
        let handles: Vec<_> = self
            .sink_tasks()?
            .into_iter()
            .map(|mut t| {
                t.producers_done = Some(polled.clone());
                tokio::spawn(t.run(mode, token.clone()))
            })
            .collect();
        let mut failures = Vec::new();
        if self.cfg.activities.enabled {
            let cycles = self.orgs.iter().map(|org| {
                let poller = self.poller(org);
                let token = token.clone();
                async move { (org, poller.cycle_logged(&token).await) }
            });
            for (org, result) in futures_util::future::join_all(cycles).await {
                if let Err(e) = result {
                    failures.push(format!("org {org}: {e:#}"));
                }
            }
        }
        polled.cancel();
        for h in handles {
            match h.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failures.push(e.to_string()),
                Err(e) => failures.push(format!("sink task panicked: {e}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", failures.join("; "))
        }
    }
}

/// Prunes delivered events past retention, hourly.
async fn prune_loop(
    store: Store,
    sinks: Vec<String>,
    retention: Duration,
    metrics: Arc<Metrics>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
        match store.prune(sinks.clone(), cutoff).await {
            Ok(n) => {
                metrics.state_pruned_events.inc_by(n);
                if n > 0 {
                    tracing::info!(pruned = n, "pruned delivered events past retention");
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "pruning the state failed"),
        }
        metrics.state_db_bytes.set(store.size_bytes() as i64);
    }
}

/// `run`: the daemon until SIGTERM/SIGINT.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let pipeline = Pipeline::build(cfg).await?;
    let token = CancellationToken::new();
    tokio::spawn(crate::shutdown::handle_signals(
        token.clone(),
        pipeline.reopen.clone(),
    ));
    pipeline.run(token).await
}

/// `once`.
pub async fn once(cfg: Config) -> anyhow::Result<()> {
    Pipeline::build(cfg).await?.once().await
}
