//! The real binary: exit codes, `validate` against the emulator, `demo`, and the crash test
//! (SIGKILL at random points while the emulator adds activity; restart on the same state).

use std::process::Stdio;
use std::time::Duration;

use clickhouse_audit_exporter::emulator::{Emulator, EmulatorOptions};
use tokio::process::Command;

use crate::support::http::{Reply, TestServer};
use crate::support::{activity_ids, config_doc, config_toml, counts, file_sink, read_ndjson};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clickhouse-audit-exporter"));
    c.env_remove("CH_AUDIT_CONFIG")
        .env_remove("CLICKHOUSE_CLOUD_API_KEY")
        .env_remove("CLICKHOUSE_CLOUD_API_SECRET")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    c
}

async fn output(mut c: Command) -> (i32, String, String) {
    let out = c.stdin(Stdio::null()).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn version_and_help_with_examples() {
    let mut c = bin();
    c.arg("--version");
    let (code, out, _) = output(c).await;
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
    let mut c = bin();
    c.arg("--help");
    let (code, out, _) = output(c).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Examples:") && out.contains("demo") && out.contains("Exit codes"),
        "{out}"
    );
}

#[tokio::test]
async fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[activities]\ninterval = \"often\"\n[[sinks]]\nname = \"o\"\ntype = \"stdout\"\n",
    )
    .unwrap();
    let mut c = bin();
    c.arg("-c").arg(&path).arg("validate").arg("--offline");
    let (code, out, err) = output(c).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("interval") && err.contains("often"), "{err}");
    assert!(out.is_empty(), "errors go to stderr");
    let mut c = bin();
    c.arg("-c").arg(dir.path().join("missing.toml")).arg("run");
    let (code, _, err) = output(c).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
    let mut c = bin();
    c.arg("no-such-command");
    assert_eq!(output(c).await.0, 2, "usage errors exit 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_against_the_emulator_passes_and_names_each_problem() {
    let emu = Emulator::start(EmulatorOptions {
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |toml: String| {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        p
    };
    let sinks = "[[sinks]]\nname = \"o\"\ntype = \"stdout\"\n";
    let good = write(
        config_doc(&emu, dir.path(), sinks)
            .replace("inventory.enabled", true)
            .to_string(),
    );
    let mut c = bin();
    c.arg("-c").arg(&good).arg("validate");
    let (code, out, err) = output(c).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("✓ credentials accepted") && out.contains("all checks passed"),
        "{out}"
    );

    let wrong = write(
        config_doc(&emu, dir.path(), sinks)
            .replace("api.key_secret", "wrong-secret")
            .to_string(),
    );
    let mut c = bin();
    c.arg("-c").arg(&wrong).arg("validate");
    let (code, out, _) = output(c).await;
    assert_eq!(code, 1);
    assert!(
        out.contains("✗ credentials accepted") && out.contains("401"),
        "{out}"
    );
    assert!(!out.contains("wrong-secret"), "the secret is never printed");

    let org = emu.emulator.org_ids()[0].clone();
    let (kid, ksecret) = emu
        .emulator
        .create_key(&org, &["control-plane:organization:view"]);
    let limited = write(
        config_doc(&emu, dir.path(), sinks)
            .replace("api.key_id", kid.as_str())
            .replace("api.key_secret", ksecret.as_str())
            .to_string(),
    );
    let mut c = bin();
    c.arg("-c").arg(&limited).arg("validate");
    let (code, out, _) = output(c).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("✗") && out.contains("control-plane:organization:view-activities"),
        "{out}"
    );
}

/// `validate` against a server that refuses date-times in `from_date` unless they match
/// `accepts`: the line names the format accepted and each refused on the way.
async fn validate_date_format(accepts: fn(&str) -> bool) -> String {
    let server = TestServer::start(move |req, _| {
        if req.path == "/v1/whoami" {
            return Reply::ok(r#"{"actorType":"apiKey","keyId":"k1","organizationId":"o-1"}"#);
        }
        let from_date = req.param("from_date").unwrap_or_default();
        if accepts(&from_date) {
            Reply::ok("[]")
        } else {
            Reply::json(
                400,
                format!(
                    r#"{{"status":400,"error":"BAD_REQUEST: Invalid from_date","requestId":"r-{from_date}"}}"#
                ),
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let toml = format!(
        "[api]\nbase_url = {url:?}\nkey_id = \"k1\"\nkey_secret = \"s1\"\n\n\
         [inventory]\nenabled = false\n\n[state]\npath = {state:?}\n\n\
         [[sinks]]\nname = \"o\"\ntype = \"stdout\"\n",
        url = server.url(),
        state = dir.path().join("state.db").display().to_string(),
    );
    std::fs::write(&path, toml).unwrap();
    let mut c = bin();
    c.arg("-c").arg(&path).arg("validate");
    let (code, out, err) = output(c).await;
    assert_eq!(code, 0, "{out}{err}");
    out.lines()
        .find(|l| l.contains("activities date format"))
        .unwrap_or_else(|| panic!("no date format line in\n{out}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_names_the_date_format_the_api_accepts() {
    let line = validate_date_format(|d| d.ends_with(".000Z")).await;
    assert!(
        line.starts_with("✓ org o-1: activities date format: rfc3339 (")
            && line.ends_with(".000Z accepted)"),
        "{line}"
    );

    let line = validate_date_format(|d| d.len() == 10).await;
    assert!(
        line.starts_with("✓ org o-1: activities date format: date (")
            && line.contains("accepted after rfc3339 refused: BAD_REQUEST: Invalid from_date; naive refused: BAD_REQUEST: Invalid from_date)"),
        "{line}"
    );
}

#[tokio::test]
async fn demo_prints_json_envelopes_to_stdout() {
    let mut c = bin();
    c.args(["demo", "--duration", "6s", "--rate", "120"]);
    let (code, out, err) = output(c).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is pure NDJSON"))
        .collect();
    assert!(
        lines.len() > 5,
        "history arrives within seconds: {} lines; stderr: {err}",
        lines.len()
    );
    for v in &lines {
        assert_eq!(v["kind"], "activity");
        assert!(v["event_id"].as_str().unwrap().starts_with("activity:"));
        assert!(
            v["occurred_at"].is_string()
                && v["observed_at"].is_string()
                && v["activity"]["id"].is_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing_and_duplicates_stay_within_a_batch() {
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(2 * 86400),
        history_events_per_day: 2000,
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let org = emu.emulator.org_ids()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let batch = 40;
    let toml = config_toml(
        &emu,
        dir.path(),
        &format!("{}{}", file_sink("a", &a, batch), file_sink("b", &b, batch)),
    );
    let cfg_path = dir.path().join("c.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let kills = 6;
    for round in 0..kills {
        for i in 0..20 {
            let now = chrono::Utc::now();
            emu.emulator.add_activity(
                &org,
                serde_json::json!({"type": "user_login", "n": round * 100 + i}),
                now,
                now,
            );
        }
        let mut child = bin()
            .arg("-c")
            .arg(&cfg_path)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The API keeps recording activity while the exporter runs; then SIGKILL.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(rng.u64(150..1500));
        let mut n = 0;
        while tokio::time::Instant::now() < deadline {
            let now = chrono::Utc::now();
            let body = serde_json::json!({"type": "service_stop", "round": round, "live": n});
            emu.emulator.add_activity(&org, body, now, now);
            n += 1;
            // The pace of new activity until the random kill time (the deadline above).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
    let mut c = bin();
    c.arg("-c").arg(&cfg_path).arg("once");
    let (code, _, err) = output(c).await;
    assert_eq!(code, 0, "{err}");
    let mut expected = emu.emulator.all_activity_ids(&org);
    expected.sort();
    for path in [&a, &b] {
        let ids = activity_ids(&read_ndjson(path));
        let c = counts(&ids);
        let mut unique: Vec<String> = c.keys().map(|s| s.to_string()).collect();
        unique.sort();
        assert_eq!(
            unique,
            expected,
            "{}: every activity at least once",
            path.display()
        );
        let dups = ids.len() - unique.len();
        assert!(
            dups <= batch * kills,
            "{}: {dups} duplicates > one batch ({batch}) per kill ({kills})",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_secret_never_reaches_stderr_even_at_trace_level() {
    let emu = Emulator::start(EmulatorOptions {
        rate_limit: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.ndjson");
    let toml = config_doc(&emu, dir.path(), &file_sink("a", &out, 100))
        .set("log.level", "trace")
        .to_string();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).unwrap();
    // A failing request too, so error paths log.
    emu.emulator.fail_next(2, 500);
    let mut c = bin();
    c.arg("-c").arg(&path).arg("once").env("RUST_LOG", "trace");
    let (code, _, err) = output(c).await;
    assert_eq!(code, 0, "{}", &err[err.len().saturating_sub(2000)..]);
    assert!(
        err.contains("TRACE") || err.contains("DEBUG"),
        "trace logging was on"
    );
    let secret = emu.emulator.key_secret();
    assert!(!err.contains(&secret), "the secret leaked into the logs");
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{secret}", emu.emulator.key_id()));
    assert!(
        !err.contains(&basic),
        "the Authorization header leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_show_verify_and_rewind_with_redeliver() {
    let emu = Emulator::start(EmulatorOptions {
        rate_limit: None,
        history: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .unwrap();
    let org = emu.emulator.org_ids()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.ndjson");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        config_toml(&emu, dir.path(), &file_sink("a", &out, 100)),
    )
    .unwrap();
    let run = |args: &'static [&'static str]| {
        let mut c = bin();
        c.arg("-c").arg(&path).args(args);
        output(c)
    };
    assert_eq!(run(&["once"]).await.0, 0);
    let first = read_ndjson(&out).len();
    assert!(first > 0);

    let (code, out_text, _) = run(&["state", "show"]).await;
    assert_eq!(code, 0);
    assert!(
        out_text.contains(&format!("org {org} activities"))
            && out_text.contains("sink       a: position")
            && out_text.contains("backlog 0"),
        "{out_text}"
    );
    let (code, json, _) = run(&["state", "show", "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["sinks"][0]["backlog"], 0);

    let (code, text, _) = run(&["state", "verify"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("✓ SQLite integrity_check: ok") && text.contains("consistent"),
        "{text}"
    );

    // Rewind (to before all history) without --redeliver: nothing is sent again.
    let to = (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339();
    let mut c = bin();
    c.arg("-c")
        .arg(&path)
        .args(["state", "rewind", "--org", &org, "--to", &to]);
    assert_eq!(output(c).await.0, 0);
    assert_eq!(run(&["once"]).await.0, 0);
    assert_eq!(
        read_ndjson(&out).len(),
        first,
        "already-stored activities are not re-sent"
    );
    // With --redeliver: everything stored is sent again.
    let mut c = bin();
    c.arg("-c")
        .arg(&path)
        .args(["state", "rewind", "--org", &org, "--to", &to, "--redeliver"]);
    let (code, text, _) = output(c).await;
    assert_eq!(code, 0, "{text}");
    assert_eq!(run(&["once"]).await.0, 0);
    assert_eq!(
        read_ndjson(&out).len(),
        2 * first,
        "--redeliver sends stored events again"
    );
    let mut c = bin();
    c.arg("-c")
        .arg(&path)
        .args(["state", "rewind", "--org", &org, "--to", "yesterday"]);
    let (code, _, err) = output(c).await;
    assert_eq!(code, 2, "a bad --to is a usage error: {err}");
    assert!(err.contains("yesterday"), "{err}");

    // A corrupt state file is refused, naming the file and the fix; nothing is re-exported.
    let db = dir.path().join("state.db");
    let _ = std::fs::remove_file(dir.path().join("state.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("state.db-shm"));
    std::fs::write(&db, vec![0x13u8; 16384]).unwrap();
    let (code, _, err) = run(&["once"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("state.db") && err.contains("corrupt") && err.contains("state verify"),
        "{err}"
    );
    let (code, _, err) = run(&["state", "verify"]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(read_ndjson(&out).len(), 2 * first);
}

#[tokio::test]
async fn a_closed_stdout_stops_the_stdout_sink_with_a_clear_error() {
    let mut child = bin()
        .args(["demo", "--duration", "20s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut stdout, &mut first)
        .await
        .unwrap();
    drop(stdout); // the reader goes away, like `| head -1`
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits promptly")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("EPIPE") && err.contains("every sink has stopped"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
