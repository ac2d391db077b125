//! OCSF mapping of activities: the catalogue picks the class and activity; this file fills
//! each class's required attributes (`actor`, `src_endpoint`, `api`, `user`, `privileges`,
//! `entity`) from the activity's fields.

use super::{Head, close, metadata, open};
use crate::event::Event;
use crate::format::catalog::{self, Act, Class};
use crate::format::facts::Facts;
use crate::format::view::{ActivityView, parse_or_default, valid_ip};
use crate::format::write::{push_int, push_json_str};

/// OCSF `user.type_id`/`type` of an `actorType`.
fn user_type(actor_type: Option<&str>) -> Option<(u8, &'static str)> {
    Some(match actor_type? {
        "user" => (1, "User"),
        "system" => (3, "System"),
        "support" => (99, "Support"),
        "api" => (99, "API Key"),
        _ => return None,
    })
}

/// A `user` object: `{"uid":…,"name":…,"type_id":…,"type":…}` with what is known; `{}` if
/// nothing is (the classes that require a `user` still get one).
fn push_user(out: &mut Vec<u8>, uid: Option<&str>, name: Option<&str>, ty: Option<(u8, &str)>) {
    out.push(b'{');
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, key: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(key);
    };
    if let Some(uid) = uid {
        field(out, b"\"uid\":");
        push_json_str(out, uid);
    }
    if let Some(name) = name {
        field(out, b"\"name\":");
        push_json_str(out, name);
    }
    if let Some((id, caption)) = ty {
        field(out, b"\"type_id\":");
        push_int(out, i64::from(id));
        out.extend_from_slice(b",\"type\":");
        push_json_str(out, caption);
    }
    out.push(b'}');
}

pub(super) fn encode(event: &Event, out: &mut Vec<u8>) {
    let (a, is_object) = parse_or_default::<ActivityView>(&event.payload);
    let ty = a.kind.get().unwrap_or("");
    let info = catalog::info_for(ty, a.key_update_type.get());
    let facts = Facts::activity_with(event, &a, &info);
    let class = info.class;
    let activity_id = info.activity_id();
    let activity_name = if info.act == Act::Other && !ty.is_empty() {
        ty
    } else {
        info.act.caption()
    };
    open(
        &Head {
            class_uid: class.uid(),
            class_name: class.name(),
            category_uid: class.category_uid(),
            category_name: class.category_name(),
            activity_id,
            activity_name,
            severity: facts.severity,
            success: Some(!catalog::is_failure(ty)),
            time_ms: facts.time_ms,
        },
        out,
    );
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, ty);
    metadata(
        event,
        a.kind.get(),
        a.created_at.non_empty().unwrap_or(&event.occurred_at),
        "activity",
        class == Class::UserAccess,
        out,
    );

    let actor_type = user_type(a.actor_type.get());
    let actor_id = a.actor_id.non_empty();
    let details = a.actor_details.non_empty();
    out.extend_from_slice(b",\"actor\":{\"user\":");
    push_user(out, actor_id, details, actor_type);
    out.push(b'}');
    let ip = valid_ip(a.actor_ip_address.get());
    if ip.is_some() || class == Class::ApiActivity {
        // API Activity requires src_endpoint; without an IP it is an empty endpoint.
        out.extend_from_slice(b",\"src_endpoint\":{");
        if let Some(ip) = ip {
            out.extend_from_slice(b"\"ip\":");
            push_json_str(out, ip);
        }
        out.push(b'}');
    }
    if let Some(ua) = a.user_agent.non_empty() {
        out.extend_from_slice(b",\"http_request\":{\"user_agent\":");
        push_json_str(out, ua);
        out.push(b'}');
    }

    match class {
        Class::ApiActivity => {
            out.extend_from_slice(b",\"api\":{\"operation\":");
            push_json_str(out, if ty.is_empty() { "unknown" } else { ty });
            out.extend_from_slice(b",\"service\":{\"name\":\"ClickHouse Cloud\"}}");
            if let Some(service) = a.service_id.non_empty() {
                out.extend_from_slice(b",\"resources\":[{\"uid\":");
                push_json_str(out, service);
                out.extend_from_slice(b",\"type\":\"service\"}]");
            }
        }
        Class::Authentication => {
            // The user who logged in (or failed to) is the actor.
            out.extend_from_slice(b",\"user\":");
            push_user(out, actor_id, details, actor_type);
        }
        Class::AccountChange => {
            out.extend_from_slice(b",\"user\":");
            if catalog::entity_type(ty) == "role" {
                // A role definition: OCSF 3001 covers "a user/role being created, changed…".
                push_user(
                    out,
                    a.target_role_ids.first(),
                    a.target_role_names.first(),
                    Some((99, "Role")),
                );
            } else {
                push_target_user(out, ty, &a, actor_id, details, actor_type);
            }
        }
        Class::UserAccess => {
            out.extend_from_slice(b",\"user\":");
            push_target_user(out, ty, &a, actor_id, details, actor_type);
            out.extend_from_slice(b",\"privileges\":[");
            let roles = if a.target_role_names.is_empty() {
                &a.target_role_ids
            } else {
                &a.target_role_names
            };
            for (i, r) in roles.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(out, r);
            }
            out.push(b']');
        }
        Class::EntityManagement => {
            let entity_type = catalog::entity_type(ty);
            let uid = match entity_type {
                "service" => a.service_id.non_empty(),
                "api_key" => a.target_key_id.non_empty(),
                "organization" => a.organization_id.non_empty().or(Some(&event.org_id)),
                _ => None,
            };
            out.extend_from_slice(b",\"entity\":{\"type\":\"");
            out.extend_from_slice(entity_type.as_bytes());
            out.push(b'"');
            if let Some(uid) = uid {
                out.extend_from_slice(b",\"uid\":");
                push_json_str(out, uid);
            }
            out.push(b'}');
        }
    }
    close(event, is_object, out);
}

/// The account an Account Change / User Access event is about: the first `targetActorIds`
/// entry; else, when the actor acts on themself (join, leave, MFA, profile), the actor; else
/// unknown (`{}`) — e.g. an invitation names no invitee.
fn push_target_user(
    out: &mut Vec<u8>,
    ty: &str,
    a: &ActivityView,
    actor_id: Option<&str>,
    details: Option<&str>,
    actor_type: Option<(u8, &'static str)>,
) {
    if let Some(target) = a.target_actor_ids.first() {
        push_user(out, Some(target), None, None);
    } else if matches!(
        ty,
        "organization_member_join"
            | "organization_member_leave"
            | "organization_member_update_mfa_method"
            | "scim_user_profile_update"
    ) {
        push_user(out, actor_id, details, actor_type);
    } else {
        push_user(out, None, None, None);
    }
}
