//! The poller's backup step: which services' backup lists are due this cycle (new, changed,
//! or `backup_interval` old; stopped services only on a change), within `backups_per_cycle`,
//! and dropping the backups of services that are gone.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;

use super::{CycleStats, InventoryPoller};
use crate::api::ApiError;
use crate::config::Resource;
use crate::store::Snapshot;

/// Service states in which no backups are taken: their lists are re-read only on a change.
const QUIET_STATES: &[&str] = &[
    "stopped",
    "stopping",
    "terminating",
    "terminated",
    "softdeleting",
    "softdeleted",
];

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl InventoryPoller {
    /// Lists the backups of the services that are due, most overdue first, within
    /// `backups_per_cycle`. Backups of services that are gone are dropped without events
    /// (the service's own `deleted` event says it).
    pub(super) async fn backups(
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
}
