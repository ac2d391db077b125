//! Inventory gauges: objects by resource and state, API key expiry timestamps, seconds since
//! each service's last successful backup. Label values taken from objects (states, statuses)
//! are bounded to the spec's enums; per-object series are removed when the object goes.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::rules::{self, View};
use crate::config::Resource;
use crate::metrics::Metrics;

/// Label sets this poller set, so vanished objects' series can be removed.
#[derive(Default)]
pub(super) struct Series {
    objects: HashSet<Vec<String>>,
    keys: HashSet<Vec<String>>,
    backups: HashSet<Vec<String>>,
}

/// Sets object counts, key expiries and backup ages from the snapshot; removes the series of
/// objects that are gone.
pub(super) fn update(m: &Metrics, org: &str, series: &mut Series, view: &View, now: DateTime<Utc>) {
    let org = org.to_string();
    let str_of = |v: &serde_json::Value, f: &str| {
        v.get(f)
            .and_then(|x| x.as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    let mut objects: HashMap<Vec<String>, i64> = HashMap::new();
    let mut count = |r: Resource, state: String| {
        *objects
            .entry(vec![org.clone(), r.plural().to_string(), state])
            .or_default() += 1;
    };
    for o in &view.services {
        count(
            Resource::Services,
            bounded(&str_of(&o.v, "state"), SERVICE_STATES),
        );
    }
    for o in &view.keys {
        count(
            Resource::Keys,
            bounded(&str_of(&o.v, "state"), &["enabled", "disabled"]),
        );
    }
    for _ in &view.members {
        count(Resource::Members, "present".into());
    }
    for _ in &view.invitations {
        count(Resource::Invitations, "present".into());
    }
    for b in view.backups.values().flatten() {
        count(
            Resource::Backups,
            bounded(&str_of(b, "status"), &["done", "error", "in_progress"]),
        );
    }
    let mut keys = HashMap::new();
    for o in &view.keys {
        let exp =
            o.v.get("expireAt")
                .and_then(|x| x.as_str())
                .filter(|t| !t.is_empty())
                .and_then(|t| crate::api::dates::parse_created_at(t).ok())
                .map_or(f64::INFINITY, |t| t.timestamp() as f64);
        keys.insert(vec![org.clone(), o.id.clone(), str_of(&o.v, "name")], exp);
    }
    let mut backups = HashMap::new();
    for o in &view.services {
        if !view.backups_known.contains(&o.id) {
            continue;
        }
        let list = view.backups.get(&o.id).map_or(&[][..], Vec::as_slice);
        let age = rules::last_success(list).map_or(f64::INFINITY, |t| {
            (now - t).num_milliseconds() as f64 / 1000.0
        });
        backups.insert(vec![org.clone(), o.id.clone(), str_of(&o.v, "name")], age);
    }
    for old in series.objects.iter().filter(|l| !objects.contains_key(*l)) {
        let _ = m.inventory_objects.remove_label_values(&labels(old));
    }
    for (l, n) in &objects {
        m.inventory_objects.with_label_values(&labels(l)).set(*n);
    }
    series.objects = objects.into_keys().collect();
    for old in series.keys.iter().filter(|l| !keys.contains_key(*l)) {
        let _ = m.api_key_expiry.remove_label_values(&labels(old));
    }
    for (l, t) in &keys {
        m.api_key_expiry.with_label_values(&labels(l)).set(*t);
    }
    series.keys = keys.into_keys().collect();
    for old in series.backups.iter().filter(|l| !backups.contains_key(*l)) {
        let _ = m.backup_last_success_age.remove_label_values(&labels(old));
    }
    for (l, a) in &backups {
        m.backup_last_success_age
            .with_label_values(&labels(l))
            .set(*a);
    }
    series.backups = backups.into_keys().collect();
}

fn labels(l: &[String]) -> Vec<&str> {
    l.iter().map(String::as_str).collect()
}

/// Service states of the spec (§4.2): other values are counted as `other`.
const SERVICE_STATES: &[&str] = &[
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

/// `value` if it is one of `known`, else `other` (label values stay a bounded set).
fn bounded(value: &str, known: &[&str]) -> String {
    if known.contains(&value) {
        value.to_string()
    } else {
        "other".to_string()
    }
}
