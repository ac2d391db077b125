//! `GET /v1/whoami` and the organization operations (list with `limit`/`cursor`, get, PATCH
//! with `organization_update_*` activities).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Ctx, Result, paginate};
use crate::emulator::body::Reply;
use crate::emulator::model::State;

/// `WhoamiApiKey`: `{actorType:"apiKey", keyId, name, organizationId}` (the key's first org).
pub(super) fn whoami(ctx: &Ctx<'_>, _state: &mut State) -> Result<Reply> {
    let org = ctx.caller.orgs.first().cloned().unwrap_or_default();
    Ok(Reply::ok(json!({
        "actorType": "apiKey",
        "keyId": ctx.caller.key_id,
        "name": ctx.caller.name,
        "organizationId": org,
    })))
}

/// The orgs the key belongs to, oldest first, paged.
pub(super) fn list(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let mut orgs: Vec<_> = state
        .orgs
        .iter()
        .filter(|o| ctx.caller.in_org(&o.id))
        .collect();
    orgs.sort_by_key(|o| o.created_at);
    let (page, limit, next) = paginate(ctx, orgs)?;
    let result: Vec<Value> = page.iter().map(|o| o.to_json()).collect();
    Ok(Reply::ok(Value::Array(result))
        .with("limit", json!(limit))
        .with("nextCursor", json!(next)))
}

pub(super) fn get(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    Ok(Reply::ok(ctx.org(state)?.to_json()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    name: Option<String>,
    enable_core_dumps: Option<bool>,
    private_endpoints: Option<EndpointsPatch>,
}

#[derive(Deserialize)]
struct EndpointsPatch {
    #[serde(default)]
    add: Vec<Value>,
    #[serde(default)]
    remove: Vec<Value>,
}

pub(super) fn update(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let patch: Patch = ctx.json()?;
    let org = ctx.org_mut(state)?;
    if let Some(name) = &patch.name
        && (name.trim().is_empty() || name.chars().count() > 50)
    {
        return Err(ApiError::bad_request(
            "Organization name must be 1 to 50 characters",
        ));
    }
    if let Some(name) = patch.name.filter(|n| *n != org.name) {
        org.name = name;
        ctx.record("organization_update_name", |_| {});
    }
    if let Some(on) = patch
        .enable_core_dumps
        .filter(|on| *on != org.enable_core_dumps)
    {
        org.enable_core_dumps = on;
        ctx.record("organization_update_core_dumps", |_| {});
    }
    if let Some(pe) = patch.private_endpoints {
        let id_of = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_owned);
        let removed: Vec<String> = pe.remove.iter().filter_map(id_of).collect();
        org.private_endpoints
            .retain(|e| id_of(e).is_none_or(|id| !removed.contains(&id)));
        org.private_endpoints.extend(pe.add);
        ctx.record("organization_update_private_endpoints", |_| {});
    }
    Ok(Reply::ok(org.to_json()))
}
