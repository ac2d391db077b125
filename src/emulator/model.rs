//! The emulated inventory: organizations, services (with backups and lazy state transitions),
//! API keys, members, invitations and roles, and how each renders as the spec's JSON schema
//! (`Organization`, `Service`, `ApiKey`, `Member`, `Invitation`, `Backup`, ...). Handlers mutate
//! it under `Inner::state`; the generator seeds it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;

use super::jsonfmt::ts;

/// All inventory, behind one mutex in `Inner`.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) orgs: Vec<Org>,
    /// Keys of every org; the emulator's admin key belongs to all of them.
    pub(crate) keys: Vec<Key>,
}

impl State {
    pub(crate) fn org(&self, id: &str) -> Option<&Org> {
        self.orgs.iter().find(|o| o.id == id)
    }

    pub(crate) fn org_mut(&mut self, id: &str) -> Option<&mut Org> {
        self.orgs.iter_mut().find(|o| o.id == id)
    }

    pub(crate) fn key_mut(&mut self, id: &str) -> Option<&mut Key> {
        self.keys.iter_mut().find(|k| k.id == id)
    }

    /// Applies every service transition that has completed by `now` in every org.
    pub(crate) fn settle(&mut self, now: DateTime<Utc>) {
        for org in &mut self.orgs {
            org.services.retain_mut(|s| s.settle(now));
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Org {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) enable_core_dumps: bool,
    pub(crate) private_endpoints: Vec<Value>,
    pub(crate) roles: Vec<Role>,
    pub(crate) services: Vec<Service>,
    pub(crate) members: Vec<Member>,
    pub(crate) invitations: Vec<Invitation>,
}

impl Org {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "createdAt": ts(self.created_at),
            "name": self.name,
            "privateEndpoints": self.private_endpoints,
            "byocConfig": [],
            "enableCoreDumps": self.enable_core_dumps,
            "capabilities": { "snapshots": false },
        })
    }

    pub(crate) fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// The system role with this (case-insensitive) name: "Admin", "Developer", ...
    pub(crate) fn role_named(&self, name: &str) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn service_mut(&mut self, id: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.id == id)
    }
}

/// An RBAC role; members and keys carry `AssignedRole` references to these.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub(crate) id: String,
    pub(crate) name: String,
    /// `system` or `custom`.
    pub(crate) kind: &'static str,
    /// `None` = every permission (Admin).
    pub(crate) permissions: Option<BTreeSet<String>>,
}

impl Role {
    pub(crate) fn assigned(&self) -> Value {
        json!({ "roleId": self.id, "roleName": self.name, "roleType": self.kind })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) user_id: String,
    pub(crate) name: String,
    pub(crate) email: String,
    /// Deprecated `role`: `admin` | `developer`.
    pub(crate) role: String,
    pub(crate) role_ids: Vec<String>,
    pub(crate) joined_at: DateTime<Utc>,
}

impl Member {
    pub(crate) fn to_json(&self, org: &Org) -> Value {
        json!({
            "userId": self.user_id,
            "name": self.name,
            "email": self.email,
            "role": self.role,
            "joinedAt": ts(self.joined_at),
            "assignedRoles": assigned(org, &self.role_ids),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Invitation {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) role_ids: Vec<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expire_at: DateTime<Utc>,
}

impl Invitation {
    pub(crate) fn to_json(&self, org: &Org) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "createdAt": ts(self.created_at),
            "expireAt": ts(self.expire_at),
            "assignedRoles": assigned(org, &self.role_ids),
        })
    }
}

fn assigned(org: &Org, role_ids: &[String]) -> Vec<Value> {
    role_ids
        .iter()
        .filter_map(|id| org.role(id))
        .map(Role::assigned)
        .collect()
}

/// How a key proves itself: the plain secret, or the SHA-256 hashes sent as `hashData`.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    Secret(String),
    Hashed {
        key_id_hash: String,
        secret_hash: String,
        /// `hashData.keyIdSuffix`: the only part of the id the server knows.
        suffix: String,
    },
}

/// An API key. For plainly created keys the Basic-auth username *is* `id`, so one id names the
/// key everywhere (auth, `/keys/{keyId}`, `whoami.keyId`, `actorId`, `targetKeyId`).
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) id: String,
    pub(crate) credential: Credential,
    pub(crate) name: String,
    pub(crate) enabled: bool,
    /// Deprecated `roles` (`admin`, `developer`, `query_endpoints`).
    pub(crate) roles: Vec<String>,
    pub(crate) role_ids: Vec<String>,
    /// `None` = all permissions.
    pub(crate) permissions: Option<BTreeSet<String>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expire_at: Option<DateTime<Utc>>,
    pub(crate) used_at: Option<DateTime<Utc>>,
    pub(crate) ip_access_list: Vec<Value>,
    pub(crate) orgs: Vec<String>,
    /// Cleared by `Emulator::set_credentials_valid(id, false)`: every request gets 401.
    pub(crate) credentials_valid: bool,
}

impl Key {
    /// Last 4 characters of the key id (what `keySuffix` shows).
    pub(crate) fn suffix(&self) -> String {
        if let Credential::Hashed { suffix, .. } = &self.credential {
            return suffix.clone();
        }
        let chars: Vec<char> = self.id.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }

    pub(crate) fn to_json(&self, org: &Org) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "state": if self.enabled { "enabled" } else { "disabled" },
            "roles": self.roles,
            "assignedRoles": assigned(org, &self.role_ids),
            "keySuffix": self.suffix(),
            "createdAt": ts(self.created_at),
            "expireAt": self.expire_at.map(ts),
            "ipAccessList": self.ip_access_list,
        });
        if let Some(u) = self.used_at {
            v["usedAt"] = json!(ts(u));
        }
        v
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Backup {
    pub(crate) id: String,
    pub(crate) status: &'static str,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) size_bytes: u64,
    pub(crate) full: bool,
    pub(crate) name: String,
    pub(crate) bucket: Value,
}

impl Backup {
    pub(crate) fn to_json(&self, service_id: &str, now: DateTime<Utc>) -> Value {
        let end = self.finished_at.unwrap_or(now);
        let mut v = json!({
            "id": self.id,
            "status": self.status,
            "serviceId": service_id,
            "startedAt": ts(self.started_at),
            "sizeInBytes": self.size_bytes,
            "durationInSeconds": (end - self.started_at).num_seconds().max(0),
            "type": if self.full { "full" } else { "incremental" },
            "backupName": self.name,
            "bucket": self.bucket,
        });
        if let Some(f) = self.finished_at {
            v["finishedAt"] = json!(ts(f));
        }
        v
    }
}

/// A state change in progress: `state` becomes `to` at `at` (`None` = the service disappears).
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub(crate) to: Option<&'static str>,
    pub(crate) at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) provider: String,
    pub(crate) region: String,
    pub(crate) state: &'static str,
    pub(crate) transition: Option<Transition>,
    pub(crate) clickhouse_version: String,
    pub(crate) host: String,
    pub(crate) mysql_enabled: bool,
    pub(crate) min_replica_gb: u32,
    pub(crate) max_replica_gb: u32,
    pub(crate) num_replicas: u32,
    pub(crate) idle_scaling: bool,
    pub(crate) idle_timeout_minutes: u32,
    pub(crate) ip_access_list: Vec<Value>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) iam_role: String,
    pub(crate) private_endpoint_ids: Vec<String>,
    pub(crate) data_warehouse_id: String,
    pub(crate) is_primary: bool,
    pub(crate) is_readonly: bool,
    pub(crate) release_channel: String,
    pub(crate) tags: Vec<(String, Option<String>)>,
    pub(crate) enable_core_dumps: bool,
    pub(crate) backups: Vec<Backup>,
    /// `(backupPeriodInHours, backupRetentionPeriodInHours, backupStartTime)`.
    pub(crate) backup_config: (u32, u32, Option<String>),
}

impl Service {
    /// Completes a due transition; `false` when the service has finished terminating.
    fn settle(&mut self, now: DateTime<Utc>) -> bool {
        match &self.transition {
            Some(t) if t.at <= now => match t.to {
                Some(to) => {
                    self.state = to;
                    self.transition = None;
                    true
                }
                None => false,
            },
            _ => true,
        }
    }

    pub(crate) fn in_transition(&self) -> bool {
        self.transition.is_some()
    }

    pub(crate) fn has_tag(&self, key: &str, value: Option<&str>) -> bool {
        self.tags
            .iter()
            .any(|(k, v)| k == key && value.is_none_or(|want| v.as_deref() == Some(want)))
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut endpoints = vec![
            json!({"protocol": "https", "host": self.host, "port": 8443, "username": null}),
            json!({"protocol": "nativesecure", "host": self.host, "port": 9440, "username": null}),
        ];
        if self.mysql_enabled {
            let user = format!("{}_default", &self.id[..8]);
            endpoints.push(
                json!({"protocol": "mysql", "host": self.host, "port": 3306, "username": user}),
            );
        }
        let tags: Vec<Value> = self
            .tags
            .iter()
            .map(|(k, v)| match v {
                Some(v) => json!({"key": k, "value": v}),
                None => json!({"key": k}),
            })
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "region": self.region,
            "state": self.state,
            "clickhouseVersion": self.clickhouse_version,
            "endpoints": endpoints,
            "minTotalMemoryGb": self.min_replica_gb * 3,
            "maxTotalMemoryGb": self.max_replica_gb * 3,
            "minReplicaMemoryGb": self.min_replica_gb,
            "maxReplicaMemoryGb": self.max_replica_gb,
            "numReplicas": self.num_replicas,
            "autoscalingMode": "vertical",
            "idleScaling": self.idle_scaling,
            "idleTimeoutMinutes": self.idle_timeout_minutes,
            "ipAccessList": self.ip_access_list,
            "createdAt": ts(self.created_at),
            "iamRole": self.iam_role,
            "privateEndpointIds": self.private_endpoint_ids,
            "availablePrivateEndpointIds": [],
            "dataWarehouseId": self.data_warehouse_id,
            "isPrimary": self.is_primary,
            "isReadonly": self.is_readonly,
            "releaseChannel": self.release_channel,
            "hasTransparentDataEncryption": false,
            "profile": "v1-default",
            "tags": tags,
            "enableCoreDumps": self.enable_core_dumps,
            "currentScaling": {
                "effectiveAutoscalingMode": "vertical",
                "effectiveMinReplicaMemoryGb": self.min_replica_gb,
                "effectiveMaxReplicaMemoryGb": self.max_replica_gb,
                "effectiveMinReplicas": self.num_replicas,
                "effectiveMaxReplicas": self.num_replicas,
                "effectiveIdleScaling": self.idle_scaling,
                "effectiveIdleTimeoutMinutes": self.idle_timeout_minutes,
            },
        })
    }

    pub(crate) fn backup_config_json(&self) -> Value {
        let (period, retention, start) = &self.backup_config;
        let mut v = json!({
            "backupPeriodInHours": period,
            "backupRetentionPeriodInHours": retention,
        });
        if let Some(s) = start {
            v["backupStartTime"] = json!(s);
        }
        v
    }
}
