//! Fault matrix, process rows: SIGKILL at random points with every local sink on (file,
//! webhook, Splunk HEC, syslog over TCP), SIGTERM in the middle of a long backfill, and a
//! state database deleted or corrupted between runs, the system clock stepped under the
//! running binary (libfaketime).

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use clickhouse_audit_exporter::emulator::EmulatorOptions;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

use crate::support::daemon::{Daemon, bin};
use crate::support::receiver::Receiver;
use crate::support::require;
use crate::support::rig::{BATCH, Rig, check_bounded, ready, stop_clean, wait_complete};
use crate::support::splunk_hec::FakeHec;
use crate::support::wait::{eventually, wait_for};
use crate::support::{activity_ids, read_ndjson};

/// A syslog receiver over TCP (newline framing) keeping every `event_id` it reads.
struct TcpLines {
    addr: std::net::SocketAddr,
    ids: Arc<Mutex<Vec<String>>>,
}

impl TcpLines {
    async fn start() -> TcpLines {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ids = Arc::new(Mutex::new(Vec::new()));
        let keep = ids.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(conn).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        // RFC 5424 header, then the JSON envelope as MSG.
                        if let Some(json) = line.find('{').map(|i| &line[i..])
                            && let Ok(v) = serde_json::from_str::<serde_json::Value>(json)
                            && let Some(id) = v["activity"]["id"].as_str()
                        {
                            keep.lock().unwrap().push(id.to_string());
                        }
                    }
                });
            }
        });
        TcpLines { addr, ids }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_with_every_local_sink_loses_nothing() {
    let rig = Rig::with(EmulatorOptions {
        history: Duration::from_secs(86400),
        history_events_per_day: 3000,
        rate_limit: None,
        ..Default::default()
    })
    .await;
    let rx = Receiver::start().await;
    let hec = FakeHec::start("hec-token-0000", false).await;
    let syslog = TcpLines::start().await;
    let sinks = format!(
        "[[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"{}\"\nbatch_max_events = {BATCH}\n\n\
         [[sinks]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"hec-token-0000\"\nbatch_max_events = {BATCH}\n\n\
         [[sinks]]\nname = \"syslog\"\ntype = \"syslog\"\naddress = \"{}\"\nprotocol = \"tcp\"\nframing = \"newline\"\nbatch_max_events = {BATCH}\n",
        rx.url(),
        hec.url(),
        syslog.addr
    );
    rig.configure(&sinks, "", "");
    let mut rng = fastrand::Rng::with_seed(8);
    let kills = 5;
    for round in 0..kills {
        let mut child = bin()
            .arg("-c")
            .arg(&rig.cfg)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(rng.u64(200..1500));
        let mut n = 0;
        while tokio::time::Instant::now() < deadline {
            rig.add_live(1, &format!("kill-{round}-{n}"));
            n += 1;
            // The pace of new activity until the random kill time (the deadline above).
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
    let d = rig.start().await;
    let expected = rig.expected();
    // Each kill may cost one batch per sink again.
    let bound = BATCH * kills;
    wait_complete(&rig.out, &expected, bound).await;
    let hec_ids = || {
        hec.indexed()
            .iter()
            .map(|e| {
                let event_id = e["fields"]["event_id"].as_str().unwrap();
                event_id.rsplit(':').next().unwrap().to_string()
            })
            .collect()
    };
    let sinks: [(&str, &dyn Fn() -> Vec<String>); 3] = [
        ("webhook", &|| super::sinks::accepted_ids(&rx)),
        ("splunk_hec", &hec_ids),
        ("syslog", &|| syslog.ids.lock().unwrap().clone()),
    ];
    for (sink, ids) in sinks {
        let got = eventually(&format!("{sink} complete"), async || {
            let ids = ids();
            let set: HashSet<&String> = ids.iter().collect();
            expected
                .iter()
                .all(|id| set.contains(id))
                .then_some(ids.clone())
        })
        .await;
        check_bounded(&got, &expected, bound, sink);
    }
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_backfill_exits_cleanly_and_the_restart_resumes() {
    let rig = Rig::with(EmulatorOptions {
        history: Duration::from_secs(86400),
        history_events_per_day: 40_000,
        rate_limit: None,
        ..Default::default()
    })
    .await;
    // Small windows so the backfill takes many requests.
    rig.configure("", "", "split_threshold = 1000");
    let d = rig.start().await;
    eventually("the backfill under way", async || {
        (read_ndjson(&rig.out).len() >= 2 * BATCH).then_some(())
    })
    .await;
    let stopping = std::time::Instant::now();
    let logs = stop_clean(d).await;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(5 + 3),
        "stopped within the 5 s grace: {took:?}"
    );
    assert!(
        logs.contains("stopping") || logs.contains("shutting down"),
        "{logs}"
    );
    let partial = read_ndjson(&rig.out).len();
    let expected = rig.expected();
    assert!(
        partial < expected.len(),
        "SIGTERM came before the end ({partial} of {})",
        expected.len()
    );
    let d = rig.start().await;
    wait_complete(&rig.out, &expected, BATCH).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_database_is_refused_and_nothing_is_re_exported_unless_asked() {
    let rig = Rig::new().await;
    let (code, err) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 0, "{err}");
    let first = activity_ids(&read_ndjson(&rig.out));
    check_bounded(&first, &rig.expected(), 0, "first run");
    let db = rig.path("state.db");
    std::fs::remove_file(&db).unwrap();
    let (code, err) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 1, "refused: {err}");
    assert!(
        err.contains("is missing") && err.contains("state reset --yes"),
        "explains and names the way out: {err}"
    );
    let (code, text) = rig.cli(&["state", "verify"], &[]).await;
    assert_ne!(code, 0);
    assert!(text.contains("is missing"), "verify explains: {text}");
    assert_eq!(
        activity_ids(&read_ndjson(&rig.out)).len(),
        first.len(),
        "nothing re-exported"
    );
    let (code, text) = rig.cli(&["state", "reset"], &[]).await;
    assert_eq!(code, 2, "reset without --yes is refused: {text}");
    assert!(text.contains("--yes"), "{text}");
    let (code, text) = rig.cli(&["state", "reset", "--yes"], &[]).await;
    assert_eq!(code, 0, "{text}");
    let (code, err) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 0, "asked for: starts over: {err}");
    assert_eq!(
        activity_ids(&read_ndjson(&rig.out)).len(),
        2 * first.len(),
        "everything exported again, as asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_state_database_is_refused_and_verify_explains() {
    let rig = Rig::new().await;
    let (code, err) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 0, "{err}");
    let before = read_ndjson(&rig.out).len();
    let db = rig.path("state.db");
    // Overwrite the header and the first pages: the file is no database any more.
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(8192) {
        *b = 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let now = Utc::now();
    rig.emu.emulator.add_activity(
        &rig.org,
        serde_json::json!({"type": "user_login"}),
        now,
        now,
    );
    let (code, err) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("corrupt") && err.contains(&db.display().to_string()),
        "names the file and the problem: {err}"
    );
    let (code, text) = rig.cli(&["state", "verify"], &[]).await;
    assert_ne!(code, 0);
    assert!(
        text.contains("corrupt") && text.contains("state reset --yes"),
        "verify explains and names the fix: {text}"
    );
    assert_eq!(read_ndjson(&rig.out).len(), before, "nothing exported");
}

/// libfaketime (Debian `faketime`), re-reading its offset file at every call.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_clock_stepping_back_and_forward_loses_nothing() {
    if !require::installed(
        std::path::Path::new(LIBFAKETIME).exists(),
        LIBFAKETIME,
        "apt-get install faketime",
    ) {
        return;
    }
    let rig = Rig::new().await;
    let offset = rig.path("faketime.rc");
    std::fs::write(&offset, "+0\n").unwrap();
    // Only the exporter's wall clock moves: its timers (CLOCK_MONOTONIC) and the API's clock
    // do not, as when NTP or an operator steps the host clock.
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let d = Daemon::start(&rig.cfg, &env).await;
    rig.archive_complete(0).await;
    // Offsets from the real time: 2 h back, then 5 h forward (3 h ahead).
    for (step, shift) in [("back", "-2h"), ("forward", "+3h")] {
        std::fs::write(&offset, format!("{shift}\n")).unwrap();
        // Activity recorded across polls made on the shifted clock: a half, a poll, a half.
        for half in 0..2 {
            let polls = rig.emu.emulator.request_log().len();
            wait_for(
                || rig.emu.emulator.request_log().len() > polls,
                &format!("a poll on the clock stepped {step}"),
            )
            .await;
            for i in 0..5 {
                rig.add_live(2, &format!("{step}-{half}-{i}"));
            }
        }
        // Within the test's patience (60 s), not after `overlap` (15 min).
        rig.archive_complete(0).await;
    }
    ready(&d).await;
    let logs = stop_clean(d).await;
    assert!(
        logs.contains(&format!(
            "{}",
            (Utc::now() + chrono::Duration::hours(3)).format("%Y-%m-%dT%H")
        )),
        "the exporter really ran on the shifted clock (its log timestamps)"
    );
}
