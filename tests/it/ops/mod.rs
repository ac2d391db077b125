//! Operations (issue 7), against the real binary and the built-in emulator: every metric
//! family with sane values, `/status` without secrets, `/readyz` turning 503 on a 401 and
//! recovering, `healthcheck`, SIGHUP reopen + reload (and keeping the old config when the new
//! one is invalid), the systemd notify protocol on a fake socket; plus checklists of the
//! packaging files and a check that dashboards and alerts query only exported metrics.

mod packaging;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use clickhouse_audit_exporter::emulator::Emulator;
use clickhouse_audit_exporter::emulator::EmulatorOptions;

use crate::support::daemon::{Daemon, bin, daemon_config};
use crate::support::wait::{PATIENCE, eventually};
use crate::support::{TomlDoc, activity_ids, counts, file_sink, read_ndjson};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn quick_emulator() -> EmulatorOptions {
    EmulatorOptions {
        history: Duration::from_secs(86400),
        rate_limit: None,
        ..Default::default()
    }
}

fn now_s() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_every_listed_family_with_sane_values_and_status_has_no_secret() {
    let emu = Emulator::start(quick_emulator()).await.unwrap();
    let org = emu.emulator.org_ids()[0].clone();
    // One activity the exporter cannot order: quarantined, not exported.
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    emu.emulator.add_activity(
        &org,
        serde_json::json!({"type": "user_login", "createdAt": "yesterday"}),
        hour_ago,
        hour_ago,
    );
    let total = emu.emulator.activity_count(&org) - 1;
    let secret = emu.emulator.key_secret();
    // A key that expires (in a year): the own-key watch exports its expiry, which an alert reads.
    emu.emulator.set_key_expire_at(
        &emu.emulator.key_id(),
        Some(Utc::now() + chrono::Duration::days(365)),
    );
    // The first request is refused with 429, its retry gets a malformed body: both are
    // retried, and both leave their trace in the metrics.
    emu.emulator.fail_next(1, 429);
    emu.emulator.malformed_next();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ndjson");
    let blocker = dir.path().join("blocked");
    write(&blocker, "a file where the bad sink wants a directory");
    let sinks = format!(
        "{}{}",
        file_sink("good", &good, 100),
        file_sink("bad", &blocker.join("audit.ndjson"), 100)
    );
    let cfg = dir.path().join("config.toml");
    // split_threshold: a day of history (200 activities) in one window is "too many".
    let toml = daemon_config(
        &emu,
        dir.path(),
        &sinks,
        "rate_limit_window = \"1s\"",
        "split_threshold = 50",
    );
    write(&cfg, &toml);
    let d = Daemon::start(&cfg, &[]).await;

    eventually(
        "everything stored, delivered to `good`, stuck for `bad`",
        async || {
            let m = d.scrape().await;
            let done = m.get("clickhouse_audit_outbox_events", &[("kind", "activity")])
                == Some(total as f64)
                && m.get("clickhouse_audit_sink_backlog_events", &[("sink", "good")]) == Some(0.0)
                && m.get("clickhouse_audit_sink_backlog_events", &[("sink", "bad")])
                    == Some(total as f64)
                && m.get("clickhouse_audit_ready", &[]) == Some(1.0)
                && m.get("clickhouse_audit_cursor_lag_seconds", &[("org", &org)])
                    .is_some();
            done.then_some(())
        },
    )
    .await;
    // A poll that fails for good (404 is not retried), then recovers at the next interval.
    emu.emulator.fail_next(1, 404);
    let m = eventually("a failed poll counted, then ready again", async || {
        let m = d.scrape().await;
        let counted = m.get(
            "clickhouse_audit_poll_errors_total",
            &[("kind", "not_found")],
        ) == Some(1.0);
        (counted && m.get("clickhouse_audit_ready", &[]) == Some(1.0)).then_some(m)
    })
    .await;
    let now = now_s();
    let v = |name: &str, labels: &[(&str, &str)]| m.value(name, labels);
    let act = [("endpoint", "activities")];
    let o = [("org", org.as_str())];

    // API
    assert!(
        v(
            "clickhouse_audit_api_requests_total",
            &[("endpoint", "activities"), ("status_class", "2xx")]
        ) >= 1.0
    );
    // The first request meets the 429 and its retry the malformed body: the activity poller's
    // or the own-key watch's (`keys`), whichever asks first.
    assert!(
        m.sum(
            "clickhouse_audit_api_requests_total",
            &[("status_class", "4xx")]
        ) >= 1.0,
        "the 429"
    );
    assert!(v("clickhouse_audit_api_request_duration_seconds_count", &act) >= 3.0);
    assert!(v("clickhouse_audit_api_request_duration_seconds_sum", &act) > 0.0);
    assert_eq!(m.sum("clickhouse_audit_api_rate_limited_total", &[]), 1.0);
    assert_eq!(
        m.sum("clickhouse_audit_api_key_rate_limited_total", &[]),
        1.0
    );
    assert!(
        v(
            "clickhouse_audit_api_rate_limit_wait_seconds_total",
            &[("reason", "reset")]
        ) >= 0.5,
        "waited for the 429's reset"
    );
    assert!(
        v(
            "clickhouse_audit_api_rate_limit_wait_seconds_total",
            &[("reason", "limiter")]
        ) >= 0.0
    );
    assert_eq!(m.sum("clickhouse_audit_api_retries_total", &[]), 2.0);
    assert_eq!(
        m.sum("clickhouse_audit_api_decode_failures_total", &[]),
        1.0
    );
    assert!(v("clickhouse_audit_api_bytes_received_total", &act) > 1000.0);
    assert_eq!(
        m.sum("clickhouse_audit_api_date_format_fallback_total", &[]),
        0.0
    );
    // activities
    let (fetched, new, dups) = (
        v("clickhouse_audit_activities_fetched_total", &o),
        v("clickhouse_audit_activities_new_total", &o),
        v("clickhouse_audit_dedup_dropped_total", &o),
    );
    assert_eq!(
        new, total as f64,
        "each stored activity counted once as new"
    );
    assert_eq!(fetched, new + dups, "fetched = new + duplicates");
    let cursor = v("clickhouse_audit_cursor_timestamp_seconds", &o);
    assert!(
        (now - 900.0 - 60.0..=now - 900.0 + 2.0).contains(&cursor),
        "cursor {cursor} trails now {now} by the 15 min overlap"
    );
    let lag = v("clickhouse_audit_cursor_lag_seconds", &o);
    assert!((898.0..=960.0).contains(&lag), "lag {lag} ≈ overlap");
    let last = v(
        "clickhouse_audit_last_success_timestamp_seconds",
        &[("org", &org), ("stream", "activities")],
    );
    assert!(
        (now - 30.0..=now + 1.0).contains(&last),
        "last success {last} is recent ({now})"
    );
    assert!(v("clickhouse_audit_window_splits_total", &o) >= 1.0);
    assert_eq!(
        v(
            "clickhouse_audit_activities_quarantined_total",
            &[("org", &org), ("reason", "bad_created_at")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "clickhouse_audit_poll_errors_total",
            &[
                ("org", &org),
                ("stream", "activities"),
                ("kind", "not_found")
            ]
        ),
        1.0
    );
    assert_eq!(
        v(
            "clickhouse_audit_api_errors_total",
            &[("endpoint", "activities"), ("kind", "not_found")]
        ),
        1.0
    );
    assert_eq!(v("clickhouse_audit_activities_overlap_seconds", &[]), 900.0);
    assert_eq!(v("clickhouse_audit_activities_interval_seconds", &[]), 1.0);
    // outbox
    assert_eq!(
        v("clickhouse_audit_outbox_events", &[("kind", "inventory")]),
        0.0
    );
    assert_eq!(
        v(
            "clickhouse_audit_sink_oldest_undelivered_age_seconds",
            &[("sink", "good")]
        ),
        0.0
    );
    let age = v(
        "clickhouse_audit_sink_oldest_undelivered_age_seconds",
        &[("sink", "bad")],
    );
    assert!(
        (0.0..120.0).contains(&age) && age > 0.0,
        "bad sink's oldest event waits: {age}"
    );
    // sinks
    let g = [("sink", "good")];
    assert_eq!(
        v("clickhouse_audit_sink_events_delivered_total", &g),
        total as f64
    );
    let batches = v("clickhouse_audit_sink_batches_delivered_total", &g);
    assert!(
        batches >= (total as f64 / 100.0).ceil(),
        "{batches} batches of ≤ 100"
    );
    assert_eq!(
        v("clickhouse_audit_sink_delivery_duration_seconds_count", &g),
        batches
    );
    assert!(
        m.get(
            "clickhouse_audit_sink_delivery_duration_seconds_bucket",
            &[("sink", "good"), ("le", "+Inf")]
        ) == Some(batches)
    );
    assert!(
        v(
            "clickhouse_audit_sink_failures_total",
            &[("sink", "bad"), ("kind", "transient")]
        ) >= 1.0
    );
    assert!(
        m.get(
            "clickhouse_audit_sink_events_delivered_total",
            &[("sink", "bad")]
        )
        .unwrap_or(0.0)
            == 0.0
    );
    let ok_at = v("clickhouse_audit_sink_last_success_timestamp_seconds", &g);
    assert!((now - 60.0..=now + 1.0).contains(&ok_at));
    // state, build, process, operations
    let db = v("clickhouse_audit_state_db_bytes", &[]);
    assert!(db > 10_000.0, "state DB size {db}");
    assert_eq!(v("clickhouse_audit_state_pruned_events_total", &[]), 0.0);
    assert_eq!(
        v(
            "clickhouse_audit_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(v("process_resident_memory_bytes", &[]) > 1e6);
    assert!(
        v("process_cpu_seconds_total", &[]) >= 0.0,
        "whole seconds: often still 0 here"
    );
    assert!(v("process_open_fds", &[]) >= 5.0);
    assert_eq!(v("clickhouse_audit_ready", &[]), 1.0);
    assert_eq!(
        v(
            "clickhouse_audit_config_reloads_total",
            &[("result", "success")]
        ),
        0.0
    );
    assert_eq!(
        v("clickhouse_audit_config_last_reload_successful", &[]),
        1.0
    );
    for s in &m.samples {
        assert!(s.value.is_finite() || s.labels.contains_key("le"), "{s:?}");
        assert!(s.value >= 0.0, "no negative metric: {s:?}");
    }

    // Inventory on (by reload, so the faults above hit the activity poller alone): its
    // families join, and the dashboard and alerts query only what the exporter exports.
    let with_inventory = TomlDoc::parse(&toml)
        .replace("inventory.enabled", true)
        .set("inventory.interval", "2s")
        .to_string();
    assert_ne!(with_inventory, toml);
    write(&cfg, &with_inventory);
    d.signal("HUP");
    let m = eventually(
        "inventory metrics after the reload, all delivered to `good`",
        async || {
            let m = d.scrape().await;
            let names = m.names();
            let there = [
                "clickhouse_audit_findings_open",
                "clickhouse_audit_api_key_expiry_timestamp_seconds",
                "clickhouse_audit_inventory_objects",
                "clickhouse_audit_backup_last_success_age_seconds",
            ]
            .iter()
            .all(|n| names.contains(*n));
            let stored: f64 = ["activity", "inventory", "finding"]
                .iter()
                .filter_map(|k| m.get("clickhouse_audit_outbox_events", &[("kind", k)]))
                .sum();
            let delivered = m.get("clickhouse_audit_sink_events_delivered_total", &g);
            let settled = stored > total as f64
                && delivered == Some(stored)
                && m.get("clickhouse_audit_sink_backlog_events", &g) == Some(0.0);
            (there && settled && m.get("clickhouse_audit_ready", &[]) == Some(1.0)).then_some(m)
        },
    )
    .await;
    assert_eq!(
        m.value(
            "clickhouse_audit_config_reloads_total",
            &[("result", "success")]
        ),
        1.0
    );
    packaging::dashboard_and_alerts_query_only(&m);

    // /status: cursors, per-sink positions and backlog, config summary; never the secret.
    let status = d.status().await;
    assert_eq!(status["ready"], true, "{status:#}");
    assert_eq!(status["state"]["cursors"][0]["org_id"], org.as_str());
    let sinks = status["state"]["sinks"].as_array().unwrap();
    let sink = |n: &str| sinks.iter().find(|s| s["sink"] == n).unwrap().clone();
    // Inventory keeps a baseline of objects and findings in the outbox next to the activities.
    assert_eq!(sink("good")["backlog"], 0);
    assert!(sink("good")["position"].as_i64().unwrap() > total as i64);
    assert!(sink("bad")["backlog"].as_i64().unwrap() > total as i64);
    assert_eq!(sink("bad")["position"], 0);
    assert!(
        status["sinks"]["bad"]["last_error"]
            .as_str()
            .unwrap()
            .contains("audit.ndjson")
    );
    assert_eq!(status["config"]["sinks"][1]["name"], "bad");
    assert_eq!(status["config"]["api"]["key_id"], emu.emulator.key_id());
    assert_eq!(d.get("/healthz").await, (200, "ok\n".into()));
    for path in ["/status", "/metrics", "/readyz", "/healthz"] {
        assert!(
            !d.get(path).await.1.contains(&secret),
            "{path} shows the API secret"
        );
    }
    let (code, logs) = d.stop().await;
    assert_eq!(code, 0, "{logs}");
    assert!(!logs.contains(&secret), "the logs show the API secret");
    let lines = read_ndjson(&good);
    let activities = lines.iter().filter(|l| l["kind"] == "activity").count();
    assert_eq!(activities, total, "every stored activity once");
    assert!(lines.len() > total, "inventory and findings too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_within_three_intervals_of_a_401_and_recovers() {
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(3600),
        ..quick_emulator()
    })
    .await
    .unwrap();
    let org = emu.emulator.org_ids()[0].clone();
    let (key, secret) = (emu.emulator.key_id(), emu.emulator.key_secret());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let out = dir.path().join("out.ndjson");
    write(
        &cfg,
        &daemon_config(&emu, dir.path(), &file_sink("archive", &out, 100), "", ""),
    );
    let d = Daemon::start(&cfg, &[]).await;
    eventually("ready", async || {
        (d.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let healthcheck = async || {
        let out = bin()
            .args(["healthcheck", "--url", &d.url("/readyz")])
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(healthcheck().await.0, Some(0));

    let interval = Duration::from_secs(1);
    emu.emulator.set_credentials_valid(&key, false);
    let revoked = Instant::now();
    let body = eventually("503", async || {
        let (code, body) = d.get("/readyz").await;
        (code == 503).then_some(body)
    })
    .await;
    let took = revoked.elapsed();
    assert!(
        took <= 3 * interval,
        "503 after {took:?}, more than 3 intervals"
    );
    let failing: serde_json::Value = serde_json::from_str(&body).unwrap();
    let why = failing[format!("poller {org}/activities")]
        .as_str()
        .unwrap_or_else(|| panic!("the poller is named: {body}"));
    assert!(
        why.starts_with("401 Unauthorized") && why.contains("since"),
        "{why}"
    );
    assert!(!body.contains(&secret));
    let (code, stderr) = healthcheck().await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("not ready (503") && stderr.contains("401 Unauthorized"),
        "{stderr}"
    );
    let m = d.scrape().await;
    assert_eq!(m.value("clickhouse_audit_ready", &[]), 0.0);
    assert!(
        m.value(
            "clickhouse_audit_poll_errors_total",
            &[
                ("org", &org),
                ("stream", "activities"),
                ("kind", "unauthorized")
            ]
        ) >= 1.0
    );
    let status = d.status().await;
    assert_eq!(status["ready"], false);
    assert!(
        status["pollers"][format!("{org}/activities")]["last_error"]
            .as_str()
            .unwrap()
            .contains("401")
    );
    assert!(!status.to_string().contains(&secret));

    emu.emulator.set_credentials_valid(&key, true);
    let restored = Instant::now();
    eventually("ready again", async || {
        (d.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let took = restored.elapsed();
    assert!(took <= 3 * interval, "200 again after {took:?}");
    assert_eq!(healthcheck().await.0, Some(0));
    assert_eq!(d.scrape().await.value("clickhouse_audit_ready", &[]), 1.0);
    let (code, logs) = d.stop().await;
    assert_eq!(code, 0, "{logs}");
    assert!(!logs.contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_files_and_reloads_a_valid_config_keeping_the_old_one_otherwise() {
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(3600),
        ..quick_emulator()
    })
    .await
    .unwrap();
    let org = emu.emulator.org_ids()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let rotated = dir.path().join("a.ndjson.1");
    write(
        &cfg,
        &daemon_config(&emu, dir.path(), &file_sink("a", &a, 100), "", ""),
    );
    let mut d = Daemon::start(&cfg, &[]).await;
    let total = emu.emulator.activity_count(&org);
    eventually("history in a", async || {
        (read_ndjson(&a).len() == total).then_some(())
    })
    .await;
    let add = |n: usize| {
        let now = Utc::now();
        emu.emulator.add_activity(
            &org,
            serde_json::json!({"type": "user_login", "n": n}),
            now,
            now,
        )
    };

    // logrotate moves the file away, a second sink is configured, then SIGHUP.
    std::fs::rename(&a, &rotated).unwrap();
    write(
        &cfg,
        &daemon_config(
            &emu,
            dir.path(),
            &format!("{}{}", file_sink("a", &a, 100), file_sink("b", &b, 100)),
            "",
            "",
        ),
    );
    d.signal("HUP");
    d.wait_log("configuration reloaded").await;
    let x = add(1);
    eventually("the new sink caught up, the new a has x", async || {
        let in_a = activity_ids(&read_ndjson(&a)).contains(&x);
        (in_a && read_ndjson(&b).len() == total + 1).then_some(())
    })
    .await;
    let mut a_all = activity_ids(&read_ndjson(&rotated));
    assert_eq!(a_all.len(), total, "the rotated file kept what it had");
    a_all.extend(activity_ids(&read_ndjson(&a)));
    assert_eq!(
        a_all.len(),
        total + 1,
        "after the reopen, nothing lost or repeated"
    );
    assert!(counts(&a_all).values().all(|&n| n == 1));
    let m = d.scrape().await;
    assert_eq!(
        m.value(
            "clickhouse_audit_config_reloads_total",
            &[("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        m.value("clickhouse_audit_sink_backlog_events", &[("sink", "b")]),
        0.0
    );
    let status = d.status().await;
    assert_eq!(status["config"]["sinks"].as_array().unwrap().len(), 2);
    assert_eq!(status["last_reload"]["ok"], true);

    // An invalid file: the running configuration stays, with an ERROR naming the key.
    write(&cfg, "[activities]\ninterval = \"often\"\n");
    d.signal("HUP");
    let err = d.wait_log("configuration reload failed").await;
    assert_eq!(err["level"], "ERROR");
    assert!(err["error"].as_str().unwrap().contains("interval"), "{err}");
    let y = add(2);
    eventually("both sinks still deliver", async || {
        let (ia, ib) = (
            activity_ids(&read_ndjson(&a)),
            activity_ids(&read_ndjson(&b)),
        );
        (ia.contains(&y) && ib.contains(&y)).then_some(())
    })
    .await;
    assert!(d.alive());
    let m = d.scrape().await;
    assert_eq!(
        m.value(
            "clickhouse_audit_config_reloads_total",
            &[("result", "failure")]
        ),
        1.0
    );
    assert_eq!(
        m.value("clickhouse_audit_config_last_reload_successful", &[]),
        0.0
    );
    let status = d.status().await;
    assert_eq!(status["last_reload"]["ok"], false);
    assert_eq!(
        status["config"]["sinks"].as_array().unwrap().len(),
        2,
        "still the running config"
    );
    eventually("still ready", async || {
        (d.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (code, logs) = d.stop().await;
    assert_eq!(code, 0, "{logs}");
    assert_eq!(read_ndjson(&b).len(), total + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notify_ready_status_watchdog_reloading_and_stopping() {
    use tokio::net::UnixDatagram;
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(3600),
        ..quick_emulator()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    write(
        &cfg,
        &daemon_config(
            &emu,
            dir.path(),
            &file_sink("a", &dir.path().join("a.ndjson"), 100),
            "",
            "",
        ),
    );
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf).await {
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut next_until = async |pred: &dyn Fn(&str) -> bool, what: &str| -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} notification; got {seen:?}"))
                .expect("the socket reader runs");
            seen.push(msg.clone());
            if pred(&msg) {
                return msg;
            }
        }
    };
    let sock = socket_path.to_str().unwrap();
    // WATCHDOG_USEC = 0.4 s: a ping at least every 0.2 s.
    let d = Daemon::start(
        &cfg,
        &[("NOTIFY_SOCKET", sock), ("WATCHDOG_USEC", "400000")],
    )
    .await;
    let starting = next_until(&|m| m.starts_with("STATUS="), "STATUS").await;
    assert!(starting.contains("starting"), "{starting}");
    let ready = next_until(&|m| m.contains("READY=1"), "READY=1").await;
    assert!(ready.lines().any(|l| l.starts_with("STATUS=")), "{ready}");
    let status = next_until(&|m| m.starts_with("STATUS=ready"), "STATUS=ready").await;
    assert_eq!(
        status,
        "STATUS=ready: polling 1 stream(s), delivering to 1 sink(s)"
    );
    let t = Instant::now();
    for _ in 0..3 {
        next_until(&|m| m == "WATCHDOG=1", "WATCHDOG=1").await;
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "pings come every 0.2 s"
    );
    d.signal("HUP");
    next_until(&|m| m.starts_with("RELOADING=1"), "RELOADING=1").await;
    next_until(&|m| m.starts_with("READY=1"), "READY=1 after the reload").await;
    let logs = d.logs();
    let stop = async {
        let (code, logs) = d.stop().await;
        assert_eq!(code, 0, "{logs}");
    };
    let stopping = next_until(&|m| m.starts_with("STOPPING=1"), "STOPPING=1");
    let ((), _) = tokio::join!(stop, stopping);
    assert!(!logs.contains("NOTIFY_SOCKET is unusable"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchdog_meant_for_another_process_is_not_fed() {
    use tokio::net::UnixDatagram;
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(600),
        ..quick_emulator()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    write(
        &cfg,
        &daemon_config(
            &emu,
            dir.path(),
            &file_sink("a", &dir.path().join("a.ndjson"), 100),
            "",
            "",
        ),
    );
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let sock = socket_path.to_str().unwrap();
    let d = Daemon::start(
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock),
            ("WATCHDOG_USEC", "100000"),
            ("WATCHDOG_PID", "1"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(n)) = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        socket.recv(&mut buf),
    )
    .await
    {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got.iter().any(|m| m.starts_with("READY=1")), "{got:?}");
    assert!(!got.iter().any(|m| m == "WATCHDOG=1"), "{got:?}");
    assert_eq!(d.stop().await.0, 0);
}
