//! The inventory poller (issue #6): one task per organization. Every `inventory.interval` it
//! lists services, API keys, members and invitations, then the backups of the services that
//! are due, diffs each list against the stored snapshot (`diff`), stores the changes and their
//! `kind: "inventory"` events in one transaction, evaluates the posture rules on the whole
//! snapshot (`rules`) and stores `kind: "finding"` open/resolved events (`findings`). The backup
//! step lives in `backups`, the findings step in `posture`.
//!
//! Budget: every call shares the key's 10-per-10-s limiter with the activity pollers, so a
//! cycle makes 4 list calls plus at most `backups_per_cycle` backup lists, and a service's
//! backups are listed only when new, changed, or `backup_interval` old (stopped services only
//! when they change). Each cycle logs and meters the calls it made.
//!
//! Safety: only a successful, complete list can report `deleted`; a failed list leaves that
//! resource's snapshot and findings untouched. A 403 turns the resource off for this process
//! with one WARN naming the missing permission; the other resources go on.

mod backups;
pub mod diff;
pub mod findings;
mod gauges;
mod posture;
pub mod rules;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Clock;
use crate::api::{ApiError, Client, RawObject};
use crate::config::{InventoryConfig, Resource};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;
use diff::{DiffCtx, diff};

/// The stream name in health, `last_success_timestamp_seconds` and `poll_errors_total`.
pub const STREAM: &str = "inventory";

/// What every organization's poller shares.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    pub store: Store,
    pub cfg: Arc<InventoryConfig>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub wake: watch::Sender<i64>,
    pub clock: Arc<dyn Clock>,
}

/// What one cycle did.
#[derive(Debug, Default, Clone)]
pub struct CycleStats {
    /// API calls made (each retry of a call adds a request; see `api_requests_total`).
    pub requests: u32,
    /// Inventory events stored.
    pub events: u64,
    pub findings_opened: u64,
    pub findings_resolved: u64,
    pub backups_fetched: u32,
    /// Backup lists due but left for the next cycle.
    pub backups_deferred: u32,
    /// Lists that failed (403s excluded): (resource, error kind, message).
    pub failed: Vec<(Resource, &'static str, String)>,
}

/// The inventory poller of one organization.
pub struct InventoryPoller {
    pub org: String,
    s: Shared,
    /// Resources turned off by a 403 (until restart).
    disabled: Mutex<HashSet<Resource>>,
    series: Mutex<gauges::Series>,
}

impl InventoryPoller {
    pub fn new(org: String, shared: Shared) -> InventoryPoller {
        InventoryPoller {
            org,
            s: shared,
            disabled: Mutex::default(),
            series: Mutex::default(),
        }
    }

    /// Polls every `inventory.interval` until `token` is cancelled; failures are logged,
    /// counted and kept in `health`, and the next cycle retries.
    pub async fn run(self, token: CancellationToken) {
        let mut ticker = tokio::time::interval(self.s.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let _ = self.cycle_logged(&token).await;
        }
        tracing::debug!(org = %self.org, "inventory poller stopped");
    }

    /// One cycle with its outcome logged, counted and recorded in `health`. A failed list makes
    /// the cycle an error (after everything else was stored).
    pub async fn cycle_logged(&self, token: &CancellationToken) -> anyhow::Result<CycleStats> {
        let (m, org) = (&self.s.metrics, self.org.as_str());
        let result = self.cycle(token).await;
        let failure = match &result {
            Ok(stats) if stats.failed.is_empty() => None,
            Ok(stats) => {
                let what: Vec<String> = stats
                    .failed
                    .iter()
                    .map(|(r, _, msg)| format!("{}: {msg}", r.plural()))
                    .collect();
                Some((stats.failed[0].1, what.join("; ")))
            }
            Err(e) => Some(("state", format!("{e:#}"))),
        };
        match failure {
            None => {
                self.s.health.poll_ok(org, STREAM);
                m.last_success
                    .with_label_values(&[org, STREAM])
                    .set(Utc::now().timestamp() as f64);
                result
            }
            Some((kind, message)) => {
                m.poll_errors.with_label_values(&[org, STREAM, kind]).inc();
                self.s
                    .health
                    .poll_failed(org, STREAM, kind, message.clone());
                tracing::error!(org, kind, error = %message, "inventory cycle incomplete; will retry next interval");
                Err(anyhow::anyhow!("inventory: {message}"))
            }
        }
    }

    /// Lists what is due, stores changes and findings. Stops early (between calls) on cancel.
    pub async fn cycle(&self, token: &CancellationToken) -> anyhow::Result<CycleStats> {
        let started = Instant::now();
        let now = self.s.clock.now();
        let now_ms = now.timestamp_millis();
        let cfg = &self.s.cfg;
        let mut stats = CycleStats::default();
        let mut services_listed = false;
        let mut changed_services = HashSet::new();
        for r in [
            Resource::Services,
            Resource::Keys,
            Resource::Members,
            Resource::Invitations,
        ] {
            if token.is_cancelled() {
                return Ok(stats);
            }
            if !cfg.has(r) || self.is_disabled(r) {
                continue;
            }
            let Ok(objects) = self.list(r, None, &mut stats).await else {
                continue;
            };
            let new_action = if self.s.store.has_baseline(&self.org, r.plural(), "").await? {
                "created"
            } else {
                "observed"
            };
            let actions = self
                .apply(r, "", objects, new_action, now_ms, &mut stats)
                .await?;
            if r == Resource::Services {
                services_listed = true;
                changed_services.extend(actions.into_iter().map(|(id, _)| id));
            }
        }
        if cfg.has(Resource::Backups) && !self.is_disabled(Resource::Backups) && services_listed {
            self.backups(now_ms, &changed_services, &mut stats, token)
                .await?;
        }
        let view = self.findings(now, &mut stats).await?;
        if let Ok(mut series) = self.series.lock() {
            gauges::update(&self.s.metrics, &self.org, &mut series, &view, now);
        }
        let m = &self.s.metrics;
        let org = self.org.as_str();
        m.inventory_cycle_requests
            .with_label_values(&[org])
            .set(i64::from(stats.requests));
        m.inventory_cycle_duration
            .with_label_values(&[org])
            .set(started.elapsed().as_secs_f64());
        m.inventory_backups_deferred
            .with_label_values(&[org])
            .set(i64::from(stats.backups_deferred));
        if started.elapsed() > cfg.interval {
            tracing::warn!(
                org,
                requests = stats.requests,
                duration_s = started.elapsed().as_secs(),
                interval_s = cfg.interval.as_secs(),
                "the inventory cycle took longer than inventory.interval (the shared API budget is the bottleneck): lower inventory.backups_per_cycle or raise inventory.interval / inventory.backup_interval"
            );
        }
        tracing::info!(
            org,
            requests = stats.requests,
            backups_listed = stats.backups_fetched,
            backups_deferred = stats.backups_deferred,
            events = stats.events,
            findings_opened = stats.findings_opened,
            findings_resolved = stats.findings_resolved,
            duration_ms = started.elapsed().as_millis() as u64,
            "inventory cycle done"
        );
        Ok(stats)
    }

    fn is_disabled(&self, r: Resource) -> bool {
        self.disabled.lock().is_ok_and(|d| d.contains(&r))
    }

    /// One list call, metered; a failure is logged, counted and (403) disables the resource.
    async fn list(
        &self,
        r: Resource,
        service: Option<&str>,
        stats: &mut CycleStats,
    ) -> Result<Vec<RawObject>, ApiError> {
        let (c, org) = (&self.s.client, self.org.as_str());
        let m = &self.s.metrics;
        stats.requests += 1;
        m.inventory_requests
            .with_label_values(&[org, r.plural()])
            .inc();
        let t = Instant::now();
        let result = match (r, service) {
            (Resource::Services, _) => c.services(org).await,
            (Resource::Keys, _) => c.keys(org).await,
            (Resource::Members, _) => c.members(org).await,
            (Resource::Invitations, _) => c.invitations(org).await,
            (Resource::Backups, Some(s)) => c.backups(org, s).await,
            (Resource::Backups, None) => Ok(Vec::new()),
        };
        m.inventory_poll_duration
            .with_label_values(&[org, r.plural()])
            .observe(t.elapsed().as_secs_f64());
        match &result {
            Ok(_) | Err(ApiError::NotFound { .. }) if service.is_some() => {}
            Ok(_) => {}
            Err(e) => self.failed(r, e, stats),
        }
        result
    }

    fn failed(&self, r: Resource, e: &ApiError, stats: &mut CycleStats) {
        let org = self.org.as_str();
        self.s
            .metrics
            .inventory_poll_errors
            .with_label_values(&[org, r.plural(), e.kind()])
            .inc();
        if let ApiError::Forbidden { permission, .. } = e {
            if let Ok(mut d) = self.disabled.lock() {
                d.insert(r);
            }
            self.s
                .metrics
                .inventory_resource_disabled
                .with_label_values(&[org, r.plural()])
                .set(1);
            tracing::warn!(
                org,
                resource = r.plural(),
                permission = permission.unwrap_or("unknown"),
                error = %e,
                "the API key may not list {}: their inventory is off for this organization until restart; grant the key {} or remove \"{}\" from inventory.resources",
                r.plural(),
                permission.unwrap_or("the permission"),
                r.plural()
            );
        } else {
            stats.failed.push((r, e.kind(), e.to_string()));
            tracing::warn!(org, resource = r.plural(), kind = e.kind(), error = %e, "inventory list failed; nothing is reported deleted this cycle");
        }
    }

    /// Diffs one successful list against the snapshot and stores changes + events together.
    /// Returns the ids that got an event, with their action.
    async fn apply(
        &self,
        r: Resource,
        parent: &str,
        objects: Vec<RawObject>,
        new_action: &'static str,
        now_ms: i64,
        stats: &mut CycleStats,
    ) -> anyhow::Result<Vec<(String, &'static str)>> {
        let org = self.org.as_str();
        let store = &self.s.store;
        let scope = (r == Resource::Backups).then_some(parent);
        let prior = store.snapshots(org, r.plural(), scope).await?;
        let ctx = DiffCtx {
            org,
            resource: r,
            parent,
            new_action,
            ignore: self.s.cfg.ignore_fields.of(r),
            idle_states: &self.s.cfg.service_idle_states,
            now_ms,
        };
        let fetched = objects
            .into_iter()
            .map(|o| (o.id, o.raw.get().to_string()))
            .collect();
        let plan = diff(&ctx, &prior, fetched);
        if plan.without_id > 0 {
            tracing::warn!(
                org,
                resource = r.plural(),
                count = plan.without_id,
                "inventory objects without an id were skipped"
            );
        }
        let inserted = store
            .apply_inventory(
                org,
                r.plural(),
                plan.events,
                plan.writes,
                Some((parent.to_string(), now_ms)),
                now_ms,
            )
            .await?;
        for (id, action) in &plan.actions {
            self.s
                .metrics
                .inventory_events
                .with_label_values(&[org, r.plural(), action])
                .inc();
            tracing::debug!(org, resource = r.singular(), id = %id, action, "inventory change");
        }
        stats.events += inserted.new;
        if inserted.new > 0 {
            self.s.wake.send_replace(inserted.max_seq);
        }
        Ok(plan.actions)
    }
}
