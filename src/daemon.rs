//! Wiring: open the store, build the API client and sinks, resolve organizations, then either
//! run the daemon (activity and inventory pollers + sink tasks + server until SIGTERM, then
//! drain within the grace period) or `once` (one cycle per org, deliver everything pending,
//! report failures).
//!
//! The daemon's tasks form a *generation* (pollers, sink tasks, prune and gauge refresh);
//! `supervise` owns it together with the server, systemd notifications and SIGHUP. A SIGHUP
//! reopens output files and reloads the configuration: the new pipeline is built first (an
//! invalid file, an unreachable API or a sink that cannot be built keeps the running one, with
//! an ERROR), then the old generation stops (pollers at once, sinks after the batch in hand)
//! and the new one starts. Metrics, health and the listener carry over; so do the store and the
//! API client (with its rate-limit window) when their settings did not change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use sha2::Digest;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::Client;
use crate::config::Config;
use crate::dispatch::{self, Backoff, DispatchError, Mode, SinkTask};
use crate::event::EventKind;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::poller::activities::{self, ActivityPoller};
use crate::poller::inventory::{self, InventoryPoller};
use crate::poller::{ClientSource, SystemClock};
use crate::server::{self, ServerState, View};
use crate::store::Store;
use crate::values::ConfigError;

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
    api_identity: String,
}

/// Re-reads the configuration on SIGHUP (the same file and environment as at start-up).
pub type Reloader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// How a running daemon is driven from outside: SIGHUP and systemd.
#[derive(Default)]
pub struct Control {
    /// Bumped on every SIGHUP: reopen output files, then reload with `reload`.
    pub hup: Option<watch::Receiver<u64>>,
    /// How to reload the configuration; `None`: SIGHUP only reopens files.
    pub reload: Option<Reloader>,
    pub notify: Option<Notifier>,
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
    async fn build_with(
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
        let creds = cfg.credentials()?;
        let digest = sha2::Sha256::new()
            .chain_update(creds.key_id.as_bytes())
            .chain_update([0])
            .chain_update(creds.key_secret.expose_secret().as_bytes())
            .finalize();
        let api_identity = format!("{:?}|{}", cfg.api, STANDARD.encode(digest));
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
        if previous.is_none()
            && let Some(text) = store.meta_get(RECENT_REQUESTS_KEY).await?
            && let Ok(ms) = serde_json::from_str::<Vec<u64>>(&text)
        {
            let times: Vec<_> = ms
                .into_iter()
                .map(|m| std::time::UNIX_EPOCH + Duration::from_millis(m))
                .collect();
            client.seed_recent_requests(&times);
        }
        // The date format the API last accepted, when the API refused the configured one (a
        // step further down rfc3339 → naive → date): a restart does not probe blindly again.
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
    async fn save_recent_requests(&self) {
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
            steady_anchor: std::sync::Mutex::new(None),
            learned: Arc::new(activities::Learned::default()),
        }
    }

    fn inventory_poller(&self, org: &str) -> InventoryPoller {
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

    fn poller_keys(&self) -> Vec<String> {
        self.pollers().into_iter().map(|(k, _)| k).collect()
    }

    fn sink_names(&self) -> Vec<String> {
        self.cfg
            .sink_configs
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    fn view(&self) -> View {
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
        supervise(self, token, control).await
    }

    /// Spawns the pollers, sink tasks and background loops of this configuration.
    fn start(&self, sinks: Vec<SinkTask>) -> Generation {
        let mut g = Generation::default();
        for task in sinks {
            let (name, health) = (task.name.clone(), self.health.clone());
            let stop = g.sink_stop.clone();
            g.spawn(format!("sink {name}"), Role::Sink, async move {
                match task.run(Mode::Follow, stop).await {
                    Ok(_) | Err(DispatchError::Fatal { .. }) => {} // Fatal: logged and recorded
                    Err(e) => {
                        tracing::error!(sink = %name, error = %e, "sink task stopped; other sinks and polling go on");
                        health.sink_stopped(&name, e.to_string());
                    }
                }
            });
        }
        if self.cfg.activities.enabled {
            for org in &self.orgs {
                let poller = self.poller(org);
                let stop = g.stop.clone();
                g.spawn_loop(format!("poller {org}/{}", activities::STREAM), async move {
                    poller.run(stop).await
                });
            }
        }
        if self.cfg.inventory.enabled {
            for org in &self.orgs {
                let poller = self.inventory_poller(org);
                let stop = g.stop.clone();
                g.spawn_loop(format!("poller {org}/{}", inventory::STREAM), async move {
                    poller.run(stop).await
                });
            }
        }
        let stop = g.stop.clone();
        g.spawn_loop(
            "prune".into(),
            prune_loop(
                self.store.clone(),
                self.sink_names(),
                self.cfg.state.retention,
                self.metrics.clone(),
                stop,
            ),
        );
        let refresh = Refresh {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            orgs: if self.cfg.activities.enabled {
                self.orgs.clone()
            } else {
                Vec::new()
            },
            sinks: self.sink_names(),
        };
        // Often enough that cursor lag and backlog move between polls, never busier than 1/s.
        let every = self
            .cfg
            .activities
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(15));
        g.spawn_loop("gauge refresh".into(), refresh.run(every));
        g
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
                async move { (org, poller.once(&token).await) }
            });
            for (org, result) in futures_util::future::join_all(cycles).await {
                if let Err(e) = result {
                    failures.push(format!("org {org}: {e:#}"));
                }
            }
        }
        if self.cfg.inventory.enabled {
            for org in &self.orgs {
                if let Err(e) = self.inventory_poller(org).cycle_logged(&token).await {
                    failures.push(format!("org {org} inventory: {e:#}"));
                }
            }
        }
        polled.cancel();
        self.save_recent_requests().await;
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

/// What a task of a generation is, for deciding what its end means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Ends on cancellation only; ending otherwise means the process is broken.
    Loop,
    /// May stop for good on its own (e.g. stdout closed) while the others go on.
    Sink,
}

/// The tasks of one configuration.
#[derive(Default)]
struct Generation {
    /// Pollers, prune and gauge refresh: stop at once.
    stop: CancellationToken,
    /// Sink tasks: finish the batch in hand, then stop.
    sink_stop: CancellationToken,
    tasks: JoinSet<()>,
    roles: HashMap<tokio::task::Id, (String, Role)>,
    sinks_running: usize,
}

impl Generation {
    fn spawn(
        &mut self,
        name: String,
        role: Role,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(fut);
        if role == Role::Sink {
            self.sinks_running += 1;
        }
        self.roles.insert(handle.id(), (name, role));
    }

    /// Spawns a loop that is dropped as soon as `stop` is cancelled: pollers and background
    /// loops hold nothing that must be finished (a store write in flight completes on its
    /// blocking thread, in one transaction).
    fn spawn_loop(
        &mut self,
        name: String,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let stop = self.stop.clone();
        self.spawn(name, Role::Loop, async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = fut => {}
            }
        });
    }

    /// Accounts for a finished task; true when that was the last sink (nothing left to
    /// deliver to).
    fn ended(
        &mut self,
        result: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        health: &Health,
    ) -> bool {
        let (id, panic) = match result {
            Ok((id, ())) => (id, None),
            Err(e) => {
                let id = e.id();
                let msg = e.is_panic().then(|| panic_message(e.into_panic()));
                (id, msg)
            }
        };
        let Some((name, role)) = self.roles.remove(&id) else {
            return false;
        };
        if role == Role::Sink {
            self.sinks_running = self.sinks_running.saturating_sub(1);
        }
        if let Some(msg) = panic {
            tracing::error!(task = %name, panic = %msg, "task panicked; /healthz now fails so a supervisor restarts the exporter");
            health.task_died(&name, format!("panicked: {msg}"));
            if let Some(sink) = name.strip_prefix("sink ") {
                health.sink_stopped(sink, format!("panicked: {msg}"));
            }
        } else if role == Role::Loop && !self.stop.is_cancelled() {
            tracing::error!(task = %name, "task ended unexpectedly; /healthz now fails");
            health.task_died(&name, "ended unexpectedly".into());
        }
        role == Role::Sink && self.sinks_running == 0 && !self.sink_stop.is_cancelled()
    }

    /// Pollers and loops stop at once; sinks finish the batch in hand within `grace`, after
    /// which whatever still runs is aborted (undelivered events stay in the outbox).
    async fn stop(&mut self, grace: Duration) {
        self.stop.cancel();
        self.sink_stop.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "shutdown grace period over; undelivered events stay in the outbox for next start"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        self.roles.clear();
        self.sinks_running = 0;
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

/// The daemon's main loop: server, generation, SIGHUP, systemd status and watchdog.
async fn supervise(
    mut pipeline: Pipeline,
    token: CancellationToken,
    control: Control,
) -> anyhow::Result<()> {
    let Control {
        mut hup,
        reload,
        notify,
    } = control;
    let notify = notify.unwrap_or_else(Notifier::disabled);
    let state = Arc::new(ServerState::new(
        pipeline.metrics.clone(),
        pipeline.health.clone(),
        pipeline.view(),
    ));
    let server_stop = CancellationToken::new();
    let _stop_server = server_stop.clone().drop_guard();
    let listen = pipeline.cfg.server.listen.clone();
    if !listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding server.listen {listen}"))?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics /healthz /readyz /status");
        tokio::spawn(server::run(listener, state.clone(), server_stop.clone()));
    }
    let mut generation = pipeline.start(pipeline.sink_tasks()?);
    let mut status = status_line(&state);
    notify.ready(&status);
    let mut tick = tokio::time::interval(
        notify
            .watchdog_interval()
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(10)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            changed = async {
                match hup.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    hup = None; // the signal task ended: no more SIGHUPs
                    continue;
                }
                pipeline.reopen.send_modify(|n| *n += 1);
                match &reload {
                    Some(reload) => {
                        notify.reloading();
                        reload_config(&mut pipeline, &mut generation, reload, &state).await;
                        status = status_line(&state);
                        notify.ready(&status);
                    }
                    None => tracing::info!("SIGHUP: output files reopened"),
                }
            }
            Some(ended) = generation.tasks.join_next_with_id() => {
                if generation.ended(ended, &pipeline.health) {
                    notify.stopping();
                    generation.stop(pipeline.cfg.daemon.shutdown_grace).await;
                    anyhow::bail!("every sink has stopped (see the errors above); nothing left to deliver to");
                }
            }
            _ = tick.tick() => {
                // Alive means every task still runs; then (and only then) feed the watchdog.
                if pipeline.health.dead_tasks().is_empty() {
                    notify.watchdog();
                }
                let now = status_line(&state);
                if now != status {
                    notify.status(&now);
                    status = now;
                }
            }
        }
    }
    notify.stopping();
    // Pollers stop at once; sinks finish the batch in hand.
    generation.stop(pipeline.cfg.daemon.shutdown_grace).await;
    pipeline.save_recent_requests().await;
    tracing::info!("stopped");
    Ok(())
}

/// One line for `systemctl status`: ready, or the first reason not to be.
fn status_line(state: &ServerState) -> String {
    let view = state.view();
    let failing = state.not_ready();
    let dead = state.health.dead_tasks();
    if let Some((task, why)) = dead.iter().next() {
        return format!("unhealthy: {task} {why}");
    }
    match failing.iter().next() {
        None => format!(
            "ready: polling {} stream(s), delivering to {} sink(s)",
            view.pollers.len(),
            view.sinks.len()
        ),
        Some((component, why)) => {
            let why = why.as_str().unwrap_or_default();
            let mut line = format!("not ready: {component}: {why}");
            if line.chars().count() > 200 {
                line = line.chars().take(197).collect::<String>() + "...";
            }
            if failing.len() > 1 {
                line.push_str(&format!(" (+{} more, see /readyz)", failing.len() - 1));
            }
            line
        }
    }
}

/// SIGHUP: build the pipeline of the re-read configuration; if that works, stop the running
/// generation and start the new one; otherwise keep everything as it is, with an ERROR.
async fn reload_config(
    pipeline: &mut Pipeline,
    generation: &mut Generation,
    reload: &Reloader,
    state: &ServerState,
) {
    tracing::info!("SIGHUP: output files reopened; reloading the configuration");
    let metrics = pipeline.metrics.clone();
    let built = async {
        let cfg = reload()?;
        let next = Pipeline::build_with(
            cfg,
            pipeline.metrics.clone(),
            pipeline.health.clone(),
            Some(pipeline),
        )
        .await?;
        let sinks = next.sink_tasks()?;
        anyhow::Ok((next, sinks))
    }
    .await;
    let (next, sinks) = match built {
        Ok(b) => b,
        Err(e) => {
            let error = format!("{e:#}");
            tracing::error!(error = %error, "configuration reload failed; keeping the running configuration");
            // The overlap/interval gauges follow the running configuration.
            metrics
                .overlap_seconds
                .set(pipeline.cfg.activities.overlap.as_secs_f64());
            metrics
                .interval_seconds
                .set(pipeline.cfg.activities.interval.as_secs_f64());
            metrics.config_reloads.with_label_values(&["failure"]).inc();
            metrics.config_last_reload_successful.set(0);
            state.record_reload(Some(error));
            return;
        }
    };
    if next.cfg.server.listen != pipeline.cfg.server.listen {
        tracing::warn!(old = %pipeline.cfg.server.listen, new = %next.cfg.server.listen, "server.listen changed: the listener moves at the next restart");
    }
    if format!("{:?}", next.cfg.log) != format!("{:?}", pipeline.cfg.log) {
        tracing::warn!("log settings changed: they apply at the next restart");
    }
    generation.stop(pipeline.cfg.daemon.shutdown_grace).await;
    let old = std::mem::replace(pipeline, next);
    forget_removed(&old, pipeline);
    pipeline
        .health
        .retain(&pipeline.poller_keys(), &pipeline.sink_names());
    *generation = pipeline.start(sinks);
    state.set_view(pipeline.view());
    state.record_reload(None);
    metrics.config_reloads.with_label_values(&["success"]).inc();
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success
        .set(chrono::Utc::now().timestamp() as f64);
    tracing::info!(orgs = ?pipeline.orgs, sinks = ?pipeline.sink_names(), "configuration reloaded; pollers and sinks restarted");
}

/// Drops the gauge series of organizations and sinks the new configuration no longer has, so
/// dashboards do not show frozen values (counters stay: they are history).
fn forget_removed(old: &Pipeline, new: &Pipeline) {
    let m = &new.metrics;
    for org in old.orgs.iter().filter(|o| !new.orgs.contains(o)) {
        let _ = m.cursor_timestamp.remove_label_values(&[org]);
        let _ = m.cursor_lag.remove_label_values(&[org]);
        for stream in [activities::STREAM, inventory::STREAM] {
            let _ = m.last_success.remove_label_values(&[org, stream]);
        }
    }
    let sinks = new.sink_names();
    for sink in old.sink_names().iter().filter(|s| !sinks.contains(s)) {
        let _ = m.sink_backlog.remove_label_values(&[sink]);
        let _ = m.sink_oldest_undelivered_age.remove_label_values(&[sink]);
        let _ = m.sink_last_success.remove_label_values(&[sink]);
    }
}

/// Keeps the gauges that describe stored state true between polls and deliveries: outbox
/// size by kind, state file size, cursor lag (grows while polls fail), each sink's backlog and
/// oldest undelivered age (grow while a sink is stuck in retries).
struct Refresh {
    store: Store,
    metrics: Arc<Metrics>,
    orgs: Vec<String>,
    sinks: Vec<String>,
}

/// Hands memory freed since the last call back to the OS, so the idle footprint between polls
/// stays small after a large window (glibc keeps freed heap otherwise).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Refresh {
    async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Per-kind outbox counts scan the table, so they are recounted only when the outbox
        // changed (new events or a prune) and at most every 10 s: an idle daemon never scans.
        let mut counted: Option<(i64, u64, tokio::time::Instant)> = None;
        loop {
            tick.tick().await;
            let seq = self.store.max_seq().await.unwrap_or(0);
            let pruned = self.metrics.state_pruned_events.get();
            let due = match counted {
                None => true,
                Some((s, p, at)) => {
                    (s, p) != (seq, pruned) && at.elapsed() >= Duration::from_secs(10)
                }
            };
            self.once(due).await;
            if due {
                counted = Some((seq, pruned, tokio::time::Instant::now()));
            }
            release_freed_memory();
        }
    }

    async fn once(&self, count_kinds: bool) {
        let m = &self.metrics;
        m.state_db_bytes.set(self.store.size_bytes() as i64);
        if count_kinds {
            match self.store.counts_by_kind().await {
                Ok(counts) => {
                    for kind in [
                        EventKind::Activity,
                        EventKind::Inventory,
                        EventKind::Finding,
                    ] {
                        let n = counts
                            .iter()
                            .find(|(k, _)| k == kind.as_str())
                            .map_or(0, |(_, n)| *n);
                        m.outbox_events.with_label_values(&[kind.as_str()]).set(n);
                    }
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "reading outbox counts failed"),
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        for org in &self.orgs {
            if let Ok(Some(c)) = self.store.cursor(org, activities::STREAM).await {
                m.cursor_timestamp
                    .with_label_values(&[org])
                    .set(c.cursor_ms as f64 / 1000.0);
                m.cursor_lag
                    .with_label_values(&[org])
                    .set((now_ms - c.cursor_ms) as f64 / 1000.0);
            }
        }
        for sink in &self.sinks {
            let Ok(position) = self.store.position(sink).await else {
                continue;
            };
            if let Ok((count, oldest)) = self.store.backlog(position).await {
                dispatch::set_backlog_gauges(m, sink, count, oldest.as_deref());
            }
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
        if let Err(e) = store.prune_inventory(cutoff).await {
            tracing::error!(error = %format!("{e:#}"), "pruning inventory tombstones failed");
        }
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

/// `run`: the daemon until SIGTERM/SIGINT; SIGHUP reopens files and, with `reload`, reloads
/// the configuration; systemd is notified when `$NOTIFY_SOCKET` is set.
pub async fn run(cfg: Config, reload: Option<Reloader>) -> anyhow::Result<()> {
    let notify = Notifier::from_env();
    notify.status("starting: opening the state and resolving organizations");
    // Signals first: a SIGHUP during start-up must not kill the process (its default action).
    let token = CancellationToken::new();
    let (hup_tx, hup_rx) = watch::channel(0);
    tokio::spawn(crate::shutdown::handle_signals(token.clone(), hup_tx));
    let pipeline = Pipeline::build(cfg).await?;
    pipeline
        .run_with(
            token,
            Control {
                hup: Some(hup_rx),
                reload,
                notify: Some(notify),
            },
        )
        .await
}

/// `once`.
pub async fn once(cfg: Config) -> anyhow::Result<()> {
    Pipeline::build(cfg).await?.once().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_or_vanished_loop_is_a_dead_process_a_stopped_sink_is_not() {
        let health = Health::default();
        let mut g = Generation::default();
        g.spawn_loop("poller o/activities".into(), async { panic!("boom") });
        g.spawn_loop("gauge refresh".into(), async {});
        for _ in 0..2 {
            let ended = g.tasks.join_next_with_id().await.unwrap();
            assert!(!g.ended(ended, &health), "no sink was involved");
        }
        let dead = health.dead_tasks();
        assert_eq!(dead["poller o/activities"], "panicked: boom");
        assert_eq!(dead["gauge refresh"], "ended unexpectedly");

        let health = Health::default();
        let mut g = Generation::default();
        g.spawn("sink a".into(), Role::Sink, async {});
        g.spawn("sink b".into(), Role::Sink, async {});
        let first = g.tasks.join_next_with_id().await.unwrap();
        assert!(!g.ended(first, &health), "one sink left");
        let second = g.tasks.join_next_with_id().await.unwrap();
        assert!(g.ended(second, &health), "no sink left: the daemon ends");
        assert!(
            health.dead_tasks().is_empty(),
            "sinks stopping is not a dead process"
        );
    }

    #[tokio::test]
    async fn stopping_ends_loops_at_once_and_is_not_a_death() {
        let health = Health::default();
        let mut g = Generation::default();
        g.spawn_loop("poller o/activities".into(), std::future::pending());
        let sink_stop = g.sink_stop.clone();
        g.spawn("sink a".into(), Role::Sink, async move {
            sink_stop.cancelled().await
        });
        let started = std::time::Instant::now();
        g.stop(Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(g.tasks.is_empty() && health.dead_tasks().is_empty());
    }
}
