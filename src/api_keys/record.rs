//! `KeyRecord`: the fields of the spec's `ApiKey` schema the exporter reads about its own key
//! (`id`, `name`, `state`, deprecated `roles`, `assignedRoles`, `keySuffix`, `expireAt`), and
//! `find_own`, which picks our record out of an organization's key list: by `id` equal to the
//! key id, else by the one `keySuffix` ("last 4 letters of the key") our key id ends with, as
//! the vendor's Terraform provider does (the record id need not be the Basic-auth key id).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::api::RawObject;

/// One `assignedRoles` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AssignedRole {
    #[serde(default)]
    pub role_id: Option<String>,
    #[serde(default)]
    pub role_name: Option<String>,
    /// `system` or `custom`.
    #[serde(default)]
    pub role_type: Option<String>,
}

/// What the exporter reads of an `ApiKey` record; every field optional, as in the spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub state: Option<String>,
    /// Deprecated: `admin`, `developer`, `query_endpoints`.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub assigned_roles: Vec<AssignedRole>,
    #[serde(default)]
    pub key_suffix: Option<String>,
    /// Absent, `null` or empty: never expires.
    #[serde(default)]
    pub expire_at: Option<String>,
}

impl KeyRecord {
    /// Reads one record; `None` when it is not an object of that shape.
    pub fn parse(raw: &RawObject) -> Option<KeyRecord> {
        serde_json::from_str(raw.raw.get()).ok()
    }

    /// `expireAt` parsed; `Ok(None)` when the key never expires, `Err(text)` when unreadable.
    pub fn expires(&self) -> Result<Option<DateTime<Utc>>, String> {
        match self.expire_at.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| s.to_string()),
        }
    }

    pub fn disabled(&self) -> bool {
        self.state.as_deref() == Some("disabled")
    }

    /// Role names for messages: `assignedRoles[].roleName`, else the deprecated `roles`.
    pub fn role_names(&self) -> Vec<String> {
        let assigned: Vec<String> = self
            .assigned_roles
            .iter()
            .filter_map(|r| r.role_name.clone())
            .collect();
        if assigned.is_empty() {
            self.roles.clone()
        } else {
            assigned
        }
    }
}

/// Our key's record in an organization's key list (see the module doc for the match).
pub fn find_own(list: &[RawObject], key_id: &str) -> Option<KeyRecord> {
    let records: Vec<KeyRecord> = list.iter().filter_map(KeyRecord::parse).collect();
    if let Some(r) = records.iter().find(|r| r.id.as_deref() == Some(key_id)) {
        return Some(r.clone());
    }
    let mut by_suffix = records.iter().filter(|r| {
        r.key_suffix
            .as_deref()
            .is_some_and(|s| !s.is_empty() && key_id.ends_with(s))
    });
    match (by_suffix.next(), by_suffix.next()) {
        (Some(r), None) => Some(r.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawObject {
        RawObject {
            id: None,
            raw: serde_json::value::RawValue::from_string(json.into()).unwrap(),
        }
    }

    #[test]
    fn finds_our_record_by_id_else_by_a_unique_suffix() {
        let list = [
            raw(r#"{"id":"k-1","state":"enabled","keySuffix":"AAAA","expireAt":null}"#),
            raw(
                r#"{"id":"k-2","state":"disabled","keySuffix":"BBBB","expireAt":"2030-01-02T03:04:05Z","assignedRoles":[{"roleId":"r","roleName":"Admin","roleType":"system"}]}"#,
            ),
        ];
        let own = find_own(&list, "k-2").unwrap();
        assert!(own.disabled());
        assert_eq!(own.role_names(), ["Admin"]);
        assert_eq!(
            own.expires().unwrap().unwrap().to_rfc3339(),
            "2030-01-02T03:04:05+00:00"
        );
        let by_suffix = find_own(&list, "secret-id-xyzAAAA").unwrap();
        assert_eq!(by_suffix.id.as_deref(), Some("k-1"));
        assert_eq!(by_suffix.expires(), Ok(None));
        assert!(find_own(&list, "nothing").is_none());
    }
}
