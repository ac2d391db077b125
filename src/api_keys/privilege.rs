//! Least privilege for `validate` (issue 16): the permissions the enabled streams need (the
//! vendor's per-operation table, docs §6) and a comparison with the roles the key's record
//! shows. The API shows role names, not their permissions (reading roles needs
//! `control-plane:organization:manage`, itself far more than a read-only exporter needs), so an
//! `Admin` role (or the deprecated `admin`) is the one judged broader for certain; other roles
//! are named for the operator to compare with the minimal set.

use std::collections::BTreeMap;

use crate::config::{Config, Resource};

/// The own-key watch reads the key list.
const VIEW_API_KEYS: &str = "control-plane:organization:view-api-keys";

/// Each permission the configuration needs, with what needs it, sorted by permission.
pub fn needed_permissions(cfg: &Config) -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut need: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    let mut add = |p: &'static str, why: &'static str| need.entry(p).or_default().push(why);
    if cfg.activities.enabled {
        add("control-plane:organization:view-activities", "activities");
    }
    if cfg.inventory.enabled {
        for r in &cfg.inventory.resources {
            match r {
                // The list declares none, but shows only the services the key can view.
                Resource::Services => add("control-plane:service:view", "inventory services"),
                Resource::Keys => add(VIEW_API_KEYS, "inventory keys"),
                Resource::Members => add("control-plane:organization:view", "inventory members"),
                Resource::Invitations => {
                    add("control-plane:organization:view", "inventory invitations")
                }
                Resource::Backups => add("control-plane:service:view-backups", "inventory backups"),
            }
        }
    }
    add(VIEW_API_KEYS, "own-key expiry watch");
    need
}

/// How the key's roles compare with what the exporter needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privilege {
    /// An Admin role: it can create, change and delete; far broader than needed.
    Broader { roles: Vec<String> },
    /// Roles whose permissions the API does not show: compare them by hand.
    Unclear { roles: Vec<String> },
}

impl Privilege {
    /// Judges the role names of a key record (`assignedRoles[].roleName`, else `roles`).
    pub fn judge(roles: &[String]) -> Privilege {
        if roles.iter().any(|r| r.eq_ignore_ascii_case("admin")) {
            Privilege::Broader {
                roles: roles.to_vec(),
            }
        } else {
            Privilege::Unclear {
                roles: roles.to_vec(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_broader_and_the_minimal_set_follows_the_streams() {
        assert!(matches!(
            Privilege::judge(&["Admin".into()]),
            Privilege::Broader { .. }
        ));
        assert!(matches!(
            Privilege::judge(&["admin".into(), "developer".into()]),
            Privilege::Broader { .. }
        ));
        assert!(matches!(
            Privilege::judge(&["Auditor".into()]),
            Privilege::Unclear { .. }
        ));
        let cfg = Config::from_toml(
            "[inventory]\nenabled = false\n[[sinks]]\nname = \"out\"\ntype = \"stdout\"\n",
            Some(Default::default()),
        )
        .unwrap();
        let need = needed_permissions(&cfg);
        assert_eq!(
            need.keys().copied().collect::<Vec<_>>(),
            [
                "control-plane:organization:view-activities",
                "control-plane:organization:view-api-keys"
            ]
        );
    }
}
