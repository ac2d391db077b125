//! Service operations beside the lifecycle: PATCH `/state` (`start`/`stop`/`awake` through
//! transitional states, with the per-command permission the spec describes), PATCH `/scaling`
//! and `/replicaScaling`, PATCH `/password`, and the read-only backups (newest first) and
//! backup configuration.

use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::services::{find, find_mut, not_deleting, record};
use super::{ApiError, Ctx, Result, forbidden};
use crate::emulator::body::Reply;
use crate::emulator::jsonfmt::token;
use crate::emulator::model::{State, Transition};
use crate::emulator::routes::{SERVICE_MANAGE, SERVICE_VIEW};
use crate::emulator::validate;

#[derive(Deserialize)]
struct StateCommand {
    command: Option<String>,
}

/// `start` and `stop` need `service:manage`, `awake` only `service:view` (spec description).
pub(super) fn change_state(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let cmd: StateCommand = ctx.json()?;
    let cmd = cmd
        .command
        .ok_or_else(|| ApiError::bad_request("command is required"))?;
    let (permission, via, to, secs, kind) = match cmd.as_str() {
        "start" => (SERVICE_MANAGE, "starting", "running", 15, "service_start"),
        "stop" => (SERVICE_MANAGE, "stopping", "stopped", 15, "service_stop"),
        "awake" => (SERVICE_VIEW, "awaking", "running", 10, "service_awaken"),
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid command '{other}': expected one of start, stop, awake"
            )));
        }
    };
    if !ctx.caller.has(permission) {
        return Err(forbidden(
            &format!("Service state command '{cmd}'"),
            permission,
        ));
    }
    let now = ctx.now;
    let svc = find_mut(ctx, state)?;
    not_deleting(svc)?;
    let current = svc.state;
    let allowed: &[&str] = match cmd.as_str() {
        "start" => &["stopped", "idle"],
        "stop" => &["running", "idle", "degraded", "partially_running", "failed"],
        _ => &["idle"],
    };
    if current == to || current == via {
        // Already there or on the way: the command is a no-op.
    } else if cmd == "awake" && current == "stopped" {
        return Err(ApiError::bad_request(
            "Service is stopped; 'awake' does not start a stopped service",
        ));
    } else if svc.in_transition() || !allowed.contains(&current) {
        return Err(ApiError::conflict(format!(
            "Cannot {cmd} the service. Current state: {current}"
        )));
    } else {
        svc.state = via;
        svc.transition = Some(Transition {
            to: Some(to),
            at: now + Duration::seconds(secs),
        });
        let (id, json) = (svc.id.clone(), svc.to_json());
        record(ctx, kind, &id);
        return Ok(Reply::ok(json));
    }
    Ok(Reply::ok(svc.to_json()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Scaling {
    min_total_memory_gb: Option<f64>,
    max_total_memory_gb: Option<f64>,
    min_replica_memory_gb: Option<f64>,
    max_replica_memory_gb: Option<f64>,
    num_replicas: Option<f64>,
    idle_scaling: Option<bool>,
    idle_timeout_minutes: Option<f64>,
    autoscaling_mode: Option<String>,
}

pub(super) fn scaling(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let s: Scaling = ctx.json()?;
    if s.autoscaling_mode
        .as_deref()
        .is_some_and(|m| m != "vertical")
    {
        return Err(ApiError::bad_request(
            "Horizontal autoscaling is not enabled for this organization",
        ));
    }
    let min = validate::replica_memory("minReplicaMemoryGb", s.min_replica_memory_gb)?.or(
        validate::total_memory("minTotalMemoryGb", s.min_total_memory_gb)?,
    );
    let max = validate::replica_memory("maxReplicaMemoryGb", s.max_replica_memory_gb)?.or(
        validate::total_memory("maxTotalMemoryGb", s.max_total_memory_gb)?,
    );
    let replicas = validate::replicas(s.num_replicas)?;
    let idle_timeout = validate::idle_timeout(s.idle_timeout_minutes)?;
    let svc = find_mut(ctx, state)?;
    not_deleting(svc)?;
    let (new_min, new_max) = (
        min.unwrap_or(svc.min_replica_gb),
        max.unwrap_or(svc.max_replica_gb),
    );
    validate::min_le_max(new_min, new_max)?;
    let mut kinds = Vec::new();
    if (new_min, new_max) != (svc.min_replica_gb, svc.max_replica_gb) {
        (svc.min_replica_gb, svc.max_replica_gb) = (new_min, new_max);
        kinds.push("service_update_autoscaling_memory");
    }
    if let Some(r) = replicas.filter(|r| *r != svc.num_replicas) {
        svc.num_replicas = r;
        kinds.push("service_update_autoscaling_replicas");
    }
    let idle = (
        s.idle_scaling.unwrap_or(svc.idle_scaling),
        idle_timeout.unwrap_or(svc.idle_timeout_minutes),
    );
    if idle != (svc.idle_scaling, svc.idle_timeout_minutes) {
        (svc.idle_scaling, svc.idle_timeout_minutes) = idle;
        kinds.push("service_update_autoscaling_idling");
    }
    let (id, json) = (svc.id.clone(), svc.to_json());
    for kind in kinds {
        record(ctx, kind, &id);
    }
    Ok(Reply::ok(json))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordPatch {
    new_password_hash: Option<String>,
}

pub(super) fn password(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let p: PasswordPatch = ctx.json()?;
    let svc = find_mut(ctx, state)?;
    not_deleting(svc)?;
    let id = svc.id.clone();
    let result = match p.new_password_hash {
        Some(h) if h.is_empty() => {
            return Err(ApiError::bad_request("newPasswordHash must not be empty"));
        }
        Some(_) => json!({}),
        None => json!({ "password": token(&mut ctx.inner.rng(), 20) }),
    };
    record(ctx, "service_update_password", &id);
    Ok(Reply::ok(result))
}

/// Newest first, as the spec promises.
pub(super) fn backups(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let svc = find(ctx, ctx.org(state)?)?;
    let mut list: Vec<_> = svc.backups.iter().collect();
    list.sort_by_key(|b| std::cmp::Reverse(b.started_at));
    Ok(Reply::ok(Value::Array(
        list.iter().map(|b| b.to_json(&svc.id, ctx.now)).collect(),
    )))
}

pub(super) fn backup(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let svc = find(ctx, ctx.org(state)?)?;
    let id = ctx.param("backupId");
    let b = svc
        .backups
        .iter()
        .find(|b| b.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Backup {id} not found")))?;
    Ok(Reply::ok(b.to_json(&svc.id, ctx.now)))
}

pub(super) fn backup_configuration(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    Ok(Reply::ok(find(ctx, ctx.org(state)?)?.backup_config_json()))
}
