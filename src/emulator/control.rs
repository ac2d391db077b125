//! Test controls that mutate the emulated inventory directly, for what the API cannot do (or
//! not quickly): move a key's `usedAt`/`expireAt`, disable a key, put a service in `failed`, make backups
//! fail, add or clear backups, age an invitation, add many services. None records an
//! activity: they model things that happen inside ClickHouse Cloud, not API writes.

use chrono::{DateTime, Duration, Utc};

use super::Emulator;
use super::jsonfmt::uuid;
use super::model::Backup;
use super::seed;

/// Every service state of the spec (API notes §4.2).
const STATES: &[&str] = &[
    "starting",
    "stopping",
    "terminating",
    "softdeleting",
    "awaking",
    "partially_running",
    "provisioning",
    "running",
    "stopped",
    "terminated",
    "softdeleted",
    "degraded",
    "failed",
    "idle",
];

/// A backup `status` of the spec.
const STATUSES: &[&str] = &["done", "error", "in_progress"];

fn known(list: &[&'static str], v: &str) -> &'static str {
    list.iter()
        .find(|s| **s == v)
        .copied()
        .unwrap_or_else(|| panic!("{v:?} is not one of {list:?}"))
}

impl Emulator {
    /// Sets a key's `usedAt` (`None`: never used). Returns whether the key exists.
    pub fn set_key_used_at(&self, key_id: &str, at: Option<DateTime<Utc>>) -> bool {
        let mut state = self.inner.state();
        state.key_mut(key_id).map(|k| k.used_at = at).is_some()
    }

    /// Sets a key's `expireAt` (`None`: never expires). Returns whether the key exists.
    pub fn set_key_expire_at(&self, key_id: &str, at: Option<DateTime<Utc>>) -> bool {
        let mut state = self.inner.state();
        state.key_mut(key_id).map(|k| k.expire_at = at).is_some()
    }

    /// Enables or disables a key (`state` in its record; a disabled key gets 401), as the
    /// console does. Returns whether the key exists.
    pub fn set_key_enabled(&self, key_id: &str, enabled: bool) -> bool {
        let mut state = self.inner.state();
        state.key_mut(key_id).map(|k| k.enabled = enabled).is_some()
    }

    /// Puts a service in `state` at once (e.g. `failed`, `degraded`), ending any transition.
    /// Panics on a state the spec does not list.
    pub fn set_service_state(&self, org: &str, service_id: &str, state: &str) -> bool {
        let state = known(STATES, state);
        let mut s = self.inner.state();
        s.org_mut(org)
            .and_then(|o| o.service_mut(service_id))
            .map(|svc| {
                svc.state = state;
                svc.transition = None;
            })
            .is_some()
    }

    /// Adds a backup (`done`, `error` or `in_progress`) started at `started_at`; kept newest
    /// first. Returns its id, or `None` for an unknown org/service.
    pub fn add_backup(
        &self,
        org: &str,
        service_id: &str,
        status: &str,
        started_at: DateTime<Utc>,
    ) -> Option<String> {
        let status = known(STATUSES, status);
        let id = uuid(&mut self.inner.rng());
        let mut s = self.inner.state();
        let svc = s.org_mut(org)?.service_mut(service_id)?;
        let bucket = svc
            .backups
            .first()
            .map(|b| b.bucket.clone())
            .unwrap_or_else(|| serde_json::json!({"bucketProvider": "AWS", "bucketPath": format!("s3://ch-backups/{service_id}")}));
        let backup = Backup {
            name: format!("{service_id}/{id}"),
            id: id.clone(),
            status,
            started_at,
            finished_at: (status != "in_progress").then(|| started_at + Duration::minutes(5)),
            size_bytes: if status == "done" { 1_000_000_000 } else { 0 },
            full: true,
            bucket,
        };
        let at = svc
            .backups
            .iter()
            .position(|b| b.started_at < started_at)
            .unwrap_or(svc.backups.len());
        svc.backups.insert(at, backup);
        Some(id)
    }

    /// Sets the status of a service's backup (`error` makes it fail; finishing sets
    /// `finishedAt`). Returns whether it exists.
    pub fn set_backup_status(
        &self,
        org: &str,
        service_id: &str,
        backup_id: &str,
        status: &str,
    ) -> bool {
        let status = known(STATUSES, status);
        let mut s = self.inner.state();
        let Some(b) = s
            .org_mut(org)
            .and_then(|o| o.service_mut(service_id))
            .and_then(|svc| svc.backups.iter_mut().find(|b| b.id == backup_id))
        else {
            return false;
        };
        b.status = status;
        if status != "in_progress" && b.finished_at.is_none() {
            b.finished_at = Some(b.started_at + Duration::minutes(5));
        }
        true
    }

    /// Removes every backup of a service.
    pub fn clear_backups(&self, org: &str, service_id: &str) -> bool {
        let mut s = self.inner.state();
        s.org_mut(org)
            .and_then(|o| o.service_mut(service_id))
            .map(|svc| svc.backups.clear())
            .is_some()
    }

    /// Sets an invitation's `createdAt`. Returns whether it exists.
    pub fn set_invitation_created_at(
        &self,
        org: &str,
        invitation_id: &str,
        at: DateTime<Utc>,
    ) -> bool {
        let mut s = self.inner.state();
        s.org_mut(org)
            .and_then(|o| o.invitations.iter_mut().find(|i| i.id == invitation_id))
            .map(|i| i.created_at = at)
            .is_some()
    }

    /// Adds `n` running services (each with five backups) to `org`; returns their ids.
    pub fn add_services(&self, org: &str, n: usize) -> Vec<String> {
        let now = self.inner.now();
        let mut rng = fastrand::Rng::with_seed(self.inner.rng().u64(..));
        let mut s = self.inner.state();
        let Some(o) = s.org_mut(org) else {
            return Vec::new();
        };
        let start = o.services.len();
        let added: Vec<_> = (0..n)
            .map(|i| seed::bulk_service(&mut rng, start + i, now))
            .collect();
        let ids = added.iter().map(|svc| svc.id.clone()).collect();
        o.services.extend(added);
        ids
    }
}
