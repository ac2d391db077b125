//! Inventory snapshots, change events and posture findings against the built-in emulator
//! (issue #6): one event per real change and none for churn, a baseline of `observed` events,
//! no `deleted` after a failed list, each finding rule opening and resolving once, a 403
//! switching one resource off, and a 3 × 50-service cycle inside the shared rate limit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use clickhouse_audit_exporter::config::Config;
use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::emulator::{Emulator, EmulatorHandle, EmulatorOptions};
use serde_json::{Value, json};

use crate::support::api::Api;
use crate::support::{config_doc, file_sink, read_ndjson};

/// Backups re-listed every cycle, so tests need not move a clock.
const INVENTORY: &str = r#"[inventory]
enabled = true
interval = "1h"
backup_interval = "0s"
"#;

struct Rig {
    emu: EmulatorHandle,
    api: Api,
    org: String,
    dir: tempfile::TempDir,
    out: PathBuf,
    /// Output lines already returned by `cycle`.
    seen: usize,
    inventory: String,
    /// Replaces the emulator's admin key in the config.
    key: Option<(String, String)>,
    /// The metrics of the last cycle's pipeline.
    metrics: Option<std::sync::Arc<clickhouse_audit_exporter::metrics::Metrics>>,
}

impl Rig {
    async fn start(opts: EmulatorOptions) -> Rig {
        let emu = Emulator::start(opts).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        Rig {
            api: Api::new(&emu),
            org: emu.emulator.org_ids()[0].clone(),
            out: dir.path().join("out.ndjson"),
            emu,
            dir,
            seen: 0,
            inventory: INVENTORY.into(),
            key: None,
            metrics: None,
        }
    }

    fn config(&self, api_extra: &str) -> Config {
        let mut toml = config_doc(
            &self.emu,
            self.dir.path(),
            &file_sink("out", &self.out, 1000),
        )
        .merge(&self.inventory)
        .set("activities.enabled", false)
        .merge_at("api", api_extra);
        if let Some((id, secret)) = &self.key {
            toml = toml
                .replace("api.key_id", id.as_str())
                .replace("api.key_secret", secret.as_str());
        }
        Config::from_toml(&toml.to_string(), Some(HashMap::new())).expect("test config is valid")
    }

    /// One `once` run (inventory cycle + delivery); returns the lines it added.
    async fn try_cycle(&mut self, api_extra: &str) -> (anyhow::Result<()>, Vec<Value>) {
        let pipeline = Pipeline::build(self.config(api_extra)).await.unwrap();
        self.metrics = Some(pipeline.metrics.clone());
        let r = pipeline.once().await;
        let lines = read_ndjson(&self.out);
        let new = lines[self.seen..].to_vec();
        self.seen = lines.len();
        (r, new)
    }

    async fn cycle(&mut self) -> Vec<Value> {
        let (r, lines) = self.try_cycle("rate_limit_requests = 1000").await;
        r.expect("the cycle succeeds");
        lines
    }

    fn path(&self, rest: &str) -> String {
        format!("/v1/organizations/{}{rest}", self.org)
    }

    async fn send(&self, method: &str, rest: &str, body: Option<Value>) -> Value {
        let r = self
            .api
            .send(method.parse().unwrap(), &self.path(rest), body)
            .await;
        assert_eq!(
            r.status,
            200,
            "{method} {rest}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["result"].clone()
    }

    async fn list(&self, rest: &str) -> Vec<Value> {
        self.send("GET", rest, None)
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

fn unlimited() -> EmulatorOptions {
    EmulatorOptions {
        rate_limit: None,
        history: Duration::ZERO,
        ..EmulatorOptions::default()
    }
}

fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

/// Inventory events about one object.
fn about<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    of_kind(lines, "inventory")
        .into_iter()
        .filter(|l| l["resource_id"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_observes_every_object_and_a_second_run_is_quiet() {
    let mut rig = Rig::start(unlimited()).await;
    let lines = rig.cycle().await;
    let inv = of_kind(&lines, "inventory");
    assert!(inv.iter().all(|l| l["action"] == "observed"), "{inv:#?}");
    let got: HashSet<(String, String)> = inv
        .iter()
        .map(|l| {
            (
                l["resource"].as_str().unwrap().to_owned(),
                l["resource_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got.len(), inv.len(), "one event per object");
    let mut want = HashSet::new();
    for (resource, rest, id) in [
        ("service", "/services", "id"),
        ("key", "/keys", "id"),
        ("member", "/members", "userId"),
        ("invitation", "/invitations", "id"),
    ] {
        for o in rig.list(rest).await {
            want.insert((resource.to_owned(), o[id].as_str().unwrap().to_owned()));
        }
    }
    for s in rig.list("/services").await {
        let sid = s["id"].as_str().unwrap();
        for b in rig.list(&format!("/services/{sid}/backups")).await {
            want.insert(("backup".to_owned(), b["id"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(got, want, "every object the API lists, observed once");
    // The envelope carries the verbatim object.
    let svc = inv.iter().find(|l| l["resource"] == "service").unwrap();
    assert_eq!(svc["before"], Value::Null);
    assert_eq!(svc["changed"], json!([]));
    assert!(svc["after"]["ipAccessList"].is_array());
    assert!(
        svc["event_id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("inventory:{}:service:", rig.org))
    );
    let backup = inv.iter().find(|l| l["resource"] == "backup").unwrap();
    assert_eq!(backup["service_id"], backup["after"]["serviceId"]);
    assert!(
        !of_kind(&lines, "finding").is_empty(),
        "the seeded org has risky state"
    );
    let again = rig.cycle().await;
    assert!(again.is_empty(), "nothing changed: {again:#?}");
    let text = rig.metrics.as_ref().unwrap().render();
    let admin = rig.emu.emulator.key_id();
    for want in [
        format!(
            "clickhouse_audit_api_key_expiry_timestamp_seconds{{key_id=\"{admin}\",key_name=\"emulator-admin\",org=\"{}\"}} inf",
            rig.org
        ),
        "clickhouse_audit_findings_open{rule=\"service_open_to_internet\",severity=\"high\"} 1"
            .into(),
        format!(
            "clickhouse_audit_inventory_objects{{org=\"{}\",resource=\"services\",state=\"running\"}} 1",
            rig.org
        ),
        format!(
            "clickhouse_audit_inventory_cycle_requests{{org=\"{}\"}} 7",
            rig.org
        ),
        "clickhouse_audit_backup_last_success_age_seconds{".into(),
    ] {
        assert!(text.contains(&want), "{want} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_lists_beyond_the_per_cycle_budget_wait_for_the_next_cycle() {
    let mut rig = Rig::start(unlimited()).await;
    rig.inventory = "[inventory]\nenabled = true\nbackups_per_cycle = 3\n".into();
    let backup_calls = |rig: &Rig| {
        let n = rig
            .emu
            .emulator
            .request_log()
            .iter()
            .filter(|r| r.path.ends_with("/backups"))
            .count();
        rig.emu.emulator.clear_request_log();
        n
    };
    rig.cycle().await;
    assert_eq!(backup_calls(&rig), 3, "4 services, 3 per cycle");
    let lines = rig.cycle().await;
    assert_eq!(
        backup_calls(&rig),
        1,
        "the deferred one, then nothing is due"
    );
    assert!(
        of_kind(&lines, "inventory")
            .iter()
            .all(|l| l["resource"] == "backup" && l["action"] == "observed"),
        "a deferred first listing is still a baseline: {lines:#?}"
    );
    rig.cycle().await;
    assert_eq!(backup_calls(&rig), 0, "within backup_interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_key_lifecycles_produce_one_event_per_change() {
    let mut rig = Rig::start(unlimited()).await;
    rig.cycle().await;
    let emu = rig.emu.emulator.clone();
    // Service: create (provisioning → running), stop, delete (terminating → gone).
    let created = rig
        .send(
            "POST",
            "/services",
            Some(
                json!({"name": "inv-test", "provider": "aws", "region": "us-east-1",
                "ipAccessList": [{"source": "198.51.100.0/24", "description": "office"}]}),
            ),
        )
        .await;
    let sid = created["service"]["id"].as_str().unwrap().to_owned();
    emu.set_clock_skew(ChronoDuration::seconds(61));
    let lines = rig.cycle().await;
    let ev = about(&lines, &sid);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0]["action"], "created");
    assert_eq!(ev[0]["after"]["state"], "running");
    rig.send(
        "PATCH",
        &format!("/services/{sid}/state"),
        Some(json!({"command": "stop"})),
    )
    .await;
    emu.set_clock_skew(ChronoDuration::seconds(61 + 16));
    let lines = rig.cycle().await;
    let ev = about(&lines, &sid);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0]["action"], "updated");
    assert_eq!(ev[0]["changed"], json!(["state"]));
    assert_eq!(ev[0]["before"]["state"], "running");
    assert_eq!(ev[0]["after"]["state"], "stopped");
    rig.send("DELETE", &format!("/services/{sid}"), None).await;
    emu.set_clock_skew(ChronoDuration::seconds(61 + 16 + 21));
    let lines = rig.cycle().await;
    let ev = about(&lines, &sid);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0]["action"], "deleted");
    assert_eq!(ev[0]["after"], Value::Null);
    assert_eq!(ev[0]["before"]["id"], sid.as_str());
    // Key: create, disable, delete.
    let key = rig
        .send(
            "POST",
            "/keys",
            Some(json!({"name": "inv-key", "roles": ["developer"]})),
        )
        .await;
    let kid = key["keyId"].as_str().unwrap().to_owned();
    let lines = rig.cycle().await;
    let ev = about(&lines, &kid);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0]["action"], "created");
    assert_eq!(ev[0]["resource"], "key");
    rig.send(
        "PATCH",
        &format!("/keys/{kid}"),
        Some(json!({"state": "disabled"})),
    )
    .await;
    let lines = rig.cycle().await;
    let ev = about(&lines, &kid);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0]["action"], "updated");
    assert_eq!(ev[0]["changed"], json!(["state"]));
    rig.send("DELETE", &format!("/keys/{kid}"), None).await;
    let lines = rig.cycle().await;
    let ev = about(&lines, &kid);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0]["action"], "deleted");
    // Every event id is distinct.
    let all = read_ndjson(&rig.out);
    let ids: HashSet<&str> = all
        .iter()
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_list_reports_nothing_deleted() {
    let mut rig = Rig::start(unlimited()).await;
    rig.cycle().await;
    let member = rig.list("/members").await[1]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = rig.emu.emulator.create_key(&rig.org, &[]).0;
    let lines = rig.cycle().await;
    assert_eq!(about(&lines, &key)[0]["action"], "created");
    rig.send("DELETE", &format!("/members/{member}"), None)
        .await;
    rig.send("DELETE", &format!("/keys/{key}"), None).await;
    // Every list of the next cycle fails (no retries): nothing may be called deleted.
    rig.emu.emulator.fail_next(100, 500);
    let (r, lines) = rig
        .try_cycle("rate_limit_requests = 1000\nmax_retries = 0")
        .await;
    let err = format!("{:#}", r.expect_err("the cycle reports the failed lists"));
    assert!(err.contains("inventory"), "{err}");
    assert!(
        of_kind(&lines, "inventory").is_empty() && of_kind(&lines, "finding").is_empty(),
        "{lines:#?}"
    );
    rig.emu.emulator.fail_next(0, 500);
    let lines = rig.cycle().await;
    let deleted: Vec<&str> = of_kind(&lines, "inventory")
        .iter()
        .filter(|l| l["action"] == "deleted")
        .map(|l| l["resource_id"].as_str().unwrap())
        .collect();
    let mut deleted = deleted;
    deleted.sort();
    let mut want = vec![member.as_str(), key.as_str()];
    want.sort();
    assert_eq!(deleted, want, "deletions show once a list succeeds again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_at_churn_produces_no_events() {
    let mut rig = Rig::start(unlimited()).await;
    rig.cycle().await;
    let emu = rig.emu.emulator.clone();
    let keys: Vec<String> = rig
        .list("/keys")
        .await
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(emu.set_key_used_at(k, Some(Utc::now() - ChronoDuration::minutes(i as i64))));
    }
    let lines = rig.cycle().await;
    assert!(lines.is_empty(), "{lines:#?}");
    for k in &keys {
        emu.set_key_used_at(k, Some(Utc::now() + ChronoDuration::minutes(3)));
    }
    assert!(rig.cycle().await.is_empty());
    // A meaningful field still counts, and `before` shows the latest usedAt.
    emu.set_key_expire_at(&keys[1], Some(Utc::now() + ChronoDuration::days(200)));
    let lines = rig.cycle().await;
    let ev = about(&lines, &keys[1]);
    assert_eq!(ev.len(), 1, "{lines:#?}");
    assert_eq!(ev[0]["changed"], json!(["expireAt"]));
    assert_eq!(ev[0]["before"]["usedAt"], ev[0]["after"]["usedAt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_finding_rule_opens_and_resolves_once() {
    let mut rig = Rig::start(unlimited()).await;
    let emu = rig.emu.emulator.clone();
    let org = rig.org.clone();
    let now = Utc::now();
    let services = rig.list("/services").await;
    let named = |n: &str| {
        services.iter().find(|s| s["name"] == n).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (prod, staging) = (named("prod-analytics"), named("東京 staging"));
    // A new running service without backups: backup_stale opens at the baseline.
    let fresh = rig
        .send(
            "POST",
            "/services",
            Some(
                json!({"name": "fresh", "provider": "aws", "region": "us-east-1",
                "ipAccessList": [{"source": "198.51.100.0/24", "description": "office"}]}),
            ),
        )
        .await["service"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.clear_backups(&org, &fresh);
    emu.set_clock_skew(ChronoDuration::seconds(61));
    // Keys that start out healthy.
    let benign = |id: &str| {
        emu.set_key_expire_at(id, Some(now + ChronoDuration::days(60)));
        emu.set_key_used_at(id, Some(now));
    };
    let mk = || emu.create_key(&org, &[]).0;
    let (k_never, k_expiring, k_unused, k_admin, k_disabled) = (mk(), mk(), mk(), mk(), mk());
    for k in [&k_never, &k_expiring, &k_unused, &k_admin, &k_disabled] {
        benign(k);
    }
    let invitations = rig.list("/invitations").await;
    let new_hire = invitations
        .iter()
        .find(|i| i["email"] == "new.hire@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members = rig.list("/members").await;
    let akira = members.iter().find(|m| m["role"] == "developer").unwrap()["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let prod_error = emu.add_backup(&org, &prod, "done", now).unwrap();

    let mut all = rig.cycle().await; // baseline

    // Open everything.
    emu.set_service_state(&org, &staging, "failed");
    emu.set_backup_status(&org, &prod, &prod_error, "error");
    emu.set_key_expire_at(&k_never, None);
    emu.set_key_expire_at(&k_expiring, Some(now + ChronoDuration::days(3)));
    emu.set_key_used_at(&k_unused, Some(now - ChronoDuration::days(100)));
    rig.send(
        "PATCH",
        &format!("/keys/{k_admin}"),
        Some(json!({"roles": ["admin"]})),
    )
    .await;
    rig.send(
        "PATCH",
        &format!("/keys/{k_disabled}"),
        Some(json!({"state": "disabled"})),
    )
    .await;
    emu.set_invitation_created_at(&org, &new_hire, now - ChronoDuration::days(10));
    let admin_invite = rig
        .send(
            "POST",
            "/invitations",
            Some(json!({"email": "boss@example.com", "role": "admin"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rig.send(
        "PATCH",
        &format!("/members/{akira}"),
        Some(json!({"role": "admin"})),
    )
    .await;
    all.extend(rig.cycle().await);

    // Resolve everything.
    rig.send(
        "PATCH",
        &format!("/services/{prod}"),
        Some(
            json!({"ipAccessList": {"remove": [{"source": "0.0.0.0/0", "description": "Anywhere"}],
            "add": [{"source": "203.0.113.0/24", "description": "office"}]}}),
        ),
    )
    .await;
    emu.set_service_state(&org, &staging, "idle");
    emu.set_backup_status(&org, &prod, &prod_error, "done");
    emu.add_backup(&org, &fresh, "done", emu.now());
    emu.set_key_expire_at(&k_never, Some(now + ChronoDuration::days(60)));
    emu.set_key_expire_at(&k_expiring, Some(now + ChronoDuration::days(60)));
    emu.set_key_used_at(&k_unused, Some(now));
    rig.send(
        "PATCH",
        &format!("/keys/{k_admin}"),
        Some(json!({"roles": ["developer"]})),
    )
    .await;
    rig.send(
        "PATCH",
        &format!("/keys/{k_disabled}"),
        Some(json!({"state": "enabled"})),
    )
    .await;
    emu.set_invitation_created_at(&org, &new_hire, now - ChronoDuration::days(1));
    rig.send("DELETE", &format!("/invitations/{admin_invite}"), None)
        .await;
    rig.send(
        "PATCH",
        &format!("/members/{akira}"),
        Some(json!({"role": "developer"})),
    )
    .await;
    all.extend(rig.cycle().await);
    all.extend(rig.cycle().await); // and nothing flaps afterwards

    let subjects: BTreeMap<&str, &str> = BTreeMap::from([
        ("service_open_to_internet", prod.as_str()),
        ("service_unhealthy", staging.as_str()),
        ("backup_failed", prod.as_str()),
        ("backup_stale", fresh.as_str()),
        ("key_never_expires", k_never.as_str()),
        ("key_expiring", k_expiring.as_str()),
        ("key_unused", k_unused.as_str()),
        ("key_admin", k_admin.as_str()),
        ("key_disabled", k_disabled.as_str()),
        ("invitation_stale", new_hire.as_str()),
        ("invitation_admin", admin_invite.as_str()),
        ("member_admin", akira.as_str()),
    ]);
    let findings = of_kind(&all, "finding");
    for (rule, id) in &subjects {
        let statuses: Vec<&str> = findings
            .iter()
            .filter(|f| f["rule"] == *rule && f["resource_id"] == *id)
            .map(|f| f["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["open", "resolved"], "{rule} on {id}");
    }
    let open = findings
        .iter()
        .find(|f| f["rule"] == "key_expiring" && f["status"] == "open")
        .unwrap();
    assert_eq!(open["severity"], "medium");
    assert_eq!(open["resource"], "key");
    assert_eq!(
        open["event_id"],
        format!("finding:{org}:key_expiring:{k_expiring}:open:1")
    );
    assert!(open["summary"].as_str().unwrap().contains("expires in"));
    assert!(open["evidence"]["expireAt"].is_string());
    let gone = findings
        .iter()
        .find(|f| f["rule"] == "invitation_admin" && f["status"] == "resolved")
        .unwrap();
    assert_eq!(gone["resolved_reason"], "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_resource_is_switched_off_and_the_others_go_on() {
    let mut rig = Rig::start(unlimited()).await;
    let org = rig.org.clone();
    // Everything but view-api-keys.
    rig.key = Some(rig.emu.emulator.create_key(
        &org,
        &[
            "control-plane:organization:view",
            "control-plane:service:view",
            "control-plane:service:view-backups",
        ],
    ));
    let lines = rig.cycle().await;
    let resources: HashSet<&str> = of_kind(&lines, "inventory")
        .iter()
        .map(|l| l["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        HashSet::from(["service", "member", "invitation", "backup"])
    );
    let keys_calls = rig
        .emu
        .emulator
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/keys"))
        .count();
    assert_eq!(keys_calls, 1);
}

/// 3 organizations × 50 services with backups: one inventory cycle (4 lists + 50 backup
/// lists per org) never puts more than 10 requests in any 10-s window and meets no 429.
#[tokio::test(start_paused = true)]
async fn three_orgs_of_fifty_services_stay_within_the_rate_limit() {
    let mut rig = Rig::start(EmulatorOptions {
        orgs: 3,
        history: Duration::ZERO,
        rate_limit: Some((10, Duration::from_secs(10))),
        ..EmulatorOptions::default()
    })
    .await;
    rig.inventory = "[inventory]\nenabled = true\n".into();
    for org in rig.emu.emulator.org_ids() {
        let have = 4;
        rig.emu.emulator.add_services(&org, 50 - have);
    }
    let (r, lines) = rig.try_cycle("").await;
    r.unwrap();
    let log = rig.emu.emulator.request_log();
    assert!(
        log.iter().all(|r| r.status == 200),
        "no 429 (nor any error)"
    );
    let backups = log.iter().filter(|r| r.path.ends_with("/backups")).count();
    assert_eq!(backups, 150, "every service's backups listed once");
    assert_eq!(log.len(), 3 * (4 + 50));
    let mut by_key: HashMap<&str, Vec<std::time::Instant>> = HashMap::new();
    for r in &log {
        by_key
            .entry(r.key_id.as_deref().unwrap_or(""))
            .or_default()
            .push(r.at);
    }
    let window = Duration::from_secs(10);
    for (key, times) in &by_key {
        for (i, start) in times.iter().enumerate() {
            let inside = times[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < window)
                .count();
            assert!(inside <= 10, "key {key}: {inside} requests within 10 s");
        }
    }
    let span = log.last().unwrap().at - log[0].at;
    eprintln!(
        "3 orgs x 50 services: {} requests in {:.0} s (paused clock)",
        log.len(),
        span.as_secs_f64()
    );
    let observed = of_kind(&lines, "inventory").len();
    assert!(observed > 3 * 50 * 5, "{observed} objects observed");
    // The next cycle lists only what is due: no backups within backup_interval (1 h).
    rig.emu.emulator.clear_request_log();
    // Each `once` builds a new client whose limiter starts empty (like a restart): let the
    // emulator's window drain first (paused clock: no real waiting).
    tokio::time::advance(Duration::from_secs(10)).await;
    let (r, lines) = rig.try_cycle("").await;
    r.unwrap();
    assert!(of_kind(&lines, "inventory").is_empty());
    let log = rig.emu.emulator.request_log();
    assert_eq!(
        log.len(),
        3 * 4,
        "{:?}",
        log.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}
