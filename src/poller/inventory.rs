//! The inventory poller (issue #6): one task per organization. Every `inventory.interval` it
//! lists services, API keys, members and invitations, then the backups of the services that
//! are due, diffs each list against the stored snapshot (`diff`), stores the changes and their
//! `kind: "inventory"` events in one transaction, evaluates the posture rules on the whole
//! snapshot (`rules`) and stores `kind: "finding"` open/resolved events (`findings`).
//!
//! Budget: every call shares the key's 10-per-10-s limiter with the activity pollers, so a
//! cycle makes 4 list calls plus at most `backups_per_cycle` backup lists, and a service's
//! backups are listed only when new, changed, or `backup_interval` old (stopped services only
//! when they change). Each cycle logs and meters the calls it made.
//!
//! Safety: only a successful, complete list can report `deleted`; a failed list leaves that
//! resource's snapshot and findings untouched. A 403 turns the resource off for this process
//! with one WARN naming the missing permission; the other resources go on.

pub mod diff;
pub mod findings;
mod gauges;
pub mod rules;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Clock;
use crate::api::{ApiError, Client, RawObject};
use crate::config::{InventoryConfig, Resource};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::{Snapshot, Store};
use diff::{DiffCtx, diff};
use rules::{Obj, RULES, View};

/// The stream name in health, `last_success_timestamp_seconds` and `poll_errors_total`.
pub const STREAM: &str = "inventory";

/// Service states in which no backups are taken: their lists are re-read only on a change.
const QUIET_STATES: &[&str] = &[
    "stopped",
    "stopping",
    "terminating",
    "terminated",
    "softdeleting",
    "softdeleted",
];

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

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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

    /// Lists the backups of the services that are due, most overdue first, within
    /// `backups_per_cycle`. Backups of services that are gone are dropped without events
    /// (the service's own `deleted` event says it).
    async fn backups(
        &self,
        now_ms: i64,
        changed: &HashSet<String>,
        stats: &mut CycleStats,
        token: &CancellationToken,
    ) -> anyhow::Result<()> {
        let org = self.org.as_str();
        let store = &self.s.store;
        let services: Vec<Snapshot> = store
            .snapshots(org, Resource::Services.plural(), None)
            .await?
            .into_values()
            .filter(|s| !s.deleted)
            .collect();
        let fetches = store
            .inventory_fetches(org, Resource::Backups.plural())
            .await?;
        let live: HashSet<&str> = services.iter().map(|s| s.object_id.as_str()).collect();
        let gone: Vec<String> = fetches
            .keys()
            .filter(|id| !live.contains(id.as_str()))
            .cloned()
            .collect();
        if !gone.is_empty() {
            store
                .forget_children(org, Resource::Backups.plural(), gone, now_ms)
                .await?;
        }
        let interval = ms(self.s.cfg.backup_interval);
        let mut due: Vec<(u8, i64, &Snapshot)> = services
            .iter()
            .filter_map(|s| {
                let state = serde_json::from_str::<serde_json::Value>(&s.raw)
                    .ok()
                    .and_then(|v| v.get("state").and_then(|x| x.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                match fetches.get(&s.object_id) {
                    None => Some((0, i64::MIN, s)),
                    Some(&t) if changed.contains(&s.object_id) => Some((1, t, s)),
                    Some(&t)
                        if !QUIET_STATES.contains(&state.as_str()) && now_ms - t >= interval =>
                    {
                        Some((2, t, s))
                    }
                    Some(_) => None,
                }
            })
            .collect();
        due.sort_by(|a, b| (a.0, a.1, &a.2.object_id).cmp(&(b.0, b.1, &b.2.object_id)));
        let cap = self.s.cfg.backups_per_cycle;
        stats.backups_deferred = due.len().saturating_sub(cap) as u32;
        for (_, _, svc) in due.into_iter().take(cap) {
            if token.is_cancelled() {
                break;
            }
            let id = svc.object_id.as_str();
            match self.list(Resource::Backups, Some(id), stats).await {
                Ok(objects) => {
                    let new_action = if fetches.contains_key(id) || svc.first_action == "created" {
                        "created"
                    } else {
                        "observed"
                    };
                    self.apply(Resource::Backups, id, objects, new_action, now_ms, stats)
                        .await?;
                    stats.backups_fetched += 1;
                }
                // Deleted since the service list: its `deleted` event comes next cycle.
                Err(ApiError::NotFound { .. }) => {}
                // Forbidden (now disabled) or failing: don't spend the budget on the rest.
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Evaluates every enabled rule on the stored snapshot and stores the transitions.
    async fn findings(&self, now: DateTime<Utc>, stats: &mut CycleStats) -> anyhow::Result<View> {
        let org = self.org.as_str();
        let store = &self.s.store;
        let cfg = &self.s.cfg;
        let view = self.view().await?;
        let evals = rules::evaluate(&view, now, &cfg.findings);
        let enabled: HashSet<&str> = RULES
            .iter()
            .filter(|r| rules::settings(&cfg.findings, r.name).0 && self.rule_has_data(r))
            .map(|r| r.name)
            .collect();
        let stored = store.findings(org).await?;
        let t = findings::transitions(
            org,
            &evals,
            &stored,
            &enabled,
            &rules::subjects(&view),
            now.timestamp_millis(),
        );
        if !t.rows.is_empty() {
            for (row, (rule, status)) in t.rows.iter().zip(&t.counted) {
                self.s
                    .metrics
                    .finding_events
                    .with_label_values(&[org, rule, status])
                    .inc();
                if *status == "open" {
                    stats.findings_opened += 1;
                } else {
                    stats.findings_resolved += 1;
                }
                tracing::info!(org, rule = %rule, severity = %row.severity, resource = %row.resource, resource_id = %row.resource_id, summary = %row.summary, "finding {status}");
            }
            let inserted = store.apply_findings(org, t.events, t.rows).await?;
            if inserted.new > 0 {
                self.s.wake.send_replace(inserted.max_seq);
            }
        }
        let counts = store.open_finding_counts().await?;
        let gauge = &self.s.metrics.findings_open;
        gauge.reset();
        for r in RULES {
            let (on, severity) = rules::settings(&cfg.findings, r.name);
            if on {
                let sev = severity.unwrap_or(r.severity);
                gauge.with_label_values(&[r.name, sev.as_str()]).set(0);
            }
        }
        for (rule, severity, n) in counts {
            if enabled.contains(rule.as_str()) {
                gauge.with_label_values(&[&rule, &severity]).set(n);
            }
        }
        Ok(view)
    }

    /// Whether the rule's inputs are configured resources (else its findings are left alone).
    fn rule_has_data(&self, r: &rules::RuleInfo) -> bool {
        let cfg = &self.s.cfg;
        match r.name {
            "backup_failed" | "backup_stale" => {
                cfg.has(Resource::Backups) && cfg.has(Resource::Services)
            }
            _ => match r.resource {
                "service" => cfg.has(Resource::Services),
                "key" => cfg.has(Resource::Keys),
                "member" => cfg.has(Resource::Members),
                "invitation" => cfg.has(Resource::Invitations),
                _ => false,
            },
        }
    }

    /// The stored snapshot of the configured resources, parsed.
    async fn view(&self) -> anyhow::Result<View> {
        let org = self.org.as_str();
        let cfg = &self.s.cfg;
        let mut view = View::default();
        for row in self.s.store.inventory_view(org).await? {
            let Some(r) = Resource::parse(&row.resource).filter(|r| cfg.has(*r)) else {
                continue;
            };
            let v = serde_json::from_str(&row.raw).unwrap_or(serde_json::Value::Null);
            let obj = Obj {
                id: row.object_id,
                v,
            };
            match r {
                Resource::Services => view.services.push(obj),
                Resource::Keys => view.keys.push(obj),
                Resource::Members => view.members.push(obj),
                Resource::Invitations => view.invitations.push(obj),
                Resource::Backups => view.backups.entry(row.parent_id).or_default().push(obj.v),
            }
        }
        if cfg.has(Resource::Backups) {
            view.backups_known = self
                .s
                .store
                .inventory_fetches(org, Resource::Backups.plural())
                .await?
                .into_keys()
                .collect();
        }
        Ok(view)
    }
}
