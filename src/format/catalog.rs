//! The activity-type catalogue: one table mapping every ClickHouse Cloud activity `type` to an
//! OCSF 1.3.0 class and activity, a severity, and (derived from those) the ECS categorization and
//! the CEF severity. ecs, ocsf and cef all read it, so the three formats agree on what an event is.
//!
//! Class choices (issue #4):
//! - member, invitation and role-definition changes → Account Change (3001); a member's role
//!   assignments → User Access Management (3005: assign/revoke privileges);
//! - `user_login*`/`user_logout` → Authentication (3002): the fallback would be API
//!   Activity, but logon/logoff is exactly what 3002 is for and what SIEM login detections query;
//! - service, API key, backup, warehouse, SCIM group and organization lifecycle and configuration
//!   → Entity Management (3004) — the managed entity's type is derived from the type prefix;
//! - everything else (billing, schema advisor, UDFs, postgres) → API Activity (6003), which
//!   Splunk's OCSF→CIM add-on maps to `All_Changes`;
//! - an unknown future type → API Activity, activity 99 (Other), severity Informational.
//!
//! Severity marks what a security team wants to see first: credentials, access paths (IP access
//! lists, endpoints, interfaces), SSO and role changes, and destruction rank higher than
//! scaling, renames and state notices.

/// The OCSF 1.3.0 event classes activities map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    AccountChange,
    Authentication,
    EntityManagement,
    UserAccess,
    ApiActivity,
}

impl Class {
    pub fn uid(self) -> u32 {
        match self {
            Class::AccountChange => 3001,
            Class::Authentication => 3002,
            Class::EntityManagement => 3004,
            Class::UserAccess => 3005,
            Class::ApiActivity => 6003,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::AccountChange => "Account Change",
            Class::Authentication => "Authentication",
            Class::EntityManagement => "Entity Management",
            Class::UserAccess => "User Access Management",
            Class::ApiActivity => "API Activity",
        }
    }

    pub fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    pub fn category_name(self) -> &'static str {
        match self.category_uid() {
            3 => "Identity & Access Management",
            _ => "Application Activity",
        }
    }
}

/// What happened, in class-independent words; `Class::activity_id` turns it into the OCSF id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Create,
    Read,
    Update,
    Delete,
    Move,
    Enable,
    Disable,
    Activate,
    Deactivate,
    Suspend,
    Resume,
    Logon,
    Logoff,
    Assign,
    Revoke,
    DetachPolicy,
    Other,
}

impl Act {
    /// The OCSF `activity_name` caption (for `Other`, formats write the vendor type instead).
    pub fn caption(self) -> &'static str {
        match self {
            Act::Create => "Create",
            Act::Read => "Read",
            Act::Update => "Update",
            Act::Delete => "Delete",
            Act::Move => "Move",
            Act::Enable => "Enable",
            Act::Disable => "Disable",
            Act::Activate => "Activate",
            Act::Deactivate => "Deactivate",
            Act::Suspend => "Suspend",
            Act::Resume => "Resume",
            Act::Logon => "Logon",
            Act::Logoff => "Logoff",
            Act::Assign => "Assign Privileges",
            Act::Revoke => "Revoke Privileges",
            Act::DetachPolicy => "Detach Policy",
            Act::Other => "Other",
        }
    }

    /// ECS `event.type` for this action (valid for the categories `ecs_category` picks).
    pub fn ecs_type(self) -> &'static str {
        match self {
            Act::Create => "creation",
            Act::Delete => "deletion",
            Act::Read => "info",
            Act::Logon => "start",
            Act::Logoff => "end",
            _ => "change",
        }
    }
}

impl Class {
    /// The OCSF 1.3.0 `activity_id` of `act` in this class; `None` if the class has no such
    /// activity (a test checks every table row has one).
    pub fn activity_id(self, act: Act) -> Option<u8> {
        use Act::*;
        let id = match (self, act) {
            (_, Other) => 99,
            (Class::AccountChange, Create) => 1,
            (Class::AccountChange, Enable) => 2,
            (Class::AccountChange, Disable) => 5,
            (Class::AccountChange, Delete) => 6,
            (Class::AccountChange, DetachPolicy) => 8,
            (Class::Authentication, Logon) => 1,
            (Class::Authentication, Logoff) => 2,
            (Class::UserAccess, Assign) => 1,
            (Class::UserAccess, Revoke) => 2,
            (Class::EntityManagement | Class::ApiActivity, Create) => 1,
            (Class::EntityManagement | Class::ApiActivity, Read) => 2,
            (Class::EntityManagement | Class::ApiActivity, Update) => 3,
            (Class::EntityManagement | Class::ApiActivity, Delete) => 4,
            (Class::EntityManagement, Move) => 5,
            (Class::EntityManagement, Enable) => 8,
            (Class::EntityManagement, Disable) => 9,
            (Class::EntityManagement, Activate) => 10,
            (Class::EntityManagement, Deactivate) => 11,
            (Class::EntityManagement, Suspend) => 12,
            (Class::EntityManagement, Resume) => 13,
            _ => return None,
        };
        Some(id)
    }
}

/// OCSF `severity_id` levels (1–5); CEF and ECS use `cef()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info = 1,
    Low = 2,
    Medium = 3,
    High = 4,
    Critical = 5,
}

impl Severity {
    pub fn id(self) -> u8 {
        self as u8
    }

    pub fn caption(self) -> &'static str {
        match self {
            Severity::Info => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    /// CEF 0–10 (ArcSight: 0–3 low, 4–6 medium, 7–8 high, 9–10 very high).
    pub fn cef(self) -> u8 {
        match self {
            Severity::Info => 1,
            Severity::Low => 3,
            Severity::Medium => 5,
            Severity::High => 8,
            Severity::Critical => 10,
        }
    }

    /// Reads a finding's `severity` (`info`, `low`, `medium`, `high`, `critical`, any case).
    pub fn parse(s: &str) -> Option<Severity> {
        let s = s.trim();
        let is = |w: &str| s.eq_ignore_ascii_case(w);
        Some(if is("info") || is("informational") {
            Severity::Info
        } else if is("low") {
            Severity::Low
        } else if is("medium") || is("moderate") {
            Severity::Medium
        } else if is("high") {
            Severity::High
        } else if is("critical") {
            Severity::Critical
        } else {
            return None;
        })
    }
}

/// One catalogue row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    pub class: Class,
    pub act: Act,
    pub severity: Severity,
}

impl TypeInfo {
    pub fn activity_id(&self) -> u8 {
        self.class.activity_id(self.act).unwrap_or(99)
    }
}

/// How an activity type nobody has catalogued yet is rendered.
pub const UNKNOWN: TypeInfo = TypeInfo {
    class: Class::ApiActivity,
    act: Act::Other,
    severity: Severity::Info,
};

use Act::*;
use Class::{
    AccountChange as Acct, ApiActivity as Api, Authentication as Auth, EntityManagement as Ent,
    UserAccess as Access,
};
use Severity::{High, Info, Low, Medium};

/// Every activity `type` of the vendor spec (and a test keeps it so), sorted for binary search.
#[rustfmt::skip]
const TABLE: &[(&str, Class, Act, Severity)] = &[
    ("backup_bucket_archive", Ent, Deactivate, Low),
    ("backup_bucket_create", Ent, Create, Low),
    ("backup_bucket_delete", Ent, Delete, Medium),
    ("backup_bucket_update", Ent, Update, Low),
    ("backup_delete", Ent, Delete, Medium),
    ("create_organization", Ent, Create, Low),
    ("datadog_integration_create", Ent, Create, Medium), // a new path data leaves by
    ("datadog_integration_delete", Ent, Delete, Low),
    ("delete_organization", Ent, Delete, High),
    ("key_create", Ent, Create, Medium),
    ("key_delete", Ent, Delete, Low),
    ("marketplace_subscription", Api, Create, Low),
    ("migrate_marketplace_billing_details_in", Api, Update, Info),
    ("migrate_marketplace_billing_details_out", Api, Update, Info),
    ("openapi_key_update", Ent, Update, Medium), // refined by keyUpdateType in `info_for`
    ("organization_approved_domain_auto_invite", Ent, Update, Medium),
    ("organization_approved_domain_auto_join", Ent, Update, Medium), // anyone at the domain may join
    ("organization_approved_domain_delete", Ent, Update, Low),
    ("organization_approved_domain_update", Ent, Update, Medium),
    ("organization_approved_domain_verify", Ent, Update, Low),
    ("organization_invite_create", Acct, Create, Low),
    ("organization_invite_delete", Acct, Delete, Low),
    ("organization_member_add", Acct, Create, Medium),
    ("organization_member_delete", Acct, Delete, Medium),
    ("organization_member_join", Acct, Create, Low),
    ("organization_member_leave", Acct, Delete, Low),
    ("organization_member_remove_roles", Access, Revoke, Medium),
    ("organization_member_update_mfa_method", Acct, Other, Medium), // enable or disable: unknown
    ("organization_member_update_role", Access, Assign, Medium),
    ("organization_member_update_roles", Access, Assign, Medium),
    ("organization_saml_connection_create", Ent, Create, High),
    ("organization_saml_connection_delete", Ent, Delete, High),
    ("organization_saml_connection_update", Ent, Update, High),
    ("organization_security_contact_add", Ent, Update, Low),
    ("organization_security_contact_remove", Ent, Update, Low),
    ("organization_security_contact_replace", Ent, Update, Low),
    ("organization_update_core_dumps", Ent, Update, Low),
    ("organization_update_hipaa_status", Ent, Update, Medium),
    ("organization_update_name", Ent, Update, Info),
    ("organization_update_pci_compliance", Ent, Update, Medium),
    ("organization_update_private_endpoints", Ent, Update, Medium),
    ("organization_update_public_preview", Ent, Update, Info),
    ("organization_update_saml_query_ownership_migration", Ent, Update, Low),
    ("organization_update_spend_alert", Ent, Update, Info),
    ("organization_update_tier", Ent, Update, Low),
    ("postgres_action", Api, Other, Info),
    ("promo_code_claim", Api, Update, Info),
    ("role_create", Acct, Create, Medium), // OCSF 3001: "a user/role being created, changed, deleted"
    ("role_delete", Acct, Delete, Medium),
    ("role_resources_delete", Acct, DetachPolicy, Low),
    ("role_update", Acct, Other, Medium),
    ("save_payment_method", Api, Update, Low),
    ("schema_advisor_approve_plan", Api, Update, Info),
    ("schema_advisor_drop_sandbox", Api, Delete, Info),
    ("schema_advisor_exchange_tables", Api, Update, Low),
    ("schema_advisor_generate_plan", Api, Create, Info),
    ("schema_advisor_run_benchmark", Api, Other, Info),
    ("schema_advisor_seed", Api, Create, Info),
    ("schema_advisor_start_benchmark", Api, Create, Info),
    ("schema_advisor_start_deployment", Api, Update, Info),
    ("schema_advisor_start_promotion", Api, Update, Low),
    ("scim_group_create", Ent, Create, Medium),
    ("scim_group_delete", Ent, Delete, Medium),
    ("scim_group_update", Ent, Update, Medium),
    ("scim_user_profile_update", Acct, Other, Low), // 3001 has no plain "update"
    ("service_awaken", Ent, Resume, Info),
    ("service_create", Ent, Create, Low),
    ("service_delete", Ent, Delete, Medium),
    ("service_delete_upgrade_window", Ent, Update, Info),
    ("service_encryption_key_check_failed", Ent, Other, High),
    ("service_encryption_key_rotated", Ent, Update, Low),
    ("service_encryption_key_rotation_failed", Ent, Update, High),
    ("service_export_from_organization", Ent, Move, Medium),
    ("service_idle", Ent, Suspend, Info),
    ("service_import_to_organization", Ent, Move, Medium),
    ("service_maintenance_end", Ent, Other, Info),
    ("service_maintenance_start", Ent, Other, Info),
    ("service_mcp_disabled", Ent, Disable, Low),
    ("service_mcp_enabled", Ent, Enable, Medium), // a new way in
    ("service_partially_running", Ent, Other, Low),
    ("service_restart_encryption_key_rotation", Ent, Activate, Low),
    ("service_restore_backup", Ent, Create, Low), // restores into a new service
    ("service_running", Ent, Other, Info),
    ("service_scaled_down_for_tier_change", Ent, Update, Info),
    ("service_start", Ent, Activate, Info),
    ("service_stop", Ent, Deactivate, Info),
    ("service_stop_encryption_key_inaccessible", Ent, Deactivate, High),
    ("service_trigger_failover", Ent, Other, Low),
    ("service_trigger_recovery", Ent, Other, Low),
    ("service_update_autoscaling_idling", Ent, Update, Info),
    ("service_update_autoscaling_memory", Ent, Update, Info),
    ("service_update_autoscaling_replicas", Ent, Update, Info),
    ("service_update_autoscaling_schedule", Ent, Update, Info),
    ("service_update_backup_configuration", Ent, Update, Low),
    ("service_update_collector_ip_access_list", Ent, Update, Medium),
    ("service_update_core_dump", Ent, Update, Low),
    ("service_update_direct_connection", Ent, Update, Medium),
    ("service_update_gpt_usage_consent", Ent, Update, Low),
    ("service_update_ip_access_list", Ent, Update, High), // who can reach the service
    ("service_update_max_allowable_replicas", Ent, Update, Info),
    ("service_update_mysql_interface", Ent, Update, Medium),
    ("service_update_name", Ent, Update, Info),
    ("service_update_password", Ent, Update, High), // the default user's credential
    ("service_update_private_endpoints", Ent, Update, Medium),
    ("service_update_query_endpoints", Ent, Update, Medium),
    ("service_update_release_channel", Ent, Update, Info),
    ("service_update_snapshot_configuration", Ent, Update, Low),
    ("service_update_sql_console_jwt_auth", Ent, Update, Medium),
    ("service_update_upgrade_window", Ent, Update, Info),
    ("service_upgrade", Ent, Update, Info),
    ("transfer_credits_in", Api, Update, Info),
    ("transfer_credits_out", Api, Update, Info),
    ("transfer_service_in", Ent, Move, Medium),
    ("transfer_service_out", Ent, Move, Medium),
    ("udf_attach", Api, Update, Low),
    ("udf_create", Api, Create, Low), // code that runs inside services
    ("udf_delete", Api, Delete, Low),
    ("udf_detach", Api, Update, Low),
    ("udf_rebuild", Api, Update, Info),
    ("udf_redeploy", Api, Update, Info),
    ("udf_update", Api, Update, Low),
    ("udf_update_services", Api, Update, Low),
    ("udf_version_create", Api, Create, Low),
    ("udf_version_delete", Api, Delete, Info),
    ("user_login", Auth, Logon, Info),
    ("user_login_failed", Auth, Logon, Medium), // status Failure
    ("user_logout", Auth, Logoff, Info),
    ("warehouse_update_name", Ent, Update, Info),
    ("warehouse_update_release_channel", Ent, Update, Info),
];

/// Every catalogued activity type, sorted.
pub fn types() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|row| row.0)
}

/// The catalogue row of `ty`, if catalogued.
pub fn lookup(ty: &str) -> Option<TypeInfo> {
    TABLE.binary_search_by(|row| row.0.cmp(ty)).ok().map(|i| {
        let (_, class, act, severity) = TABLE[i];
        TypeInfo {
            class,
            act,
            severity,
        }
    })
}

/// The row for an activity, refined by `keyUpdateType` for `openapi_key_update` (a key update
/// that records a creation or deletion is one); unknown types get `UNKNOWN`.
pub fn info_for(ty: &str, key_update_type: Option<&str>) -> TypeInfo {
    let mut info = lookup(ty).unwrap_or(UNKNOWN);
    if ty == "openapi_key_update" {
        match key_update_type {
            Some("created") => info.act = Act::Create,
            Some("deleted") => info.act = Act::Delete,
            _ => {}
        }
    }
    info
}

/// Whether the activity records a failure (`*_failed`, `*_inaccessible`).
pub fn is_failure(ty: &str) -> bool {
    ty.contains("_failed") || ty.ends_with("_inaccessible")
}

/// The kind of object an activity acts on (OCSF `entity.type`, CEF `cs` labels), from its prefix.
pub fn entity_type(ty: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("backup_bucket_", "backup_bucket"),
        ("backup_", "backup"),
        ("create_organization", "organization"),
        ("datadog_integration_", "integration"),
        ("delete_organization", "organization"),
        ("key_", "api_key"),
        ("openapi_key_", "api_key"),
        ("organization_approved_domain_", "approved_domain"),
        ("organization_invite_", "invitation"),
        ("organization_member_", "member"),
        ("organization_saml_connection_", "saml_connection"),
        ("organization_security_contact_", "organization"),
        ("organization_", "organization"),
        ("role_", "role"),
        ("scim_group_", "scim_group"),
        ("scim_user_", "user"),
        ("service_", "service"),
        ("transfer_service_", "service"),
        ("udf_", "udf"),
        ("user_", "user"),
        ("warehouse_", "warehouse"),
    ];
    PREFIXES
        .iter()
        .find(|(p, _)| ty.starts_with(p))
        .map_or("other", |(_, t)| t)
}

/// ECS `event.category` of an activity: `authentication`, `iam` for identities, keys, roles and
/// access, `configuration` for the rest.
pub fn ecs_category(ty: &str, class: Class) -> &'static str {
    match class {
        Class::Authentication => "authentication",
        Class::AccountChange | Class::UserAccess => "iam",
        _ => match entity_type(ty) {
            "api_key" | "role" | "scim_group" | "saml_connection" | "member" | "invitation"
            | "user" => "iam",
            _ => "configuration",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_every_row_has_an_ocsf_activity() {
        for pair in TABLE.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} !< {}", pair[0].0, pair[1].0);
        }
        for &(ty, class, act, _) in TABLE {
            assert!(
                class.activity_id(act).is_some(),
                "{ty}: {class:?} has no activity {act:?}"
            );
            assert_eq!(lookup(ty).map(|i| i.class), Some(class));
        }
    }

    /// Every `Activity.type` of the vendor spec is mapped deliberately (issue #4). The spec is
    /// `$CH_AUDIT_OPENAPI_SPEC` or the repository's copy, `docs/api/clickhouse-cloud-openapi.json`.
    #[test]
    fn every_activity_type_of_the_vendor_spec_is_in_the_table() {
        let path = std::env::var_os("CH_AUDIT_OPENAPI_SPEC")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| crate::emulator::SPEC_PATH.into());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "reading the vendor spec {} (set CH_AUDIT_OPENAPI_SPEC): {e}",
                path.display()
            )
        });
        let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
        let types = spec["components"]["schemas"]["Activity"]["properties"]["type"]["enum"]
            .as_array()
            .expect("Activity.type has an enum");
        assert!(types.len() >= 129, "only {} types in the spec", types.len());
        let missing: Vec<&str> = types
            .iter()
            .filter_map(|t| t.as_str())
            .filter(|t| lookup(t).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "activity types without a catalogue row: {missing:?}"
        );
    }

    #[test]
    fn unknown_types_are_api_activity_other() {
        let info = info_for("brand_new_thing", None);
        assert_eq!(info, UNKNOWN);
        assert_eq!(info.activity_id(), 99);
        assert_eq!(info.class.uid(), 6003);
    }

    #[test]
    fn key_updates_that_create_or_delete_are_create_or_delete() {
        assert_eq!(
            info_for("openapi_key_update", Some("created")).act,
            Act::Create
        );
        assert_eq!(
            info_for("openapi_key_update", Some("deleted")).act,
            Act::Delete
        );
        assert_eq!(
            info_for("openapi_key_update", Some("role-changed")).act,
            Act::Update
        );
    }

    #[test]
    fn entity_types_come_from_the_prefix() {
        assert_eq!(entity_type("service_update_ip_access_list"), "service");
        assert_eq!(entity_type("backup_bucket_create"), "backup_bucket");
        assert_eq!(entity_type("backup_delete"), "backup");
        assert_eq!(entity_type("openapi_key_update"), "api_key");
        assert_eq!(entity_type("organization_update_name"), "organization");
        assert_eq!(entity_type("brand_new"), "other");
        assert_eq!(ecs_category("key_create", Class::EntityManagement), "iam");
        assert_eq!(
            ecs_category("service_create", Class::EntityManagement),
            "configuration"
        );
    }
}
