//! Seeded, realistic activity rows: types weighted toward what a real org produces (logins,
//! idling, config changes) plus every spec type now and then, ~1% unknown future types and ~1%
//! unknown extra fields; actors of all four kinds with emails, key ids, IPv4/IPv6 and user
//! agents; `serviceId` on service events, `targetKeyId`/`keyUpdateType` on key events.
//! Writes JSON straight into a `String` (no `serde_json::Value`), so a million rows take seconds.

use std::fmt::Write as _;

use super::activity_log::Row;
use super::activity_types::{ACTIVITY_TYPES, KEY_UPDATE_TYPES};
use super::jsonfmt::{ActivityJson, TsCache, escaped, push_uuid, uuid};
use super::model::State;

/// What an org's activities can refer to, copied out of the inventory, every string already
/// JSON-escaped (so rows are written without per-byte checks).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pools {
    pub(crate) org_id: String,
    pub(crate) service_ids: Vec<String>,
    /// `(userId, actorDetails)`.
    pub(crate) users: Vec<(String, String)>,
    /// `(keyId, key name)`.
    pub(crate) keys: Vec<(String, String)>,
    /// `(roleId, role name)`.
    pub(crate) roles: Vec<(String, String)>,
}

impl Pools {
    pub(crate) fn of(state: &State, org_id: &str) -> Pools {
        let Some(org) = state.org(org_id) else {
            return Pools {
                org_id: escaped(org_id),
                ..Pools::default()
            };
        };
        let e = |s: &str| escaped(s);
        Pools {
            org_id: e(&org.id),
            service_ids: org.services.iter().map(|s| e(&s.id)).collect(),
            users: org
                .members
                .iter()
                .map(|m| (e(&m.user_id), e(&format!("{} <{}>", m.name, m.email))))
                .collect(),
            keys: state
                .keys
                .iter()
                .filter(|k| k.orgs.iter().any(|o| o == org_id))
                .map(|k| (e(&k.id), e(&k.name)))
                .collect(),
            roles: org.roles.iter().map(|r| (e(&r.id), e(&r.name))).collect(),
        }
    }
}

/// Types a busy org emits most, with relative weights.
const COMMON: &[(&str, u32)] = &[
    ("user_login", 220),
    ("user_logout", 70),
    ("user_login_failed", 25),
    ("service_idle", 90),
    ("service_awaken", 60),
    ("service_running", 35),
    ("service_stop", 18),
    ("service_start", 18),
    ("service_update_ip_access_list", 14),
    ("service_update_autoscaling_memory", 10),
    ("service_update_autoscaling_idling", 8),
    ("service_update_name", 6),
    ("service_update_password", 8),
    ("service_upgrade", 10),
    ("service_create", 5),
    ("service_delete", 3),
    ("openapi_key_update", 14),
    ("key_create", 6),
    ("key_delete", 3),
    ("organization_invite_create", 6),
    ("organization_member_join", 4),
    ("organization_member_update_role", 4),
    ("organization_member_delete", 2),
    ("backup_delete", 3),
    ("role_update", 3),
];

const COMMON_TOTAL: u32 = {
    let (mut i, mut sum) = (0, 0);
    while i < COMMON.len() {
        sum += COMMON[i].1;
        i += 1;
    }
    sum
};

/// Types no spec version knows yet: clients must pass them through.
const UNKNOWN_TYPES: &[&str] = &[
    "service_teleport",
    "organization_quantum_audit",
    "warehouse_time_travel",
];

/// Emitted by the platform itself, never by a person or key.
const SYSTEM_TYPES: &[&str] = &[
    "service_idle",
    "service_running",
    "service_partially_running",
    "service_upgrade",
    "service_maintenance_start",
    "service_maintenance_end",
    "service_scaled_down_for_tier_change",
    "service_encryption_key_check_failed",
    "service_encryption_key_rotation_failed",
    "service_encryption_key_rotated",
    "service_stop_encryption_key_inaccessible",
    "service_restart_encryption_key_rotation",
    "backup_bucket_archive",
];

const BROWSER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
];

const API_AGENTS: &[&str] = &[
    "terraform-provider-clickhouse/3.3.3 Commit/c320db9",
    "clickhousectl/0.6.0",
    "splunk-clickhouse-cloud-audit-logs",
    "python-requests/2.32.3",
];

const EXTRA_FIELDS: &[(&str, &str)] = &[
    (
        "newField",
        r#"{"nested":{"enabled":true,"labels":["a","東京"]},"score":0.75}"#,
    ),
    ("riskScore", "42"),
    ("geo", r#"{"country":"DK","city":"København"}"#),
];

fn pick<'a, T>(rng: &mut fastrand::Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.usize(..xs.len())]
}

fn pick_str(rng: &mut fastrand::Rng, xs: &[&'static str]) -> &'static str {
    xs[rng.usize(..xs.len())]
}

fn pick_type(rng: &mut fastrand::Rng) -> &'static str {
    let r = rng.u32(..1000);
    if r < 10 {
        return pick_str(rng, UNKNOWN_TYPES);
    }
    if r < 250 {
        return pick_str(rng, &ACTIVITY_TYPES);
    }
    let mut x = rng.u32(..COMMON_TOTAL);
    for (t, w) in COMMON {
        if x < *w {
            return t;
        }
        x -= w;
    }
    "user_login"
}

/// Appends a documentation-range IPv4 (80%) or IPv6 (20%) address.
fn push_ip(buf: &mut String, rng: &mut fastrand::Rng) {
    let _ = match rng.u8(..10) {
        0..=5 => write!(buf, "203.0.113.{}", rng.u8(1..255)),
        6..=7 => write!(buf, "198.51.100.{}", rng.u8(1..255)),
        _ => write!(buf, "2001:db8:{:x}::{:x}", rng.u16(..), rng.u16(1..)),
    };
}

/// One activity of a random type created at Unix second `created`.
pub(crate) fn activity(
    rng: &mut fastrand::Rng,
    pools: &Pools,
    created: i64,
    ts: &mut TsCache,
) -> (String, usize) {
    let kind = pick_type(rng);
    let mut id = String::with_capacity(36);
    push_uuid(&mut id, rng);
    let mut a = ActivityJson::new(&id);
    a.ts_secs("createdAt", created, ts).str_safe("type", kind);
    let actor = if SYSTEM_TYPES.contains(&kind) {
        "system"
    } else if kind.starts_with("user_") || kind == "organization_member_join" {
        "user"
    } else {
        match rng.u8(..100) {
            0..=64 => "user",
            65..=92 => "api",
            93..=97 => "support",
            _ => "system",
        }
    };
    a.str_safe("actorType", actor);
    let mut ip = String::with_capacity(40);
    push_ip(&mut ip, rng);
    match actor {
        "user" if !pools.users.is_empty() => {
            let (id, details) = pick(rng, &pools.users);
            a.str_safe("actorId", id)
                .str_safe("actorDetails", details)
                .str_safe("actorIpAddress", &ip);
        }
        "api" if !pools.keys.is_empty() => {
            let (id, name) = pick(rng, &pools.keys);
            a.str_safe("actorId", id)
                .str_safe("actorDetails", name)
                .str_safe("actorIpAddress", &ip);
        }
        "support" => {
            let id = format!("support-{}", rng.u16(100..999));
            a.str_safe("actorId", &id)
                .str_safe("actorDetails", "ClickHouse Support");
        }
        _ => {
            a.str_safe("actorId", "system");
        }
    }
    a.str_safe("organizationId", &pools.org_id);
    if kind.starts_with("service_") || kind.starts_with("backup_") {
        if !pools.service_ids.is_empty() && rng.u8(..10) < 9 {
            a.str_safe("serviceId", pick(rng, &pools.service_ids).as_str());
        } else {
            a.str_safe("serviceId", &uuid(rng));
        }
    }
    match actor {
        "user" => {
            a.str_safe("userAgent", pick_str(rng, BROWSER_AGENTS));
        }
        "api" => {
            a.str_safe("userAgent", pick_str(rng, API_AGENTS));
        }
        _ => {}
    }
    key_and_role_targets(rng, pools, kind, &mut a);
    if rng.u8(..100) == 0 {
        let (k, v) = pick(rng, EXTRA_FIELDS);
        a.raw(k, v);
    }
    a.finish()
}

fn key_and_role_targets(rng: &mut fastrand::Rng, pools: &Pools, kind: &str, a: &mut ActivityJson) {
    let key_id = |rng: &mut fastrand::Rng| match pools.keys.is_empty() {
        true => uuid(rng),
        false => pick(rng, &pools.keys).0.clone(),
    };
    match kind {
        "openapi_key_update" => {
            let k = key_id(rng);
            a.str_safe("targetKeyId", &k)
                .str_safe("keyUpdateType", pick_str(rng, &KEY_UPDATE_TYPES));
        }
        "key_create" | "key_delete" => {
            let k = key_id(rng);
            a.str_safe("targetKeyId", &k);
        }
        _ => {}
    }
    let role_kinds = [
        "role_create",
        "role_update",
        "role_delete",
        "role_resources_delete",
    ];
    let actor_role_kinds = [
        "organization_member_update_roles",
        "organization_member_remove_roles",
    ];
    if pools.roles.is_empty() || !(role_kinds.contains(&kind) || actor_role_kinds.contains(&kind)) {
        return;
    }
    let (rid, rname) = pick(rng, &pools.roles);
    // Pool strings are already escaped, so the arrays are written raw.
    a.raw("targetRoleIds", &format!("[\"{rid}\"]"))
        .raw("targetRoleNames", &format!("[\"{rname}\"]"));
    if actor_role_kinds.contains(&kind) && !pools.users.is_empty() {
        let user = &pick(rng, &pools.users).0;
        a.raw("targetActorIds", &format!("[\"user/{user}\"]"));
    }
    if kind == "role_resources_delete" {
        a.raw("targetResourceIds", &format!("[\"{}\"]", uuid(rng)));
    }
}

/// `n` rows over `[from, to)` (Unix ms) in time order, `createdAt` on whole seconds.
/// `jitter` spreads them randomly inside their even slots; `visible` maps createdAt → visible_at.
pub(crate) fn rows(
    rng: &mut fastrand::Rng,
    pools: &Pools,
    n: usize,
    (from, to): (i64, i64),
    jitter: bool,
    mut visible: impl FnMut(&mut fastrand::Rng, i64) -> i64,
) -> Vec<Row> {
    let span = (to - from).max(0) as f64;
    let mut out = Vec::with_capacity(n);
    let mut ts = TsCache::default();
    for i in 0..n {
        let slot = if jitter {
            i as f64 + rng.f64()
        } else {
            i as f64
        };
        let t = from + (span * slot / n as f64) as i64;
        let created_ms = t.div_euclid(1000) * 1000;
        let (json, id_end) = activity(rng, pools, created_ms / 1000, &mut ts);
        let vis = visible(rng, created_ms);
        out.push(Row::new(created_ms, vis, json, id_end));
    }
    out
}
