//! Operation handlers: `dispatch` maps a matched route's `operationId` to its handler. Each
//! handler runs synchronously under the inventory lock, validates like the real API (400 with
//! `BAD_REQUEST: …`, 404 for unknown resources, 409 for conflicting state) and records the
//! activity the real system would for every write, with the calling key as the `api` actor.

mod activities;
mod keys;
mod members;
mod orgs;
mod service_ops;
mod services;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::Inner;
use super::auth::Caller;
use super::body::{Reply, code};
use super::jsonfmt::ActivityJson;
use super::model::{Org, State};
use super::routes::{Params, RouteInfo};

/// An error answer: `{status, error: "CODE: message", requestId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(409, message)
    }

    /// The `error` field: `CODE: message`, or just `CODE` when there is no message.
    pub(crate) fn error_string(&self) -> String {
        match self.message.is_empty() {
            true => code(self.status).to_owned(),
            false => format!("{}: {}", code(self.status), self.message),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, ApiError>;

/// Everything a handler may look at about the request.
pub(crate) struct Ctx<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) caller: &'a Caller,
    pub(crate) params: &'a Params,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: &'a [u8],
    pub(crate) now: DateTime<Utc>,
    pub(crate) peer_ip: String,
    pub(crate) user_agent: Option<String>,
}

impl Ctx<'_> {
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params.get(name)
    }

    pub(crate) fn org_id(&self) -> &str {
        self.params.get("organizationId")
    }

    /// Every value of a query parameter, in order.
    pub(crate) fn query_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn query_one(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The org in the path, if it exists and the key belongs to it (else 404, as for any
    /// resource the caller cannot see).
    pub(crate) fn org<'s>(&self, state: &'s State) -> Result<&'s Org> {
        let id = self.org_id();
        match state.org(id) {
            Some(org) if self.caller.in_org(id) => Ok(org),
            _ => Err(ApiError::not_found(format!("Organization {id} not found"))),
        }
    }

    pub(crate) fn org_mut<'s>(&self, state: &'s mut State) -> Result<&'s mut Org> {
        self.org(state)?;
        Ok(state.org_mut(self.org_id()).expect("checked above"))
    }

    /// The JSON request body as `T` (400 if absent or not matching).
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let body = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}".as_slice()
        } else {
            self.body
        };
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
    }

    /// Records the activity the real service logs for this write, with this key as the actor.
    pub(crate) fn record(&self, kind: &str, fill: impl FnOnce(&mut ActivityJson)) {
        self.inner.record_api(self, kind, fill);
    }
}

pub(crate) fn forbidden(what: &str, permission: &str) -> ApiError {
    ApiError::new(403, format!("{what} requires {permission}"))
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(crate) fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Runs the handler for `route`.
pub(crate) fn dispatch(route: &RouteInfo, ctx: &Ctx<'_>) -> Result<Reply> {
    let mut guard = ctx.inner.state();
    let state = &mut *guard;
    state.settle(ctx.now);
    match route.operation_id {
        "whoamiGet" => orgs::whoami(ctx, state),
        "organizationGetList" => orgs::list(ctx, state),
        "organizationGet" => orgs::get(ctx, state),
        "organizationUpdate" => orgs::update(ctx, state),
        "instanceGetList" => services::list(ctx, state),
        "instanceCreate" => services::create(ctx, state),
        "instanceGet" => services::get(ctx, state),
        "instanceUpdate" => services::update(ctx, state),
        "instanceDelete" => services::delete(ctx, state),
        "instanceStateUpdate" => service_ops::change_state(ctx, state),
        "instanceScalingUpdate" | "instanceReplicaScalingUpdate" => {
            service_ops::scaling(ctx, state)
        }
        "instancePasswordUpdate" => service_ops::password(ctx, state),
        "backupGetList" => service_ops::backups(ctx, state),
        "backupGet" => service_ops::backup(ctx, state),
        "backupConfigurationGet" => service_ops::backup_configuration(ctx, state),
        "openapiKeyGetList" => keys::list(ctx, state),
        "openapiKeyCreate" => keys::create(ctx, state),
        "openapiKeyGet" => keys::get(ctx, state),
        "openapiKeyUpdate" => keys::update(ctx, state),
        "openapiKeyDelete" => keys::delete(ctx, state),
        "memberGetList" => members::list(ctx, state),
        "memberGet" => members::get(ctx, state),
        "memberUpdate" => members::update(ctx, state),
        "memberDelete" => members::delete(ctx, state),
        "invitationGetList" => members::invitations(ctx, state),
        "invitationCreate" => members::invite(ctx, state),
        "invitationGet" => members::invitation(ctx, state),
        "invitationDelete" => members::uninvite(ctx, state),
        "activityGetList" => {
            ctx.org(state)?;
            drop(guard);
            activities::list(ctx)
        }
        "activityGet" => {
            ctx.org(state)?;
            drop(guard);
            activities::get(ctx)
        }
        other => Err(ApiError::new(
            500,
            format!("operation {other} has no handler"),
        )),
    }
}

/// Page `items` by the spec's `limit` / `cursor` (an opaque offset), adding `limit` and
/// `nextCursor` to the reply.
pub(crate) fn paginate<T>(ctx: &Ctx<'_>, items: Vec<T>) -> Result<(Vec<T>, usize, Option<String>)> {
    const MAX: usize = 250;
    let limit = match ctx.query_one("limit") {
        None => MAX,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid limit '{l}': must be an integer >= 1"
                )));
            }
        },
    };
    let offset = match ctx.query_one("cursor") {
        None | Some("") => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid cursor '{c}'")))?,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < total).then(|| encode_cursor(offset + page.len()));
    Ok((page, limit, next))
}

fn encode_cursor(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}
