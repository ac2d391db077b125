//! Lenient, borrowed views of event payloads for the SIEM formats (ecs, ocsf, cef) and the sinks
//! that read payload fields: one serde pass reads the fields a format maps, through the lenient
//! readers of `lenient.rs`. A field of an unexpected JSON type reads as absent (numbers and
//! booleans as their text) so that any payload renders: formats never fail an event.

use serde::Deserialize;
use serde_json::value::RawValue;

pub use super::lenient::{Str, StrList};
// The sinks and fuzz targets that import the time helpers and `push_int` from here keep
// working; their homes are `format::time` and `format::write`.
pub use super::time::{first_time_ms, parse_time_ms, push_rfc3339_ms};
pub use super::write::push_int;

/// The activity fields the SIEM formats map (vendor spec `Activity`, all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ActivityView<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub created_at: Str<'a>,
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub actor_type: Str<'a>,
    #[serde(borrow)]
    pub actor_id: Str<'a>,
    #[serde(borrow)]
    pub actor_details: Str<'a>,
    #[serde(borrow)]
    pub actor_ip_address: Str<'a>,
    #[serde(borrow)]
    pub organization_id: Str<'a>,
    #[serde(borrow)]
    pub service_id: Str<'a>,
    #[serde(borrow)]
    pub user_agent: Str<'a>,
    #[serde(borrow)]
    pub target_key_id: Str<'a>,
    #[serde(borrow)]
    pub key_update_type: Str<'a>,
    #[serde(borrow)]
    pub target_role_ids: StrList<'a>,
    #[serde(borrow)]
    pub target_role_names: StrList<'a>,
    #[serde(borrow)]
    pub target_actor_ids: StrList<'a>,
    #[serde(borrow)]
    pub target_resource_ids: StrList<'a>,
}

/// An inventory event body (issue #6): `resource`, `resource_id`, `action`, `changed`,
/// `before`, `after`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InventoryView<'a> {
    #[serde(borrow)]
    pub resource: Str<'a>,
    #[serde(borrow)]
    pub resource_id: Str<'a>,
    #[serde(borrow)]
    pub action: Str<'a>,
    #[serde(borrow)]
    pub changed: StrList<'a>,
    #[serde(borrow)]
    pub before: Option<&'a RawValue>,
    #[serde(borrow)]
    pub after: Option<&'a RawValue>,
}

impl InventoryView<'_> {
    /// The object's `name` from `after` (else `before`), if it has one.
    pub fn object_name(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Named<'a> {
            #[serde(borrow, default)]
            name: Str<'a>,
        }
        [self.after, self.before]
            .into_iter()
            .flatten()
            .filter(|raw| raw.get().starts_with('{'))
            .find_map(|raw| {
                serde_json::from_str::<Named>(raw.get())
                    .ok()
                    .and_then(|n| n.name.non_empty().map(str::to_owned))
            })
    }
}

/// A posture finding body (issue #6): `rule`, `status` (open|resolved), `severity`, `resource`,
/// `resource_id`, `summary`, `evidence`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FindingView<'a> {
    #[serde(borrow)]
    pub rule: Str<'a>,
    #[serde(borrow)]
    pub status: Str<'a>,
    #[serde(borrow)]
    pub severity: Str<'a>,
    #[serde(borrow)]
    pub resource: Str<'a>,
    #[serde(borrow)]
    pub resource_id: Str<'a>,
    #[serde(borrow)]
    pub summary: Str<'a>,
}

impl FindingView<'_> {
    pub fn is_resolved(&self) -> bool {
        self.status
            .get()
            .is_some_and(|s| s.eq_ignore_ascii_case("resolved"))
    }
}

/// Parses `payload` as a `T` view if it is a JSON object. `None` means the payload is not a
/// well-formed object (or repeats a mapped key): formats then carry it as an opaque string.
pub fn parse_object<'a, T: Deserialize<'a>>(payload: &'a str) -> Option<T> {
    let trimmed = payload.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

/// `payload` as a `T` view, or the empty view when it is not a JSON object; and whether it was
/// one (the JSON formats then embed the payload as an object, else as text).
pub fn parse_or_default<'a, T: Deserialize<'a> + Default>(payload: &'a str) -> (T, bool) {
    match parse_object(payload) {
        Some(view) => (view, true),
        None => (T::default(), false),
    }
}

/// The actor IP if it is a well-formed IPv4/IPv6 address (SIEM ip fields reject anything else,
/// in Elasticsearch the whole document).
pub fn valid_ip(s: Option<&str>) -> Option<&str> {
    s.map(str::trim)
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_the_wrong_type_read_as_absent_or_text() {
        let v: ActivityView = parse_object(
            r#"{"id":42,"type":["x"],"actorId":{"a":1},"actorDetails":null,"createdAt":true,
                "targetRoleIds":["a",1,null,"b"],"targetActorIds":"solo","serviceId":"s\"1"}"#,
        )
        .unwrap();
        assert_eq!(v.id.get(), Some("42"));
        assert_eq!(v.kind.get(), None);
        assert_eq!(v.actor_id.get(), None);
        assert_eq!(v.actor_details.get(), None);
        assert_eq!(v.created_at.get(), Some("true"));
        assert_eq!(v.target_role_ids.0, vec!["a", "1", "b"]);
        assert_eq!(v.target_actor_ids.first(), Some("solo"));
        assert_eq!(v.service_id.get(), Some("s\"1"));
    }

    #[test]
    fn non_objects_are_not_parsed() {
        assert!(parse_object::<ActivityView>(r#"["a","b"]"#).is_none());
        assert!(parse_object::<ActivityView>("{\"id\":").is_none());
        assert!(parse_object::<ActivityView>("42").is_none());
        assert!(parse_object::<ActivityView>(r#"{"id":"a"} trailing"#).is_none());
    }

    #[test]
    fn only_real_ips_are_ips() {
        assert_eq!(valid_ip(Some(" 10.1.2.3 ")), Some("10.1.2.3"));
        assert_eq!(valid_ip(Some("2001:db8::1")), Some("2001:db8::1"));
        assert_eq!(valid_ip(Some("10.1.2.3, 10.0.0.1")), None);
        assert_eq!(valid_ip(Some("")), None);
    }
}
