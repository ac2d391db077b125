//! The emulated operations: method, path template, `operationId` and the permissions the
//! spec's `security` entry lists for each (an empty list = valid auth suffices), plus path
//! matching. `handlers::dispatch` maps `operation_id` to code; the conformance test checks this
//! table against the vendor spec.

/// One emulated operation of the vendor spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    /// The spec's path template, e.g. `/v1/organizations/{organizationId}`.
    pub path: &'static str,
    pub operation_id: &'static str,
    /// Every permission the key must hold (spec `security[0].basicAuth`).
    pub permissions: &'static [&'static str],
}

pub const ORG_VIEW: &str = "control-plane:organization:view";
pub const ORG_MANAGE: &str = "control-plane:organization:manage";
pub const VIEW_ACTIVITIES: &str = "control-plane:organization:view-activities";
pub const VIEW_API_KEYS: &str = "control-plane:organization:view-api-keys";
pub const CREATE_API_KEYS: &str = "control-plane:organization:create-api-keys";
pub const CREATE_SERVICE: &str = "control-plane:organization:create-service";
pub const SERVICE_VIEW: &str = "control-plane:service:view";
pub const SERVICE_MANAGE: &str = "control-plane:service:manage";
pub const SERVICE_DELETE: &str = "control-plane:service:delete";
pub const SERVICE_SCALING: &str = "control-plane:service:manage-scaling-config";
pub const VIEW_BACKUPS: &str = "control-plane:service:view-backups";

/// What the system `Developer` role (and the deprecated `developer` key role) may do here:
/// read inventory, but not the audit log or the key list.
pub(crate) const DEVELOPER_PERMISSIONS: &[&str] = &[ORG_VIEW, SERVICE_VIEW, VIEW_BACKUPS];

/// The seeded custom `Auditor` role: read-only, including activities and keys.
pub(crate) const AUDITOR_PERMISSIONS: &[&str] = &[
    ORG_VIEW,
    VIEW_ACTIVITIES,
    VIEW_API_KEYS,
    SERVICE_VIEW,
    VIEW_BACKUPS,
];

/// A path under one organization.
macro_rules! org {
    ($rest:literal) => {
        concat!("/v1/organizations/{organizationId}", $rest)
    };
}

macro_rules! route {
    ($m:literal, $p:expr, $op:literal, [$($perm:expr),*]) => {
        RouteInfo { method: $m, path: $p, operation_id: $op, permissions: &[$($perm),*] }
    };
}

/// Every operation the emulator serves (besides `GET /v1`, the spec itself).
pub const ROUTES: &[RouteInfo] = &[
    route!("GET", "/v1/whoami", "whoamiGet", []),
    route!("GET", "/v1/organizations", "organizationGetList", []),
    route!("GET", org!(""), "organizationGet", [ORG_VIEW]),
    route!("PATCH", org!(""), "organizationUpdate", [ORG_MANAGE]),
    route!("GET", org!("/services"), "instanceGetList", []),
    route!(
        "POST",
        org!("/services"),
        "instanceCreate",
        [CREATE_SERVICE, SERVICE_MANAGE]
    ),
    route!(
        "GET",
        org!("/services/{serviceId}"),
        "instanceGet",
        [SERVICE_VIEW]
    ),
    route!(
        "PATCH",
        org!("/services/{serviceId}"),
        "instanceUpdate",
        [SERVICE_MANAGE]
    ),
    route!(
        "DELETE",
        org!("/services/{serviceId}"),
        "instanceDelete",
        [SERVICE_DELETE]
    ),
    route!(
        "PATCH",
        org!("/services/{serviceId}/state"),
        "instanceStateUpdate",
        []
    ),
    route!(
        "PATCH",
        org!("/services/{serviceId}/scaling"),
        "instanceScalingUpdate",
        [SERVICE_SCALING]
    ),
    route!(
        "PATCH",
        org!("/services/{serviceId}/replicaScaling"),
        "instanceReplicaScalingUpdate",
        [SERVICE_SCALING]
    ),
    route!(
        "PATCH",
        org!("/services/{serviceId}/password"),
        "instancePasswordUpdate",
        [SERVICE_MANAGE]
    ),
    route!(
        "GET",
        org!("/services/{serviceId}/backups"),
        "backupGetList",
        [VIEW_BACKUPS]
    ),
    route!(
        "GET",
        org!("/services/{serviceId}/backups/{backupId}"),
        "backupGet",
        [VIEW_BACKUPS]
    ),
    route!(
        "GET",
        org!("/services/{serviceId}/backupConfiguration"),
        "backupConfigurationGet",
        [VIEW_BACKUPS]
    ),
    route!("GET", org!("/keys"), "openapiKeyGetList", [VIEW_API_KEYS]),
    route!("POST", org!("/keys"), "openapiKeyCreate", [CREATE_API_KEYS]),
    route!(
        "GET",
        org!("/keys/{keyId}"),
        "openapiKeyGet",
        [VIEW_API_KEYS]
    ),
    route!(
        "PATCH",
        org!("/keys/{keyId}"),
        "openapiKeyUpdate",
        [VIEW_API_KEYS]
    ),
    route!(
        "DELETE",
        org!("/keys/{keyId}"),
        "openapiKeyDelete",
        [VIEW_API_KEYS]
    ),
    route!("GET", org!("/members"), "memberGetList", [ORG_VIEW]),
    route!("GET", org!("/members/{userId}"), "memberGet", [ORG_VIEW]),
    route!(
        "PATCH",
        org!("/members/{userId}"),
        "memberUpdate",
        [ORG_MANAGE]
    ),
    route!(
        "DELETE",
        org!("/members/{userId}"),
        "memberDelete",
        [ORG_MANAGE]
    ),
    route!("GET", org!("/invitations"), "invitationGetList", [ORG_VIEW]),
    route!(
        "POST",
        org!("/invitations"),
        "invitationCreate",
        [ORG_MANAGE]
    ),
    route!(
        "GET",
        org!("/invitations/{invitationId}"),
        "invitationGet",
        [ORG_VIEW]
    ),
    route!(
        "DELETE",
        org!("/invitations/{invitationId}"),
        "invitationDelete",
        [ORG_MANAGE]
    ),
    route!(
        "GET",
        org!("/activities"),
        "activityGetList",
        [VIEW_ACTIVITIES]
    ),
    route!(
        "GET",
        org!("/activities/{activityId}"),
        "activityGet",
        [VIEW_ACTIVITIES]
    ),
];

/// Path parameters captured by a match, by template name.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The captured value of `{name}` (empty if the template has no such parameter).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    NotFound,
    /// The path exists, but not with this method.
    Method,
}

/// Finds the operation for `method` and a (percent-decoded per segment) `path`.
pub(crate) fn find(method: &str, path: &str) -> Result<(&'static RouteInfo, Params), Miss> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut path_matched = false;
    for route in ROUTES {
        let Some(params) = match_template(route.path, &segs) else {
            continue;
        };
        if route.method == method {
            return Ok((route, params));
        }
        path_matched = true;
    }
    Err(if path_matched {
        Miss::Method
    } else {
        Miss::NotFound
    })
}

fn match_template(template: &'static str, segs: &[&str]) -> Option<Params> {
    let tsegs: Vec<&'static str> = template.split('/').collect();
    if tsegs.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, s) in tsegs.iter().zip(segs) {
        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            if s.is_empty() {
                return None;
            }
            params.push((name, percent_decode(s)));
        } else if t != s {
            return None;
        }
    }
    Some(Params(params))
}

/// Decodes `%XX` escapes (and, when `plus_is_space`, `+`); invalid escapes stay as written.
pub(crate) fn percent_decode_with(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
                continue;
            }
            (None, b'+') if plus_is_space => out.push(b' '),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_decode(s: &str) -> String {
    percent_decode_with(s, false)
}

/// `application/x-www-form-urlencoded` query pairs, in order (repeated names kept).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode_with(k, true), percent_decode_with(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_routes_and_captures_params() {
        let (r, p) = find("GET", "/v1/organizations/o1/services/s%2D1/backups/b1").unwrap();
        assert_eq!(r.operation_id, "backupGet");
        assert_eq!(
            (
                p.get("organizationId"),
                p.get("serviceId"),
                p.get("backupId")
            ),
            ("o1", "s-1", "b1")
        );
        assert_eq!(
            find("PUT", "/v1/organizations/o1").unwrap_err(),
            Miss::Method
        );
        assert_eq!(find("GET", "/v1/nope").unwrap_err(), Miss::NotFound);
        assert_eq!(
            find("GET", "/v1/organizations/").unwrap().0.operation_id,
            "organizationGetList"
        );
    }

    #[test]
    fn query_decoding_is_form_style() {
        let q = query_pairs(Some(
            "from_date=2024-01-01T00%3A00%3A00Z&filter=tag:a=b&filter=tag%3Ac&x=1+2&bad=%zz",
        ));
        assert_eq!(q[0], ("from_date".into(), "2024-01-01T00:00:00Z".into()));
        assert_eq!(q[1], ("filter".into(), "tag:a=b".into()));
        assert_eq!(q[2], ("filter".into(), "tag:c".into()));
        assert_eq!(q[3], ("x".into(), "1 2".into()));
        assert_eq!(q[4], ("bad".into(), "%zz".into()));
    }
}
