//! The inventory poller's and the posture findings' metrics (issue #6): objects per resource
//! and state, API key expiry, open findings, backup age, list calls (duration, errors,
//! requests), cycles, deferred backups, disabled resources, and the events stored.

use super::registry::{DURATION_BUCKETS, Def};

pub(super) const INVENTORY_OBJECTS: Def = Def::new(
    "inventory_objects",
    "Inventory objects in the last snapshot, by resource and state (services: state; keys: enabled|disabled; backups: status; members, invitations: present).",
    &["org", "resource", "state"],
);

pub(super) const API_KEY_EXPIRY: Def = Def::new(
    "api_key_expiry_timestamp_seconds",
    "Unix time each API key expires (+Inf: never).",
    &["org", "key_id", "key_name"],
);

pub(super) const FINDINGS_OPEN: Def = Def::new(
    "findings_open",
    "Open posture findings, by rule and severity.",
    &["rule", "severity"],
);

pub(super) const BACKUP_LAST_SUCCESS_AGE: Def = Def::new(
    "backup_last_success_age_seconds",
    "Seconds since the service's newest successful backup finished, as of the last inventory cycle (+Inf: none listed).",
    &["org", "service_id", "service_name"],
);

pub(super) const INVENTORY_POLL_DURATION: Def = Def::new("inventory_poll_duration_seconds", "Duration of one inventory list call (backups: one service), retries and rate-limit waits included.", &["org", "resource"]).buckets(DURATION_BUCKETS);

pub(super) const INVENTORY_POLL_ERRORS: Def = Def::new(
    "inventory_poll_errors_total",
    "Inventory list calls that failed for good, by resource and error kind.",
    &["org", "resource", "kind"],
);

pub(super) const INVENTORY_REQUESTS: Def = Def::new(
    "inventory_requests_total",
    "Inventory list calls made (each spends the shared API budget; retries add to api_requests_total).",
    &["org", "resource"],
);

pub(super) const INVENTORY_CYCLE_REQUESTS: Def = Def::new(
    "inventory_cycle_requests",
    "API calls the last inventory cycle of the organization made.",
    &["org"],
);

pub(super) const INVENTORY_CYCLE_DURATION: Def = Def::new(
    "inventory_cycle_duration_seconds",
    "Duration of the last inventory cycle of the organization.",
    &["org"],
);

pub(super) const INVENTORY_BACKUPS_DEFERRED: Def = Def::new(
    "inventory_backups_deferred",
    "Backup lists due but left for the next cycle (inventory.backups_per_cycle).",
    &["org"],
);

pub(super) const INVENTORY_RESOURCE_DISABLED: Def = Def::new(
    "inventory_resource_disabled",
    "1 when a resource's inventory is off because the API key lacks its permission (403).",
    &["org", "resource"],
);

pub(super) const INVENTORY_EVENTS: Def = Def::new(
    "inventory_events_total",
    "Inventory change events stored, by resource and action.",
    &["org", "resource", "action"],
);

pub(super) const FINDING_EVENTS: Def = Def::new(
    "finding_events_total",
    "Finding events stored, by rule and status (open|resolved).",
    &["org", "rule", "status"],
);
