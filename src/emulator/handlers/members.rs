//! Members (list, get, PATCH role → `organization_member_update_role[s]`, DELETE →
//! `organization_member_delete`) and invitations (list, POST → `organization_invite_create`,
//! get, DELETE → `organization_invite_delete`). Emails are stored lower-case.

use chrono::Duration;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, Ctx, Result};
use crate::emulator::body::Reply;
use crate::emulator::jsonfmt::uuid;
use crate::emulator::model::{Invitation, Org, State};
use crate::emulator::validate;

fn not_found(kind: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("{kind} {id} not found"))
}

pub(super) fn list(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org(state)?;
    Ok(Reply::ok(Value::Array(
        org.members.iter().map(|m| m.to_json(org)).collect(),
    )))
}

pub(super) fn get(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org(state)?;
    let id = ctx.param("userId");
    let m = org
        .members
        .iter()
        .find(|m| m.user_id == id)
        .ok_or_else(|| not_found("Member", id))?;
    Ok(Reply::ok(m.to_json(org)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RolePatch {
    role: Option<String>,
    assigned_role_ids: Option<Vec<String>>,
}

/// Role ids for a deprecated `role` name, or validated `assignedRoleIds`.
fn role_ids(
    org: &Org,
    role: Option<&str>,
    ids: Option<&[String]>,
) -> Result<(Option<String>, Vec<String>)> {
    if let Some(ids) = ids {
        if let Some(bad) = ids.iter().find(|id| org.role(id).is_none()) {
            return Err(ApiError::bad_request(format!("Unknown role id '{bad}'")));
        }
        return Ok((None, ids.to_vec()));
    }
    match role {
        Some(r @ ("admin" | "developer")) => {
            let id = org
                .role_named(r)
                .map(|x| x.id.clone())
                .into_iter()
                .collect();
            Ok((Some(r.to_owned()), id))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid role '{other}': expected admin or developer"
        ))),
        None => Err(ApiError::bad_request("role or assignedRoleIds is required")),
    }
}

pub(super) fn update(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let p: RolePatch = ctx.json()?;
    let org = ctx.org_mut(state)?;
    let (role, ids) = role_ids(org, p.role.as_deref(), p.assigned_role_ids.as_deref())?;
    let names: Vec<String> = ids
        .iter()
        .filter_map(|id| org.role(id))
        .map(|r| r.name.clone())
        .collect();
    let id = ctx.param("userId");
    let pos = org
        .members
        .iter()
        .position(|m| m.user_id == id)
        .ok_or_else(|| not_found("Member", id))?;
    let by_role = role.is_some();
    let m = &mut org.members[pos];
    if let Some(r) = role {
        m.role = r;
    }
    m.role_ids = ids.clone();
    let json = org.members[pos].to_json(org);
    let actor = format!("user/{id}");
    let kind = if by_role {
        "organization_member_update_role"
    } else {
        "organization_member_update_roles"
    };
    ctx.record(kind, |a| {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        a.strs("targetActorIds", &[&actor])
            .strs("targetRoleIds", &ids)
            .strs("targetRoleNames", &names);
    });
    Ok(Reply::ok(json))
}

pub(super) fn delete(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org_mut(state)?;
    let id = ctx.param("userId");
    let before = org.members.len();
    org.members.retain(|m| m.user_id != id);
    if org.members.len() == before {
        return Err(not_found("Member", id));
    }
    ctx.record("organization_member_delete", |_| {});
    Ok(Reply::empty())
}

pub(super) fn invitations(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org(state)?;
    Ok(Reply::ok(Value::Array(
        org.invitations.iter().map(|i| i.to_json(org)).collect(),
    )))
}

pub(super) fn invitation(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org(state)?;
    let id = ctx.param("invitationId");
    let inv = org
        .invitations
        .iter()
        .find(|i| i.id == id)
        .ok_or_else(|| not_found("Invitation", id))?;
    Ok(Reply::ok(inv.to_json(org)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invite {
    email: Option<String>,
    role: Option<String>,
    assigned_role_ids: Option<Vec<String>>,
}

pub(super) fn invite(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let req: Invite = ctx.json()?;
    let email = validate::email(
        req.email
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("email is required"))?,
    )?;
    let org = ctx.org_mut(state)?;
    let role_name = req
        .role
        .as_deref()
        .or(req.assigned_role_ids.is_none().then_some("developer"));
    let (role, ids) = role_ids(org, role_name, req.assigned_role_ids.as_deref())?;
    if org
        .members
        .iter()
        .any(|m| m.email.eq_ignore_ascii_case(&email))
    {
        return Err(ApiError::bad_request(format!(
            "{email} is already a member of the organization"
        )));
    }
    if org.invitations.iter().any(|i| i.email == email) {
        return Err(ApiError::bad_request(format!(
            "An invitation for {email} already exists"
        )));
    }
    let inv = Invitation {
        id: uuid(&mut ctx.inner.rng()),
        email,
        role: role.unwrap_or_else(|| "developer".into()),
        role_ids: ids,
        created_at: ctx.now,
        expire_at: ctx.now + Duration::days(30),
    };
    let json = inv.to_json(org);
    org.invitations.push(inv);
    ctx.record("organization_invite_create", |_| {});
    Ok(Reply::ok(json))
}

pub(super) fn uninvite(ctx: &Ctx<'_>, state: &mut State) -> Result<Reply> {
    let org = ctx.org_mut(state)?;
    let id = ctx.param("invitationId");
    let before = org.invitations.len();
    org.invitations.retain(|i| i.id != id);
    if org.invitations.len() == before {
        return Err(not_found("Invitation", id));
    }
    ctx.record("organization_invite_delete", |_| {});
    Ok(Reply::empty())
}
