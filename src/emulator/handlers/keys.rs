//! API key operations: list (oldest first, `limit`/`cursor`/`totalCount`), create (the secret
//! is returned once; `hashData` keys get none), get, PATCH (one `openapi_key_update` activity
//! per changed aspect, with `targetKeyId` and `keyUpdateType`), DELETE (never the calling key).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;

use super::{ApiError, Ctx, Result, double_option, paginate};
use crate::emulator::body::Reply;
use crate::emulator::jsonfmt::{token, uuid};
use crate::emulator::model::{Credential, Key, Org, State};
use crate::emulator::routes::DEVELOPER_PERMISSIONS;
use crate::emulator::validate;

const MAX_KEYS_PER_ORG: usize = 100;

fn in_org<'s>(ctx: &Ctx<'_>, state: &'s State) -> Result<(&'s Org, &'s Key)> {
    let org = ctx.org(state)?;
    let id = ctx.param("keyId");
    let key = state
        .keys
        .iter()
        .find(|k| k.id == id && k.orgs.contains(&org.id))
        .ok_or_else(|| ApiError::not_found(format!("API key {id} not found")))?;
    Ok((org, key))
}

pub(super) fn list(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org(state)?;
    let mut keys: Vec<&Key> = state
        .keys
        .iter()
        .filter(|k| k.orgs.contains(&org.id))
        .collect();
    keys.sort_by_key(|k| k.created_at);
    let total = keys.len();
    let (page, limit, next) = paginate(ctx, keys)?;
    let result: Vec<Value> = page.iter().map(|k| k.to_json(org)).collect();
    Ok(Reply::ok(Value::Array(result))
        .with("limit", json!(limit))
        .with("totalCount", json!(total))
        .with("nextCursor", json!(next)))
}

pub(super) fn get(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let (org, key) = in_org(ctx, state)?;
    Ok(Reply::ok(key.to_json(org)))
}

/// Permissions granted by deprecated `roles` or by `assignedRoleIds` (`None` = all).
fn permissions(
    org: &Org,
    roles: &[String],
    role_ids: &[String],
) -> Result<Option<BTreeSet<String>>> {
    let mut out = BTreeSet::new();
    for r in roles {
        match r.as_str() {
            "admin" => return Ok(None),
            "developer" => out.extend(DEVELOPER_PERMISSIONS.iter().map(|p| (*p).to_owned())),
            "query_endpoints" => {}
            other => return Err(ApiError::bad_request(format!("Invalid role '{other}'"))),
        }
    }
    for id in role_ids {
        let role = org
            .role(id)
            .ok_or_else(|| ApiError::bad_request(format!("Unknown role id '{id}'")))?;
        match &role.permissions {
            None => return Ok(None),
            Some(p) => out.extend(p.iter().cloned()),
        }
    }
    Ok(Some(out))
}

fn expiry(v: Option<&str>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => {
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "Invalid expireAt '{s}': expected an ISO-8601 date-time"
                    ))
                })?
                .with_timezone(&Utc);
            match t > now {
                true => Ok(Some(t)),
                false => Err(ApiError::bad_request("expireAt must be in the future")),
            }
        }
    }
}

fn enabled(state: Option<&str>) -> Result<Option<bool>> {
    match state {
        None => Ok(None),
        Some("enabled") => Ok(Some(true)),
        Some("disabled") => Ok(Some(false)),
        Some(o) => Err(ApiError::bad_request(format!(
            "Invalid state '{o}': expected enabled or disabled"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Create {
    name: Option<String>,
    expire_at: Option<String>,
    state: Option<String>,
    hash_data: Option<HashData>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    assigned_role_ids: Vec<String>,
    #[serde(default)]
    ip_access_list: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HashData {
    key_id_hash: String,
    key_id_suffix: String,
    key_secret_hash: String,
}

pub(super) fn create(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let req: Create = ctx.json()?;
    let name = req
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    let org = ctx.org(state)?;
    if req.roles.is_empty() && req.assigned_role_ids.is_empty() {
        return Err(ApiError::bad_request(
            "roles or assignedRoleIds must contain at least 1 element",
        ));
    }
    let perms = permissions(org, &req.roles, &req.assigned_role_ids)?;
    if state
        .keys
        .iter()
        .filter(|k| k.orgs.contains(&org.id))
        .count()
        >= MAX_KEYS_PER_ORG
    {
        return Err(ApiError::bad_request(format!(
            "The organization already has {MAX_KEYS_PER_ORG} API keys"
        )));
    }
    let mut role_ids = req.assigned_role_ids.clone();
    for r in &req.roles {
        if let Some(role) = org.role_named(r) {
            role_ids.push(role.id.clone());
        }
    }
    let (id, credential, secret) = {
        let mut rng = ctx.inner.rng();
        let id = uuid(&mut rng);
        match req.hash_data {
            Some(h) => {
                let cred = Credential::Hashed {
                    key_id_hash: h.key_id_hash,
                    secret_hash: h.key_secret_hash,
                    suffix: h.key_id_suffix,
                };
                (id, cred, None)
            }
            None => {
                let secret = token(&mut rng, 40);
                (id, Credential::Secret(secret.clone()), Some(secret))
            }
        }
    };
    let key = Key {
        id: id.clone(),
        credential,
        name,
        enabled: enabled(req.state.as_deref())?.unwrap_or(true),
        roles: req.roles,
        role_ids,
        permissions: perms,
        created_at: ctx.now,
        expire_at: expiry(req.expire_at.as_deref(), ctx.now)?,
        used_at: None,
        ip_access_list: validate::ip_access_list(&req.ip_access_list)?,
        orgs: vec![org.id.clone()],
        credentials_valid: true,
    };
    let mut result = json!({ "key": key.to_json(org) });
    if let Some(secret) = secret {
        result["keyId"] = json!(id);
        result["keySecret"] = json!(secret);
    }
    state.keys.push(key);
    ctx.record("key_create", |a| {
        a.str("targetKeyId", &id);
    });
    Ok(Reply::ok(result))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    name: Option<String>,
    roles: Option<Vec<String>>,
    assigned_role_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    expire_at: Option<Option<String>>,
    state: Option<String>,
    ip_access_list: Option<Vec<Value>>,
}

pub(super) fn update(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let p: Patch = ctx.json()?;
    let (org, key) = in_org(ctx, state)?;
    let org = org.clone();
    let mut key = key.clone();
    let mut changes = Vec::new();
    if let Some(name) = p.name {
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("name must not be empty"));
        }
        if name != key.name {
            key.name = name;
            changes.push("name-changed");
        }
    }
    if let Some(roles) = p.roles {
        key.permissions = permissions(&org, &roles, &[])?;
        key.role_ids = roles
            .iter()
            .filter_map(|r| org.role_named(r))
            .map(|r| r.id.clone())
            .collect();
        key.roles = roles;
        changes.push("role-changed");
    }
    if let Some(ids) = p.assigned_role_ids {
        key.permissions = permissions(&org, &[], &ids)?;
        key.role_ids = ids;
        changes.push("roles-v2-changed");
    }
    if let Some(exp) = p.expire_at {
        let exp = expiry(exp.as_deref(), ctx.now)?;
        if exp != key.expire_at {
            key.expire_at = exp;
            changes.push("date-changed");
        }
    }
    if let Some(on) = enabled(p.state.as_deref())?.filter(|on| *on != key.enabled) {
        key.enabled = on;
        changes.push("state-changed");
    }
    if let Some(list) = p.ip_access_list {
        key.ip_access_list = validate::ip_access_list(&list)?;
        changes.push("ip-access-list-changed");
    }
    let json = key.to_json(&org);
    let id = key.id.clone();
    *state.key_mut(&id).expect("found above") = key;
    for change in changes {
        ctx.record("openapi_key_update", |a| {
            a.str("targetKeyId", &id).str("keyUpdateType", change);
        });
    }
    Ok(Reply::ok(json))
}

/// "Only a key not used to authenticate the active request can be deleted" (spec): 400.
pub(super) fn delete(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let (org, key) = in_org(ctx, state)?;
    if key.id == ctx.caller.key_id {
        return Err(ApiError::bad_request(
            "Cannot delete the API key used to authenticate this request; only a key not used to authenticate the active request can be deleted",
        ));
    }
    let (org_id, id) = (org.id.clone(), key.id.clone());
    let key = state.key_mut(&id).expect("found above");
    key.orgs.retain(|o| *o != org_id);
    state.keys.retain(|k| !k.orgs.is_empty());
    ctx.record("key_delete", |a| {
        a.str("targetKeyId", &id);
    });
    Ok(Reply::empty())
}
