//! Seeded initial inventory for one organization: services in varied states (one transitional,
//! one open to `0.0.0.0/0`, tags), keys (expiring, expired and disabled), members, invitations,
//! roles, and backups per service (newest first). Same seed and index → same ids and names.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;

use super::jsonfmt::{token, uuid};
use super::model::{Backup, Credential, Invitation, Key, Member, Org, Role, Service, Transition};
use super::routes::{AUDITOR_PERMISSIONS, DEVELOPER_PERMISSIONS};

const ORG_NAMES: [&str; 4] = [
    "Acme Analytics",
    "Ørsted & Søn Data ApS",
    "東京 Observability K.K.",
    "Globex Telemetry",
];

/// Everything seeded for org number `index` (its keys are returned beside it).
pub(crate) fn seed_org(
    rng: &mut fastrand::Rng,
    index: usize,
    now: DateTime<Utc>,
) -> (Org, Vec<Key>) {
    let id = uuid(rng);
    let name = match (ORG_NAMES.get(index), index / ORG_NAMES.len()) {
        (Some(n), _) => (*n).to_owned(),
        (None, round) => format!("{} #{}", ORG_NAMES[index % ORG_NAMES.len()], round + 1),
    };
    let perms = |p: &[&str]| Some(p.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>());
    let roles = vec![
        Role {
            id: uuid(rng),
            name: "Admin".into(),
            kind: "system",
            permissions: None,
        },
        Role {
            id: uuid(rng),
            name: "Developer".into(),
            kind: "system",
            permissions: perms(DEVELOPER_PERMISSIONS),
        },
        Role {
            id: uuid(rng),
            name: "Auditor".into(),
            kind: "custom",
            permissions: perms(AUDITOR_PERMISSIONS),
        },
    ];
    let (admin, dev, auditor) = (
        roles[0].id.clone(),
        roles[1].id.clone(),
        roles[2].id.clone(),
    );
    let day = Duration::days(1);
    let members = vec![
        member(
            rng,
            "Zoë Ørsted",
            "zoe.orsted@example.com",
            "admin",
            &admin,
            now - day * 380,
        ),
        member(
            rng,
            "田中 明 (Akira Tanaka)",
            "akira.tanaka@example.jp",
            "developer",
            &dev,
            now - day * 200,
        ),
        member(
            rng,
            "María José García",
            "mj.garcia@example.es",
            "developer",
            &dev,
            now - day * 45,
        ),
    ];
    let invitations = vec![
        Invitation {
            id: uuid(rng),
            email: "new.hire@example.com".into(),
            role: "developer".into(),
            role_ids: vec![dev.clone()],
            created_at: now - day * 2,
            expire_at: now + day * 28,
        },
        Invitation {
            id: uuid(rng),
            email: "contractor@example.org".into(),
            role: "admin".into(),
            role_ids: vec![admin.clone()],
            created_at: now - day * 27,
            expire_at: now + day * 3,
        },
    ];
    let services = vec![
        service(
            rng,
            ServiceSeed {
                name: "prod-analytics",
                provider: "aws",
                region: "us-east-1",
                state: "running",
                ip: &[("0.0.0.0/0", "Anywhere")],
                tags: &[
                    ("Environment", Some("Production")),
                    ("team", Some("data-platform")),
                ],
                memory: (16, 120),
                replicas: 3,
                idle: (false, 15),
                age_days: 300,
            },
            now,
        ),
        service(
            rng,
            ServiceSeed {
                name: "東京 staging",
                provider: "gcp",
                region: "asia-northeast1",
                state: "idle",
                ip: &[("203.0.113.0/24", "Tokyo office")],
                tags: &[("Environment", Some("Staging")), ("isActive", None)],
                memory: (8, 32),
                replicas: 2,
                idle: (true, 15),
                age_days: 120,
            },
            now,
        ),
        service(
            rng,
            ServiceSeed {
                name: "dev-sandbox",
                provider: "azure",
                region: "eastus2",
                state: "stopped",
                ip: &[
                    ("198.51.100.7/32", "VPN egress"),
                    ("2001:db8::/48", "IPv6 office"),
                ],
                tags: &[("Environment", Some("Development"))],
                memory: (8, 16),
                replicas: 1,
                idle: (true, 5),
                age_days: 60,
            },
            now,
        ),
        service(
            rng,
            ServiceSeed {
                name: "ingest-eu",
                provider: "aws",
                region: "eu-central-1",
                state: "provisioning",
                ip: &[("198.51.100.0/24", "ingest fleet")],
                tags: &[],
                memory: (16, 64),
                replicas: 3,
                idle: (false, 15),
                age_days: 0,
            },
            now,
        ),
    ];
    let org = Org {
        id: id.clone(),
        name,
        created_at: (now - day * 400)
            .duration_trunc(Duration::seconds(1))
            .unwrap_or(now),
        enable_core_dumps: true,
        private_endpoints: Vec::new(),
        roles,
        services,
        members,
        invitations,
    };
    let keys = vec![
        key(
            rng,
            &id,
            "terraform-ci",
            true,
            &["developer"],
            &dev,
            now - day * 90,
            Some(now + day * 90),
            Some(now - Duration::hours(2)),
            vec![json!({"source": "198.51.100.0/24", "description": "CI runners"})],
        ),
        key(
            rng,
            &id,
            "old-rotation-2023",
            false,
            &["admin"],
            &admin,
            now - day * 700,
            Some(now - day * 330),
            None,
            Vec::new(),
        ),
        key(
            rng,
            &id,
            "siem-reader",
            true,
            &[],
            &auditor,
            now - day * 20,
            None,
            Some(now - day),
            Vec::new(),
        ),
    ];
    (org, keys)
}

fn member(
    rng: &mut fastrand::Rng,
    name: &str,
    email: &str,
    role: &str,
    role_id: &str,
    joined: DateTime<Utc>,
) -> Member {
    Member {
        user_id: uuid(rng),
        name: name.into(),
        email: email.into(),
        role: role.into(),
        role_ids: vec![role_id.to_owned()],
        joined_at: joined,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one row of seed data, read top to bottom"
)]
fn key(
    rng: &mut fastrand::Rng,
    org: &str,
    name: &str,
    enabled: bool,
    roles: &[&str],
    role_id: &str,
    created: DateTime<Utc>,
    expire: Option<DateTime<Utc>>,
    used: Option<DateTime<Utc>>,
    ip_access_list: Vec<Value>,
) -> Key {
    let minute = Duration::minutes(1);
    Key {
        id: uuid(rng),
        credential: Credential::Secret(token(rng, 40)),
        name: name.into(),
        enabled,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        role_ids: vec![role_id.to_owned()],
        permissions: match roles.first() {
            Some(&"admin") => None,
            Some(_) => Some(
                DEVELOPER_PERMISSIONS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
            ),
            None => Some(
                AUDITOR_PERMISSIONS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
            ),
        },
        created_at: created,
        expire_at: expire,
        used_at: used.and_then(|u| u.duration_trunc(minute).ok()),
        ip_access_list,
        orgs: vec![org.to_owned()],
        credentials_valid: true,
    }
}

struct ServiceSeed<'a> {
    name: &'a str,
    provider: &'a str,
    region: &'a str,
    state: &'static str,
    ip: &'a [(&'a str, &'a str)],
    tags: &'a [(&'a str, Option<&'a str>)],
    memory: (u32, u32),
    replicas: u32,
    idle: (bool, u32),
    age_days: i64,
}

fn service(rng: &mut fastrand::Rng, s: ServiceSeed<'_>, now: DateTime<Utc>) -> Service {
    let id = uuid(rng);
    let created = now - Duration::days(s.age_days) - Duration::minutes(5);
    let host = format!(
        "{}.{}.{}.clickhouse.cloud",
        token(rng, 10).to_lowercase(),
        s.region,
        s.provider
    );
    // A freshly created service is still provisioning for a while after start-up.
    let transition = (s.state == "provisioning").then(|| Transition {
        to: Some("running"),
        at: now + Duration::minutes(10),
    });
    let mut svc = Service {
        id: id.clone(),
        name: s.name.into(),
        provider: s.provider.into(),
        region: s.region.into(),
        state: s.state,
        transition,
        clickhouse_version: "25.6.1.3190".into(),
        host,
        mysql_enabled: false,
        min_replica_gb: s.memory.0,
        max_replica_gb: s.memory.1,
        num_replicas: s.replicas,
        idle_scaling: s.idle.0,
        idle_timeout_minutes: s.idle.1,
        ip_access_list: s
            .ip
            .iter()
            .map(|(src, d)| json!({"source": src, "description": d}))
            .collect(),
        created_at: created,
        iam_role: format!("arn:aws:iam::123456789012:role/CH-S3-{}-Role", &id[..8]),
        private_endpoint_ids: Vec::new(),
        data_warehouse_id: uuid(rng),
        is_primary: true,
        is_readonly: false,
        release_channel: "default".into(),
        tags: s
            .tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect(),
        enable_core_dumps: false,
        backups: Vec::new(),
        backup_config: (24, 24 * 7, None),
    };
    if s.state != "provisioning" {
        svc.backups = seed_backups(rng, &svc, now);
    }
    svc
}

/// Five backups, newest first: in progress (if the service runs), done, error, done, done.
fn seed_backups(rng: &mut fastrand::Rng, svc: &Service, now: DateTime<Utc>) -> Vec<Backup> {
    let statuses: &[&'static str] = if svc.state == "running" {
        &["in_progress", "done", "error", "done", "done"]
    } else {
        &["done", "done", "error", "done", "done"]
    };
    let newest = now.duration_trunc(Duration::hours(1)).unwrap_or(now) - Duration::minutes(20);
    statuses
        .iter()
        .enumerate()
        .map(|(i, status)| {
            let started = newest - Duration::hours(24 * i as i64);
            let full = i % 4 == 0;
            let size = if full {
                rng.u64(20_000_000_000..80_000_000_000)
            } else {
                rng.u64(50_000_000..2_000_000_000)
            };
            let id = uuid(rng);
            Backup {
                bucket: bucket(&svc.provider, &svc.id),
                name: format!("{}/{}", &svc.id, &id),
                id,
                status,
                started_at: started,
                finished_at: (*status != "in_progress")
                    .then(|| started + Duration::seconds(rng.i64(40..900))),
                size_bytes: if *status == "error" { 0 } else { size },
                full,
            }
        })
        .collect()
}

fn bucket(provider: &str, service_id: &str) -> Value {
    match provider {
        "gcp" => {
            json!({"bucketProvider": "GCP", "bucketPath": format!("gs://ch-backups-eu/{service_id}"), "accessKeyId": "GOOG1EEXAMPLEKEYID"})
        }
        "azure" => {
            json!({"bucketProvider": "AZURE", "containerName": format!("ch-backups-{}", &service_id[..8])})
        }
        _ => json!({
            "bucketProvider": "AWS",
            "bucketPath": format!("s3://ch-backups-us/{service_id}"),
            "iamRoleArn": "arn:aws:iam::123456789012:role/CH-Backup-Role",
            "iamRoleSessionName": "clickhouse-backup",
        }),
    }
}

/// A generated running service number `n` (bulk inventories, e.g. budget tests), with the
/// usual five backups; never open to the internet.
pub(crate) fn bulk_service(rng: &mut fastrand::Rng, n: usize, now: DateTime<Utc>) -> Service {
    let name = format!("bulk-{n:03}");
    service(
        rng,
        ServiceSeed {
            name: &name,
            provider: "aws",
            region: "us-east-2",
            state: "running",
            ip: &[("198.51.100.0/24", "office")],
            tags: &[("Environment", Some("Bulk"))],
            memory: (8, 16),
            replicas: 1,
            idle: (true, 15),
            age_days: 30,
        },
        now,
    )
}
