//! `[inventory]`: which resources are snapshotted and how often, which volatile fields are
//! ignored when diffing, the backup fetch budget, and `[inventory.findings.*]`: one table per
//! posture rule (switch, severity, threshold). Data only; `poller::inventory` reads it.
//! Issue #6.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[inventory]`: services, keys, members, invitations, backups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time between inventory cycles of one organization.
    #[serde(default = "default_inventory_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Resources to snapshot. `backups` lists each service's backups (one request per service).
    #[serde(default = "default_resources")]
    pub resources: Vec<Resource>,
    /// A service's backup list is fetched again once this much time has passed since its last
    /// fetch (sooner when the service itself changed; stopped services only when they change).
    /// `"0s"`: every cycle.
    #[serde(default = "default_backup_interval", with = "humantime_serde")]
    pub backup_interval: Duration,
    /// At most this many backup lists per organization per cycle (most overdue first); the rest
    /// wait for the next cycle. Bounds the share of the 10-per-10-s budget one cycle takes.
    #[serde(default = "default_backups_per_cycle")]
    pub backups_per_cycle: usize,
    /// Service states counted as `running` when diffing (idle scaling moves a service between
    /// these without anyone acting). `[]` reports every such move as an `updated` event.
    #[serde(default = "default_idle_states")]
    pub service_idle_states: Vec<String>,
    /// Top-level fields ignored when deciding whether an object changed, per resource.
    #[serde(default)]
    pub ignore_fields: IgnoreFields,
    /// Posture rules.
    #[serde(default)]
    pub findings: FindingsConfig,
}

fn yes() -> bool {
    true
}
fn default_inventory_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_resources() -> Vec<Resource> {
    vec![
        Resource::Services,
        Resource::Keys,
        Resource::Members,
        Resource::Invitations,
        Resource::Backups,
    ]
}
fn default_backup_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_backups_per_cycle() -> usize {
    50
}
fn default_idle_states() -> Vec<String> {
    vec!["idle".into(), "awaking".into()]
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            enabled: true,
            interval: default_inventory_interval(),
            resources: default_resources(),
            backup_interval: default_backup_interval(),
            backups_per_cycle: default_backups_per_cycle(),
            service_idle_states: default_idle_states(),
            ignore_fields: IgnoreFields::default(),
            findings: FindingsConfig::default(),
        }
    }
}

impl InventoryConfig {
    pub fn has(&self, r: Resource) -> bool {
        self.resources.contains(&r)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.interval.is_zero() {
            return Err(ConfigError::key(
                "inventory.interval",
                "\"0s\"",
                "must be greater than zero",
            ));
        }
        if self.has(Resource::Backups) && !self.has(Resource::Services) {
            return Err(ConfigError::key(
                "inventory.resources",
                format!(
                    "{:?}",
                    self.resources
                        .iter()
                        .map(|r| r.plural())
                        .collect::<Vec<_>>()
                ),
                "`backups` needs `services` too (backups are listed per service)",
            ));
        }
        if self.has(Resource::Backups) && self.backups_per_cycle == 0 {
            return Err(ConfigError::key(
                "inventory.backups_per_cycle",
                0,
                "must be at least 1 while `backups` is in inventory.resources",
            ));
        }
        let f = &self.findings;
        for (key, d) in [
            (
                "inventory.findings.key_expiring.key_expiry_warning",
                f.key_expiring.key_expiry_warning,
            ),
            (
                "inventory.findings.key_unused.key_unused_after",
                f.key_unused.key_unused_after,
            ),
            (
                "inventory.findings.invitation_stale.invitation_max_age",
                f.invitation_stale.invitation_max_age,
            ),
            (
                "inventory.findings.backup_stale.backup_max_age",
                f.backup_stale.backup_max_age,
            ),
        ] {
            if d.is_zero() {
                return Err(ConfigError::key(key, "\"0s\"", "must be greater than zero"));
            }
        }
        Ok(())
    }
}

/// An inventory resource kind (the plural config name; events use the singular).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Services,
    Keys,
    Members,
    Invitations,
    Backups,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::Services,
        Resource::Keys,
        Resource::Members,
        Resource::Invitations,
        Resource::Backups,
    ];

    /// The config / metric name: `services`, `keys`, ...
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Services => "services",
            Resource::Keys => "keys",
            Resource::Members => "members",
            Resource::Invitations => "invitations",
            Resource::Backups => "backups",
        }
    }

    /// The event `resource` value: `service`, `key`, `member`, `invitation`, `backup`.
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Services => "service",
            Resource::Keys => "key",
            Resource::Members => "member",
            Resource::Invitations => "invitation",
            Resource::Backups => "backup",
        }
    }

    pub fn parse(plural: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.plural() == plural)
    }
}

/// `[inventory.ignore_fields]`: top-level fields that change without meaning. A change only
/// in these fields emits no event (the stored copy is refreshed silently, so the next real
/// change shows the latest values in `before`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreFields {
    /// `currentScaling`: the effective sizes the autoscaler and scaling schedules move.
    #[serde(default = "default_ignore_services")]
    pub services: Vec<String>,
    /// `usedAt`: moves on every use of the key (including this exporter's own calls).
    #[serde(default = "default_ignore_keys")]
    pub keys: Vec<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub invitations: Vec<String>,
    /// `durationInSeconds`, `sizeInBytes`: grow while a backup is in progress; the event for
    /// its status change carries the final values.
    #[serde(default = "default_ignore_backups")]
    pub backups: Vec<String>,
}

fn default_ignore_services() -> Vec<String> {
    vec!["currentScaling".into()]
}
fn default_ignore_keys() -> Vec<String> {
    vec!["usedAt".into()]
}
fn default_ignore_backups() -> Vec<String> {
    vec!["durationInSeconds".into(), "sizeInBytes".into()]
}

impl Default for IgnoreFields {
    fn default() -> Self {
        IgnoreFields {
            services: default_ignore_services(),
            keys: default_ignore_keys(),
            members: Vec::new(),
            invitations: Vec::new(),
            backups: default_ignore_backups(),
        }
    }
}

impl IgnoreFields {
    pub fn of(&self, r: Resource) -> &[String] {
        match r {
            Resource::Services => &self.services,
            Resource::Keys => &self.keys,
            Resource::Members => &self.members,
            Resource::Invitations => &self.invitations,
            Resource::Backups => &self.backups,
        }
    }
}

/// How loud a finding is (what SIEM formats map to their severity scales).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A rule without a threshold: on/off and an optional severity override.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides the rule's default severity.
    #[serde(default)]
    pub severity: Option<Severity>,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle {
            enabled: true,
            severity: None,
        }
    }
}

/// `[inventory.findings.key_expiring]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyExpiring {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Open when an enabled key expires within this.
    #[serde(default = "default_key_expiry_warning", with = "humantime_serde")]
    pub key_expiry_warning: Duration,
}

fn default_key_expiry_warning() -> Duration {
    Duration::from_secs(14 * 86400)
}

impl Default for KeyExpiring {
    fn default() -> Self {
        KeyExpiring {
            enabled: true,
            severity: None,
            key_expiry_warning: default_key_expiry_warning(),
        }
    }
}

/// `[inventory.findings.key_unused]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUnused {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Open when an enabled key's `usedAt` (or, never used, its `createdAt`) is older.
    #[serde(default = "default_key_unused_after", with = "humantime_serde")]
    pub key_unused_after: Duration,
}

fn default_key_unused_after() -> Duration {
    Duration::from_secs(90 * 86400)
}

impl Default for KeyUnused {
    fn default() -> Self {
        KeyUnused {
            enabled: true,
            severity: None,
            key_unused_after: default_key_unused_after(),
        }
    }
}

/// `[inventory.findings.invitation_stale]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationStale {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Open when a pending invitation's `createdAt` is older.
    #[serde(default = "default_invitation_max_age", with = "humantime_serde")]
    pub invitation_max_age: Duration,
}

fn default_invitation_max_age() -> Duration {
    Duration::from_secs(7 * 86400)
}

impl Default for InvitationStale {
    fn default() -> Self {
        InvitationStale {
            enabled: true,
            severity: None,
            invitation_max_age: default_invitation_max_age(),
        }
    }
}

/// `[inventory.findings.backup_stale]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupStale {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Open when a running service has no `done` backup that finished within this.
    #[serde(default = "default_backup_max_age", with = "humantime_serde")]
    pub backup_max_age: Duration,
}

fn default_backup_max_age() -> Duration {
    Duration::from_secs(48 * 3600)
}

impl Default for BackupStale {
    fn default() -> Self {
        BackupStale {
            enabled: true,
            severity: None,
            backup_max_age: default_backup_max_age(),
        }
    }
}

/// `[inventory.findings.service_unhealthy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUnhealthy {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Service states that open the finding.
    #[serde(default = "default_unhealthy_states")]
    pub states: Vec<String>,
}

fn default_unhealthy_states() -> Vec<String> {
    vec!["failed".into(), "degraded".into()]
}

impl Default for ServiceUnhealthy {
    fn default() -> Self {
        ServiceUnhealthy {
            enabled: true,
            severity: None,
            states: default_unhealthy_states(),
        }
    }
}

/// `[inventory.findings]`: one table per rule (see README "Inventory and posture findings").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsConfig {
    /// Role names (case-insensitive) that make a key, member or invitation an admin: matched
    /// against the deprecated `role`/`roles` and every `assignedRoles[].roleName`.
    #[serde(default = "default_admin_roles")]
    pub admin_roles: Vec<String>,
    #[serde(default)]
    pub service_open_to_internet: Toggle,
    #[serde(default)]
    pub service_unhealthy: ServiceUnhealthy,
    #[serde(default)]
    pub key_never_expires: Toggle,
    #[serde(default)]
    pub key_expiring: KeyExpiring,
    #[serde(default)]
    pub key_unused: KeyUnused,
    #[serde(default)]
    pub key_admin: Toggle,
    #[serde(default)]
    pub key_disabled: Toggle,
    #[serde(default)]
    pub invitation_stale: InvitationStale,
    #[serde(default)]
    pub invitation_admin: Toggle,
    #[serde(default)]
    pub member_admin: Toggle,
    #[serde(default)]
    pub backup_failed: Toggle,
    #[serde(default)]
    pub backup_stale: BackupStale,
}

fn default_admin_roles() -> Vec<String> {
    vec!["admin".into()]
}

impl Default for FindingsConfig {
    fn default() -> Self {
        FindingsConfig {
            admin_roles: default_admin_roles(),
            service_open_to_internet: Toggle::default(),
            service_unhealthy: ServiceUnhealthy::default(),
            key_never_expires: Toggle::default(),
            key_expiring: KeyExpiring::default(),
            key_unused: KeyUnused::default(),
            key_admin: Toggle::default(),
            key_disabled: Toggle::default(),
            invitation_stale: InvitationStale::default(),
            invitation_admin: Toggle::default(),
            member_admin: Toggle::default(),
            backup_failed: Toggle::default(),
            backup_stale: BackupStale::default(),
        }
    }
}
