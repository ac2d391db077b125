//! Service lifecycle operations: list (repeated `filter=tag:K[=V]`, ANDed), create
//! (`{service, password}`, starts `provisioning`), get, PATCH, DELETE (only when stopped, then
//! `terminating` until it disappears). Each write records its `service_*` activity with
//! `serviceId`. `service_ops` holds the state, scaling, password and backup operations.

use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Ctx, Result};
use crate::emulator::body::Reply;
use crate::emulator::jsonfmt::{token, uuid};
use crate::emulator::model::{Org, Service, State, Transition};
use crate::emulator::routes::SERVICE_VIEW;
use crate::emulator::validate;

pub(super) fn find<'s>(ctx: &Ctx<'_>, org: &'s Org) -> Result<&'s Service> {
    let id = ctx.param("serviceId");
    org.services
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Service {id} not found")))
}

pub(super) fn find_mut<'s>(ctx: &Ctx<'_>, state: &'s mut State) -> Result<&'s mut Service> {
    let org = ctx.org_mut(state)?;
    let id = ctx.param("serviceId").to_owned();
    org.service_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("Service {id} not found")))
}

pub(super) fn record(ctx: &Ctx<'_>, kind: &str, service_id: &str) {
    ctx.record(kind, |a| {
        a.str("serviceId", service_id);
    });
}

pub(super) fn not_deleting(svc: &Service) -> Result<()> {
    match svc.state {
        "terminating" | "terminated" | "softdeleting" | "softdeleted" => Err(ApiError::conflict(
            format!("Service {} is being deleted", svc.id),
        )),
        _ => Ok(()),
    }
}

/// Services the key can view (the spec omits the others), filtered by every `tag:` filter.
pub(super) fn list(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let mut filters = Vec::new();
    for f in ctx.query_all("filter") {
        let Some(tag) = f.strip_prefix("tag:").filter(|t| !t.is_empty()) else {
            return Err(ApiError::bad_request(format!(
                "Invalid filter '{f}': only resource tag filters (tag:KEY or tag:KEY=VALUE) are supported"
            )));
        };
        filters.push(match tag.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tag, None),
        });
    }
    let org = ctx.org(state)?;
    let visible = ctx.caller.has(SERVICE_VIEW);
    let result: Vec<Value> = org
        .services
        .iter()
        .filter(|_| visible)
        .filter(|s| filters.iter().all(|(k, v)| s.has_tag(k, *v)))
        .map(Service::to_json)
        .collect();
    Ok(Reply::ok(Value::Array(result)))
}

pub(super) fn get(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org(state)?;
    Ok(Reply::ok(find(ctx, org)?.to_json()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Create {
    name: Option<String>,
    provider: Option<String>,
    region: Option<String>,
    ip_access_list: Option<Vec<Value>>,
    min_replica_memory_gb: Option<f64>,
    max_replica_memory_gb: Option<f64>,
    num_replicas: Option<f64>,
    idle_scaling: Option<bool>,
    idle_timeout_minutes: Option<f64>,
    release_channel: Option<String>,
    is_readonly: Option<bool>,
    data_warehouse_id: Option<String>,
    #[serde(default)]
    tags: Vec<Value>,
    enable_core_dumps: Option<bool>,
    autoscaling_mode: Option<String>,
}

pub(super) fn create(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let req: Create = ctx.json()?;
    let name = validate::service_name(req.name.as_deref())?;
    let provider = req
        .provider
        .ok_or_else(|| ApiError::bad_request("provider is required"))?;
    let region = req
        .region
        .ok_or_else(|| ApiError::bad_request("region is required"))?;
    validate::region(&provider, &region)?;
    let ip = req
        .ip_access_list
        .ok_or_else(|| ApiError::bad_request("ipAccessList is required"))?;
    let ip_access_list = validate::ip_access_list(&ip)?;
    let tags = validate::tags(&req.tags)?;
    if req
        .autoscaling_mode
        .as_deref()
        .is_some_and(|m| m != "vertical")
    {
        return Err(ApiError::bad_request(
            "Horizontal autoscaling is not enabled for this organization",
        ));
    }
    let min =
        validate::replica_memory("minReplicaMemoryGb", req.min_replica_memory_gb)?.unwrap_or(8);
    let max = validate::replica_memory("maxReplicaMemoryGb", req.max_replica_memory_gb)?
        .unwrap_or(120.max(min));
    validate::min_le_max(min, max)?;
    let replicas = validate::replicas(req.num_replicas)?.unwrap_or(3);
    let idle_timeout = validate::idle_timeout(req.idle_timeout_minutes)?.unwrap_or(15);
    let release_channel =
        validate::release_channel(req.release_channel.as_deref())?.unwrap_or("default");
    let now = ctx.now;
    let (id, password, host, dw) = {
        let mut rng = ctx.inner.rng();
        let id = uuid(&mut rng);
        let host = format!(
            "{}.{region}.{provider}.clickhouse.cloud",
            token(&mut rng, 10).to_lowercase()
        );
        (id, token(&mut rng, 20), host, uuid(&mut rng))
    };
    let org = ctx.org_mut(state)?;
    let svc = Service {
        iam_role: format!("arn:aws:iam::123456789012:role/CH-S3-{}-Role", &id[..8]),
        id: id.clone(),
        name,
        provider,
        region,
        state: "provisioning",
        transition: Some(Transition {
            to: Some("running"),
            at: now + Duration::seconds(60),
        }),
        clickhouse_version: "25.6.1.3190".into(),
        host,
        mysql_enabled: false,
        min_replica_gb: min,
        max_replica_gb: max,
        num_replicas: replicas,
        idle_scaling: req.idle_scaling.unwrap_or(true),
        idle_timeout_minutes: idle_timeout,
        ip_access_list,
        created_at: now,
        private_endpoint_ids: Vec::new(),
        is_primary: req.data_warehouse_id.is_none(),
        data_warehouse_id: req.data_warehouse_id.unwrap_or(dw),
        is_readonly: req.is_readonly.unwrap_or(false),
        release_channel: release_channel.into(),
        tags,
        enable_core_dumps: req.enable_core_dumps.unwrap_or(false),
        backups: Vec::new(),
        backup_config: (24, 24 * 7, None),
    };
    let json = svc.to_json();
    org.services.push(svc);
    record(ctx, "service_create", &id);
    Ok(Reply::ok(json!({ "service": json, "password": password })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    name: Option<String>,
    ip_access_list: Option<AddRemove<Value>>,
    private_endpoint_ids: Option<AddRemove<String>>,
    release_channel: Option<String>,
    endpoints: Option<Vec<EndpointChange>>,
    tags: Option<AddRemove<Value>>,
    enable_core_dumps: Option<bool>,
}

#[derive(Deserialize)]
struct AddRemove<T> {
    #[serde(default = "Vec::new")]
    add: Vec<T>,
    #[serde(default = "Vec::new")]
    remove: Vec<T>,
}

#[derive(Deserialize)]
struct EndpointChange {
    protocol: String,
    enabled: bool,
}

pub(super) fn update(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let p: Patch = ctx.json()?;
    let name = p
        .name
        .as_deref()
        .map(|n| validate::service_name(Some(n)))
        .transpose()?;
    let channel = validate::release_channel(p.release_channel.as_deref())?;
    let (ip_add, ip_remove) = match &p.ip_access_list {
        Some(ar) => (
            validate::ip_access_list(&ar.add)?,
            validate::ip_access_list(&ar.remove)?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let (tag_add, tag_remove) = match &p.tags {
        Some(ar) => (validate::tags(&ar.add)?, validate::tags(&ar.remove)?),
        None => (Vec::new(), Vec::new()),
    };
    if let Some(e) = p.endpoints.iter().flatten().find(|e| e.protocol != "mysql") {
        return Err(ApiError::bad_request(format!(
            "Endpoint protocol '{}' cannot be changed",
            e.protocol
        )));
    }
    let svc = find_mut(ctx, state)?;
    not_deleting(svc)?;
    let id = svc.id.clone();
    let mut kinds = Vec::new();
    if let Some(name) = name.filter(|n| *n != svc.name) {
        svc.name = name;
        kinds.push("service_update_name");
    }
    if p.ip_access_list.is_some() {
        let src = |v: &Value| {
            v.get("source")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let removed: Vec<String> = ip_remove.iter().map(src).collect();
        svc.ip_access_list.retain(|e| !removed.contains(&src(e)));
        for entry in ip_add {
            svc.ip_access_list.retain(|e| src(e) != src(&entry));
            svc.ip_access_list.push(entry);
        }
        kinds.push("service_update_ip_access_list");
    }
    if let Some(pe) = p.private_endpoint_ids {
        svc.private_endpoint_ids.retain(|e| !pe.remove.contains(e));
        for add in pe.add {
            if !svc.private_endpoint_ids.contains(&add) {
                svc.private_endpoint_ids.push(add);
            }
        }
        kinds.push("service_update_private_endpoints");
    }
    if let Some(ch) = channel.filter(|c| *c != svc.release_channel) {
        svc.release_channel = ch.into();
        kinds.push("service_update_release_channel");
    }
    if let Some(e) = p.endpoints.and_then(|es| es.into_iter().last()) {
        svc.mysql_enabled = e.enabled;
        kinds.push("service_update_mysql_interface");
    }
    if p.tags.is_some() {
        svc.tags.retain(|(k, v)| {
            !tag_remove
                .iter()
                .any(|(rk, rv)| rk == k && (rv.is_none() || rv == v))
        });
        for (k, v) in tag_add {
            svc.tags.retain(|(ek, _)| *ek != k);
            svc.tags.push((k, v));
        }
    }
    if let Some(on) = p
        .enable_core_dumps
        .filter(|on| *on != svc.enable_core_dumps)
    {
        svc.enable_core_dumps = on;
        kinds.push("service_update_core_dump");
    }
    let json = svc.to_json();
    for kind in kinds {
        record(ctx, kind, &id);
    }
    Ok(Reply::ok(json))
}

pub(super) fn delete(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let now = ctx.now;
    let svc = find_mut(ctx, state)?;
    not_deleting(svc)?;
    if svc.in_transition() {
        return Err(ApiError::conflict(format!(
            "Service is in transition. Current state: {}",
            svc.state
        )));
    }
    if svc.state != "stopped" {
        return Err(ApiError::bad_request(format!(
            "Service must be stopped before it can be deleted. Current state: {}",
            svc.state
        )));
    }
    svc.state = "terminating";
    svc.transition = Some(Transition {
        to: None,
        at: now + Duration::seconds(20),
    });
    let id = svc.id.clone();
    record(ctx, "service_delete", &id);
    Ok(Reply::empty())
}
