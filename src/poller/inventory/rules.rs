//! Posture rules, pure: each reads the organization's current snapshot (`View`) and the time,
//! and says for every object it could judge whether its finding is open (with a summary and
//! evidence) or clear. Objects a rule cannot judge (e.g. a service whose backups were never
//! listed) are left out, so their stored findings stay as they are.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api::dates::parse_created_at;
use crate::config::{FindingsConfig, Severity};

/// A live object: its id and parsed JSON.
#[derive(Debug, Clone)]
pub struct Obj {
    pub id: String,
    pub v: Value,
}

/// The organization's current inventory, as the rules see it.
#[derive(Debug, Default)]
pub struct View {
    pub services: Vec<Obj>,
    pub keys: Vec<Obj>,
    pub members: Vec<Obj>,
    pub invitations: Vec<Obj>,
    /// Backups by service id.
    pub backups: HashMap<String, Vec<Value>>,
    /// Services whose backups were listed at least once (others cannot be judged).
    pub backups_known: HashSet<String>,
}

/// A rule: its stable name (the `rule` field and config table), the resource its findings
/// are about, and its default severity.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    pub name: &'static str,
    pub resource: &'static str,
    pub severity: Severity,
}

/// Every rule, in evaluation order.
pub const RULES: &[RuleInfo] = &[
    rule("service_open_to_internet", "service", Severity::High),
    rule("service_unhealthy", "service", Severity::High),
    rule("key_never_expires", "key", Severity::Medium),
    rule("key_expiring", "key", Severity::Medium),
    rule("key_unused", "key", Severity::Low),
    rule("key_admin", "key", Severity::Medium),
    rule("key_disabled", "key", Severity::Low),
    rule("invitation_stale", "invitation", Severity::Low),
    rule("invitation_admin", "invitation", Severity::High),
    rule("member_admin", "member", Severity::Medium),
    rule("backup_failed", "service", Severity::High),
    rule("backup_stale", "service", Severity::High),
];

const fn rule(name: &'static str, resource: &'static str, severity: Severity) -> RuleInfo {
    RuleInfo {
        name,
        resource,
        severity,
    }
}

/// A rule's switch and effective severity from config.
pub fn settings(cfg: &FindingsConfig, name: &str) -> (bool, Option<Severity>) {
    let f = cfg;
    match name {
        "service_open_to_internet" => (
            f.service_open_to_internet.enabled,
            f.service_open_to_internet.severity,
        ),
        "service_unhealthy" => (f.service_unhealthy.enabled, f.service_unhealthy.severity),
        "key_never_expires" => (f.key_never_expires.enabled, f.key_never_expires.severity),
        "key_expiring" => (f.key_expiring.enabled, f.key_expiring.severity),
        "key_unused" => (f.key_unused.enabled, f.key_unused.severity),
        "key_admin" => (f.key_admin.enabled, f.key_admin.severity),
        "key_disabled" => (f.key_disabled.enabled, f.key_disabled.severity),
        "invitation_stale" => (f.invitation_stale.enabled, f.invitation_stale.severity),
        "invitation_admin" => (f.invitation_admin.enabled, f.invitation_admin.severity),
        "member_admin" => (f.member_admin.enabled, f.member_admin.severity),
        "backup_failed" => (f.backup_failed.enabled, f.backup_failed.severity),
        "backup_stale" => (f.backup_stale.enabled, f.backup_stale.severity),
        _ => (false, None),
    }
}

/// An open finding's description.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub summary: String,
    pub evidence: Value,
}

/// One rule's verdict on one object.
#[derive(Debug, Clone)]
pub struct Eval {
    pub rule: &'static str,
    pub resource: &'static str,
    pub resource_id: String,
    pub severity: Severity,
    /// `None`: judged and clear.
    pub hit: Option<Hit>,
}

fn s<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get(field).and_then(Value::as_str)
}

fn time(v: &Value, field: &str) -> Option<DateTime<Utc>> {
    s(v, field)
        .filter(|t| !t.is_empty())
        .and_then(|t| parse_created_at(t).ok())
}

fn name(v: &Value) -> Value {
    v.get("name")
        .or_else(|| v.get("email"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn label(v: &Value) -> String {
    s(v, "name")
        .or_else(|| s(v, "email"))
        .unwrap_or("?")
        .to_string()
}

/// Whether the object's deprecated `role`/`roles` or any `assignedRoles[].roleName` is one of
/// `admin_roles` (case-insensitive); returns the matching names.
pub fn admin_roles(v: &Value, admin: &[String]) -> Vec<String> {
    let is = |r: &str| admin.iter().any(|a| a.eq_ignore_ascii_case(r));
    let mut found: Vec<String> = Vec::new();
    let mut add = |r: &str| {
        if is(r) && !found.iter().any(|f| f.eq_ignore_ascii_case(r)) {
            found.push(r.to_string());
        }
    };
    if let Some(r) = s(v, "role") {
        add(r);
    }
    for r in v
        .get("roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str() {
            add(r);
        }
    }
    for r in v
        .get("assignedRoles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = s(r, "roleName") {
            add(n);
        }
    }
    found
}

fn key_enabled(v: &Value) -> bool {
    s(v, "state") != Some("disabled")
}

fn human(d: chrono::Duration) -> String {
    humantime::format_duration(d.to_std().unwrap_or_default()).to_string()
}

/// The newest `done` backup's finish (else start) time.
pub fn last_success(backups: &[Value]) -> Option<DateTime<Utc>> {
    backups
        .iter()
        .filter(|b| s(b, "status") == Some("done"))
        .filter_map(|b| time(b, "finishedAt").or_else(|| time(b, "startedAt")))
        .max()
}

/// The newest finished (not `in_progress`) backup, by `startedAt`.
fn latest_finished(backups: &[Value]) -> Option<&Value> {
    backups
        .iter()
        .filter(|b| s(b, "status") != Some("in_progress"))
        .max_by_key(|b| time(b, "startedAt"))
}

/// Every enabled rule's verdict on every object it can judge.
pub fn evaluate(view: &View, now: DateTime<Utc>, cfg: &FindingsConfig) -> Vec<Eval> {
    let mut out = Vec::new();
    for info in RULES {
        let (enabled, severity) = settings(cfg, info.name);
        if !enabled {
            continue;
        }
        let severity = severity.unwrap_or(info.severity);
        let mut judge = |id: &str, hit: Option<Hit>| {
            out.push(Eval {
                rule: info.name,
                resource: info.resource,
                resource_id: id.to_string(),
                severity,
                hit,
            });
        };
        match info.name {
            "service_open_to_internet" => {
                for o in &view.services {
                    let open: Vec<Value> =
                        o.v.get("ipAccessList")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter(|e| {
                                matches!(s(e, "source").map(str::trim), Some("0.0.0.0/0" | "::/0"))
                            })
                            .cloned()
                            .collect();
                    let hit = (!open.is_empty()).then(|| Hit {
                        summary: format!(
                            "service \"{}\" accepts connections from any address",
                            label(&o.v)
                        ),
                        evidence: json!({"name": name(&o.v), "ipAccessList": open}),
                    });
                    judge(&o.id, hit);
                }
            }
            "service_unhealthy" => {
                for o in &view.services {
                    let state = s(&o.v, "state").unwrap_or("");
                    let bad = cfg.service_unhealthy.states.iter().any(|x| x == state);
                    let hit = bad.then(|| Hit {
                        summary: format!("service \"{}\" is {state}", label(&o.v)),
                        evidence: json!({"name": name(&o.v), "state": state}),
                    });
                    judge(&o.id, hit);
                }
            }
            "key_never_expires" => {
                for o in &view.keys {
                    let never = key_enabled(&o.v) && time(&o.v, "expireAt").is_none();
                    let hit = never.then(|| Hit {
                        summary: format!("API key \"{}\" never expires", label(&o.v)),
                        evidence: json!({"name": name(&o.v), "expireAt": o.v.get("expireAt")}),
                    });
                    judge(&o.id, hit);
                }
            }
            "key_expiring" => {
                let warn = chrono::Duration::from_std(cfg.key_expiring.key_expiry_warning)
                    .unwrap_or(chrono::Duration::MAX);
                for o in &view.keys {
                    let exp = time(&o.v, "expireAt");
                    let soon = exp.filter(|e| key_enabled(&o.v) && *e > now && *e - now <= warn);
                    let hit = soon.map(|e| Hit {
                        summary: format!(
                            "API key \"{}\" expires in {} ({})",
                            label(&o.v),
                            human(chrono::Duration::hours((e - now).num_hours().max(1))),
                            s(&o.v, "expireAt").unwrap_or("")
                        ),
                        evidence: json!({"name": name(&o.v), "expireAt": o.v.get("expireAt")}),
                    });
                    judge(&o.id, hit);
                }
            }
            "key_unused" => {
                let after = chrono::Duration::from_std(cfg.key_unused.key_unused_after)
                    .unwrap_or(chrono::Duration::MAX);
                for o in &view.keys {
                    let used = time(&o.v, "usedAt");
                    let Some(last) = used.or_else(|| time(&o.v, "createdAt")) else {
                        continue;
                    };
                    let idle = key_enabled(&o.v) && now - last > after;
                    let hit = idle.then(|| Hit {
                        summary: match used {
                            Some(_) => format!(
                                "API key \"{}\" has not been used for {}",
                                label(&o.v),
                                human(chrono::Duration::days((now - last).num_days()))
                            ),
                            None => format!(
                                "API key \"{}\" was never used in the {} since its creation",
                                label(&o.v),
                                human(chrono::Duration::days((now - last).num_days()))
                            ),
                        },
                        evidence: json!({"name": name(&o.v), "usedAt": o.v.get("usedAt"), "createdAt": o.v.get("createdAt")}),
                    });
                    judge(&o.id, hit);
                }
            }
            "key_admin" => {
                for o in &view.keys {
                    let roles = admin_roles(&o.v, &cfg.admin_roles);
                    let hit = (key_enabled(&o.v) && !roles.is_empty()).then(|| Hit {
                        summary: format!("API key \"{}\" has an admin role", label(&o.v)),
                        evidence: json!({"name": name(&o.v), "admin_roles": roles}),
                    });
                    judge(&o.id, hit);
                }
            }
            "key_disabled" => {
                for o in &view.keys {
                    let hit = (!key_enabled(&o.v)).then(|| Hit {
                        summary: format!(
                            "API key \"{}\" is disabled but still present",
                            label(&o.v)
                        ),
                        evidence: json!({"name": name(&o.v), "state": "disabled"}),
                    });
                    judge(&o.id, hit);
                }
            }
            "invitation_stale" => {
                let max = chrono::Duration::from_std(cfg.invitation_stale.invitation_max_age)
                    .unwrap_or(chrono::Duration::MAX);
                for o in &view.invitations {
                    let Some(created) = time(&o.v, "createdAt") else {
                        continue;
                    };
                    let hit = (now - created > max).then(|| Hit {
                        summary: format!(
                            "invitation for {} is pending since {}",
                            label(&o.v),
                            s(&o.v, "createdAt").unwrap_or("")
                        ),
                        evidence: json!({"email": o.v.get("email"), "createdAt": o.v.get("createdAt"), "expireAt": o.v.get("expireAt")}),
                    });
                    judge(&o.id, hit);
                }
            }
            "invitation_admin" | "member_admin" => {
                let (objs, what) = if info.name == "member_admin" {
                    (&view.members, "member")
                } else {
                    (&view.invitations, "invitation for")
                };
                for o in objs {
                    let roles = admin_roles(&o.v, &cfg.admin_roles);
                    let hit = (!roles.is_empty()).then(|| Hit {
                        summary: format!("{what} {} has an admin role", label(&o.v)),
                        evidence: json!({"name": o.v.get("name"), "email": o.v.get("email"), "admin_roles": roles}),
                    });
                    judge(&o.id, hit);
                }
            }
            "backup_failed" => {
                for o in view.services.iter() {
                    if !view.backups_known.contains(&o.id) {
                        continue;
                    }
                    let list = view.backups.get(&o.id).map_or(&[][..], Vec::as_slice);
                    let failed = latest_finished(list).filter(|b| s(b, "status") == Some("error"));
                    let hit = failed.map(|b| Hit {
                        summary: format!(
                            "the latest backup of service \"{}\" failed ({})",
                            label(&o.v),
                            s(b, "startedAt").unwrap_or("")
                        ),
                        evidence: json!({"name": name(&o.v), "backup": b}),
                    });
                    judge(&o.id, hit);
                }
            }
            "backup_stale" => {
                let max = chrono::Duration::from_std(cfg.backup_stale.backup_max_age)
                    .unwrap_or(chrono::Duration::MAX);
                for o in view.services.iter() {
                    if !view.backups_known.contains(&o.id) {
                        continue;
                    }
                    let running = s(&o.v, "state") == Some("running");
                    let list = view.backups.get(&o.id).map_or(&[][..], Vec::as_slice);
                    let last = last_success(list);
                    let stale = running && last.is_none_or(|t| now - t > max);
                    let hit = stale.then(|| Hit {
                        summary: match last {
                            Some(t) => format!(
                                "running service \"{}\" has no successful backup since {}",
                                label(&o.v),
                                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                            ),
                            None => format!(
                                "running service \"{}\" has no successful backup",
                                label(&o.v)
                            ),
                        },
                        evidence: json!({
                            "name": name(&o.v),
                            "last_success": last.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                            "backup_max_age": human(max),
                        }),
                    });
                    judge(&o.id, hit);
                }
            }
            _ => {}
        }
    }
    out
}

/// Ids of every live subject, by resource (`service`, `key`, `member`, `invitation`).
pub fn subjects(view: &View) -> HashMap<&'static str, HashSet<String>> {
    let ids = |objs: &[Obj]| objs.iter().map(|o| o.id.clone()).collect::<HashSet<_>>();
    HashMap::from([
        ("service", ids(&view.services)),
        ("key", ids(&view.keys)),
        ("member", ids(&view.members)),
        ("invitation", ids(&view.invitations)),
    ])
}

#[cfg(test)]
mod tests;
