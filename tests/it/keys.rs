//! Several API keys in one process (issue 16), against the real binary and the emulator: every
//! organization exported once with one organization reachable through two keys, each key's
//! requests within its own budget while another key is answered 429, a disabled key named as
//! such, a key expiring in a day making `/readyz` degraded, `validate`'s least-privilege
//! warning for an Admin key, and a reload that adds a key (its organization starts exporting)
//! and removes it again (its state stays).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use clickhouse_audit_exporter::emulator::{Emulator, EmulatorHandle, EmulatorOptions};

use crate::support::daemon::{Daemon, bin, daemon_config};
use crate::support::wait::eventually;
use crate::support::{TomlDoc, counts, file_sink, read_ndjson};

/// What a read-only exporter key needs (activities, the own-key watch, inventory reads).
const READ_ONLY: &[&str] = &[
    "control-plane:organization:view-activities",
    "control-plane:organization:view-api-keys",
    "control-plane:organization:view",
    "control-plane:service:view",
    "control-plane:service:view-backups",
];

/// One `[[api.keys]]` table.
fn key_table(name: &str, (id, secret): &(String, String), extra: &str) -> String {
    format!(
        "[[api.keys]]\nname = \"{name}\"\nkey_id = \"{id}\"\nkey_secret = \"{secret}\"\n{extra}"
    )
}

/// The daemon config of `daemon_config` with the single key replaced by `keys`.
fn keys_config(emu: &EmulatorHandle, dir: &std::path::Path, sinks: &str, keys: &str) -> String {
    let base = daemon_config(emu, dir, sinks, "", "");
    let doc = TomlDoc::parse(&base)
        .remove("api.key_id")
        .remove("api.key_secret")
        .remove("api.organizations");
    format!("{doc}\n{keys}")
}

/// Activity ids exported per organization (from `event_id` = `activity:{org}:{id}`).
fn exported_by_org(path: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut by_org: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in read_ndjson(path) {
        if line["kind"] != "activity" {
            continue;
        }
        let event_id = line["event_id"].as_str().unwrap_or_default();
        let mut parts = event_id.splitn(3, ':');
        if let (Some("activity"), Some(org), Some(id)) = (parts.next(), parts.next(), parts.next())
        {
            by_org.entry(org.into()).or_default().push(id.into());
        }
    }
    by_org
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_keys_export_every_org_once_each_within_its_own_budget() {
    // 3 requests per 2 s per key at the server.
    let window = Duration::from_secs(2);
    let emu = Emulator::start(EmulatorOptions {
        orgs: 3,
        history: Duration::from_secs(3 * 3600),
        rate_limit: Some((3, window)),
        ..Default::default()
    })
    .await
    .unwrap();
    let orgs = emu.emulator.org_ids();
    let e = &emu.emulator;
    let greedy = e.create_key(&orgs[0], READ_ONLY);
    let b_first = e.create_key(&orgs[1], READ_ONLY);
    let b_second = e.create_key(&orgs[1], READ_ONLY);
    let c = e.create_key(&orgs[2], READ_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    // `greedy` believes it may send 30 per 2 s: the server answers it 429. The others keep
    // to the server's budget ([api]'s, which they inherit).
    let keys = [
        key_table(
            "greedy",
            &greedy,
            "rate_limit_requests = 30\nrate_limit_window = \"2s\"\n",
        ),
        key_table("b-first", &b_first, ""),
        key_table("b-second", &b_second, ""),
        key_table("c", &c, ""),
    ]
    .concat();
    let toml = TomlDoc::parse(&keys_config(
        &emu,
        dir.path(),
        &file_sink("out", &out, 500),
        &keys,
    ))
    .set("api.rate_limit_requests", 3)
    .set("api.rate_limit_window", "2s")
    .set("api.max_retries", 20)
    .replace("inventory.enabled", true)
    .set("inventory.interval", "2s")
    .to_string();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let d = Daemon::start(&cfg, &[]).await;

    let expected: BTreeMap<String, Vec<String>> = orgs
        .iter()
        .map(|o| (o.clone(), sorted(e.all_activity_ids(o))))
        .collect();
    eventually("every organization's history exported", async || {
        let got = exported_by_org(&out);
        (expected
            .iter()
            .all(|(o, ids)| got.get(o).map(|g| g.len()) == Some(ids.len())))
        .then_some(())
    })
    .await;
    let got = exported_by_org(&out);
    for (org, ids) in &expected {
        assert!(
            counts(&got[org]).values().all(|&n| n == 1),
            "{org}: once each"
        );
        assert_eq!(&sorted(got[org].clone()), ids, "{org}: every activity");
    }
    let took = d.wait_log("reachable through several API keys").await;
    assert_eq!(
        (took["key"].as_str(), took["polled_through"].as_str()),
        (Some("b-second"), Some("b-first"))
    );
    // The greedy key met 429s; the others stayed inside the server's budget, each on its own.
    eventually("greedy answered 429", async || {
        let log = e.request_log();
        log.iter()
            .any(|r| r.key_id.as_deref() == Some(greedy.0.as_str()) && r.status == 429)
            .then_some(())
    })
    .await;
    let log = e.request_log();
    for (name, key) in [("b-first", &b_first), ("b-second", &b_second), ("c", &c)] {
        let mine: Vec<_> = log
            .iter()
            .filter(|r| r.key_id.as_deref() == Some(key.0.as_str()))
            .collect();
        assert!(!mine.is_empty(), "{name} made requests");
        assert!(mine.iter().all(|r| r.status != 429), "{name}: no 429");
        for (i, first) in mine.iter().enumerate() {
            let in_window = mine[i..]
                .iter()
                .take_while(|r| r.at.duration_since(first.at) < window)
                .count();
            assert!(in_window <= 3, "{name}: {in_window} requests in one window");
        }
    }
    assert!(
        !log.iter()
            .any(|r| r.key_id.as_deref() == Some(b_second.0.as_str())
                && r.path.ends_with("/activities")),
        "organization 1 is polled through b-first alone"
    );
    let m = d.scrape().await;
    assert!(
        m.value(
            "clickhouse_audit_api_key_rate_limited_total",
            &[("key", "greedy")]
        ) >= 1.0
    );
    assert_eq!(
        m.get(
            "clickhouse_audit_api_key_rate_limited_total",
            &[("key", "c")]
        ),
        None
    );
    assert!(
        m.value(
            "clickhouse_audit_api_key_requests_total",
            &[("key", "c"), ("status_class", "2xx")]
        ) >= 1.0
    );
    assert_eq!(
        m.value(
            "clickhouse_audit_api_key_organizations",
            &[("key", "b-second")]
        ),
        0.0
    );
    let status = d.status().await;
    assert_eq!(
        status["keys"]["b-first"]["organizations"],
        serde_json::json!([orgs[1]])
    );
    assert_eq!(
        status["keys"]["b-second"]["also_sees"],
        serde_json::json!([orgs[1]])
    );
    assert_eq!(status["keys"]["greedy"]["rate_limit"], "30 per 2s");

    // b-second disabled in the console: its peer b-first reads its record and says so.
    e.set_key_enabled(&b_second.0, false);
    eventually("b-second reported disabled", async || {
        let s = d.status().await;
        (s["keys"]["b-second"]["state"] == "disabled").then_some(())
    })
    .await;
    let (code, body) = d.get("/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("API key b-second is disabled"), "{body}");
    let m = d.scrape().await;
    assert_eq!(
        m.value(
            "clickhouse_audit_api_own_key_state",
            &[("key", "b-second"), ("state", "disabled")]
        ),
        1.0
    );
    let text = d.get("/metrics").await.1 + &d.get("/status").await.1;
    for (_, secret) in [&greedy, &b_first, &b_second, &c] {
        assert!(
            !text.contains(secret.as_str()),
            "no secret in /metrics or /status"
        );
    }
    let (code, logs) = d.stop().await;
    assert_eq!(code, 0, "{logs}");
    for (_, secret) in [&greedy, &b_first, &b_second, &c] {
        assert!(!logs.contains(secret.as_str()), "no secret in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_expiring_in_a_day_makes_readyz_degraded_naming_it() {
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(3600),
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let expires = Utc::now() + chrono::Duration::days(1);
    assert!(
        emu.emulator
            .set_key_expire_at(&emu.emulator.key_id(), Some(expires))
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        daemon_config(&emu, dir.path(), &file_sink("out", &out, 500), "", ""),
    )
    .unwrap();
    let d = Daemon::start(&cfg, &[]).await;
    let id = emu.emulator.key_id();
    let name = format!("key-{}", &id[id.len() - 4..]);
    let body = eventually("/readyz degraded by the key", async || {
        let (code, body) = d.get("/readyz").await;
        (code == 503 && body.contains(&format!("degraded: API key {name} expires"))).then_some(body)
    })
    .await;
    assert!(
        body.contains(&expires.format("%Y-%m-%dT%H:%M").to_string()),
        "{body}"
    );
    let warn = d.wait_log("our API key expires soon").await;
    assert_eq!(
        (warn["level"].as_str(), warn["key"].as_str()),
        (Some("WARN"), Some(name.as_str()))
    );
    let m = d.scrape().await;
    assert_eq!(
        m.value(
            "clickhouse_audit_api_own_key_expiry_timestamp_seconds",
            &[("key", &name)]
        ),
        expires.timestamp() as f64
    );
    let (code, logs) = d.stop().await;
    assert_eq!(code, 0, "{logs}");
}

#[tokio::test]
async fn validate_warns_that_an_admin_key_is_broader_than_needed() {
    let emu = Emulator::start(EmulatorOptions {
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let org = emu.emulator.org_ids()[0].clone();
    let auditor = emu.emulator.create_key(&org, READ_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let sinks = "[[sinks]]\nname = \"o\"\ntype = \"stdout\"\n";
    let run = async |toml: String| {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        let mut c = bin();
        c.arg("-c").arg(&p).arg("validate").stdin(Stdio::null());
        let out = c.output().await.unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // The emulator's own key is an Admin key.
    let (code, out) = run(daemon_config(&emu, dir.path(), sinks, "", "")).await;
    assert_eq!(code, Some(0), "{out}");
    let warning = out
        .lines()
        .find(|l| l.starts_with("! least privilege"))
        .unwrap_or_else(|| panic!("no least-privilege warning: {out}"));
    assert!(
        warning.contains("Admin")
            && warning.ends_with(
                "exactly: control-plane:organization:view-activities, control-plane:organization:view-api-keys"
            ),
        "{warning}"
    );
    // A key of its own with a read-only role: no warning, both keys checked by name.
    let keys = key_table("audit", &auditor, "");
    let (code, out) = run(keys_config(&emu, dir.path(), sinks, &keys)).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("! "), "{out}");
    assert!(
        out.contains("✓ key audit: own key record: enabled, never expires"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_key_whose_org_starts_exporting_and_removes_it_keeping_its_state() {
    let emu = Emulator::start(EmulatorOptions {
        orgs: 2,
        history: Duration::from_secs(3600),
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let orgs = emu.emulator.org_ids();
    let first = emu.emulator.create_key(&orgs[0], READ_ONLY);
    let second = emu.emulator.create_key(&orgs[1], READ_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let sinks = file_sink("out", &out, 500);
    let cfg = dir.path().join("config.toml");
    let one = key_table("first", &first, "");
    std::fs::write(&cfg, keys_config(&emu, dir.path(), &sinks, &one)).unwrap();
    let d = Daemon::start(&cfg, &[]).await;
    let n0 = emu.emulator.activity_count(&orgs[0]);
    eventually("org 0 exported", async || {
        (exported_by_org(&out).get(&orgs[0]).map(Vec::len) == Some(n0)).then_some(())
    })
    .await;
    assert!(!exported_by_org(&out).contains_key(&orgs[1]));

    let two = format!("{one}{}", key_table("second", &second, ""));
    std::fs::write(&cfg, keys_config(&emu, dir.path(), &sinks, &two)).unwrap();
    d.signal("HUP");
    let n1 = emu.emulator.activity_count(&orgs[1]);
    eventually("org 1 exported after the reload", async || {
        (exported_by_org(&out).get(&orgs[1]).map(Vec::len) == Some(n1)).then_some(())
    })
    .await;
    let status = d.status().await;
    assert_eq!(
        status["keys"]["second"]["organizations"],
        serde_json::json!([orgs[1]])
    );

    // Removed again: its pollers stop, its cursor stays in the state.
    std::fs::write(&cfg, keys_config(&emu, dir.path(), &sinks, &one)).unwrap();
    d.signal("HUP");
    eventually("key second gone from /status", async || {
        let s = d.status().await;
        (s["keys"].get("second").is_none() && s["last_reload"]["ok"] == true).then_some(s)
    })
    .await;
    let (code, logs) = d.stop().await;
    assert_eq!(code, 0, "{logs}");
    let show = bin()
        .arg("-c")
        .arg(&cfg)
        .args(["state", "show", "--json"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains(&orgs[1]),
        "the removed key's organization keeps its cursor: {text}"
    );
}
