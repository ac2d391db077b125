//! Fault matrix, window rows (issue 12): the API's window semantics are undocumented, so the
//! emulator answers the way each plausible API would — exact (strict dates, the live default),
//! zone-less bounds read at UTC−8 and at UTC+5, whole days, a silent cap on the newest N,
//! activities visible late, date-only bounds with a huge day — and each row runs the real
//! binary through a fresh backfill (`once`), a steady state with live activity (`run`) and a
//! restart, asserting every activity the API holds is exported, without duplicates except
//! one batch across the restart, that the exporter says what it had to do (a metric, a WARN),
//! and that the emulator never saw more requests in any window, by arrival, than the limit.

use std::time::Duration;

use chrono::FixedOffset;
use clickhouse_audit_exporter::emulator::{DateValidation, EmulatorOptions, WindowSemantics};

use crate::support::daemon::Daemon;
use crate::support::rig::{BATCH, Rig, metric_at_least, ready, stop_clean, wait_complete};

/// The emulator's limit in these rows (and the exporter's, scaled from 10 / 10 s).
const LIMIT: (u32, Duration) = (10, Duration::from_secs(2));

fn rig_options(window: WindowSemantics, per_day: u32, history_h: u64) -> EmulatorOptions {
    EmulatorOptions {
        history: Duration::from_secs(history_h * 3600),
        history_events_per_day: per_day,
        rate_limit: Some(LIMIT),
        window,
        ..Default::default()
    }
}

/// What a row changes from the defaults.
struct Row {
    window: WindowSemantics,
    /// Extra `[api]` lines (e.g. a date format).
    api: &'static str,
    /// Extra `[activities]` lines.
    activities: &'static str,
    /// `activities.overlap` instead of the rig's 15 min.
    overlap: Option<&'static str>,
    /// Hours of generated history (6 unless a row needs the hours before midnight).
    history_h: u64,
    per_day: u32,
}

/// The three phases; returns the rig so a row can check more.
async fn run_row(row: Row) -> (Rig, Daemon) {
    let rig = Rig::with(rig_options(row.window, row.per_day, row.history_h)).await;
    let api = format!("rate_limit_window = \"2s\"\n{}", row.api);
    // (Lines naming a key the rig sets, such as `interval`, override it.)
    let activities = format!(
        "interval = \"1s\"\nreconcile_interval = \"3s\"\nreconcile_lookback = \"1h\"\n{}",
        row.activities
    );
    rig.configure("", &api, &activities);
    if let Some(overlap) = row.overlap {
        rig.edit(|doc| doc.replace("activities.overlap", overlap));
    }

    // 1. A fresh backfill with `once`. The request log is checked per process: a limiter
    // lives as long as its process (a restart right after a burst may meet a 429, which waits).
    let (code, out) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 0, "once: {out}");
    check_rate(&rig, "once");
    let first = rig.expected();
    // What `once` could see is exported; anything it could not (late visibility) comes later.
    if row.window.visibility_delay.is_zero() {
        wait_complete(&rig.out, &first, 0).await;
    }

    // 2. Steady state with live activity.
    let d = rig.start().await;
    // Activity keeps arriving across polls: each round waits for the next poll to be sent.
    for round in 0..5 {
        rig.add_live(4, &format!("live{round}"));
        let polls = d.scrape().await.sum(
            "clickhouse_audit_activity_requests_total",
            &[("purpose", "poll")],
        );
        metric_at_least(
            &d,
            "clickhouse_audit_activity_requests_total",
            &[("purpose", "poll")],
            polls + 1.0,
        )
        .await;
    }
    complete(&rig, 0).await;
    ready(&d).await;
    stop_clean(d).await;
    check_rate(&rig, "run");

    // 3. A restart: activity while it was down, and after.
    rig.add_live(10, "while-down");
    let d = rig.start().await;
    rig.add_live(10, "after-restart");
    complete(&rig, BATCH).await;
    ready(&d).await;
    check_rate(&rig, "restart");
    (rig, d)
}

/// Waits until the archive holds every activity the API holds, then checks the duplicate
/// bound (the fault matrix's own wait, with this row's bound).
async fn complete(rig: &Rig, max_dups: usize) {
    wait_complete(&rig.out, &rig.expected(), max_dups).await;
}

/// No rolling window of the emulator's request log, by arrival, holds more than the limit,
/// and nothing was refused with a 429.
fn check_rate(rig: &Rig, phase: &str) {
    let log = rig.emu.emulator.request_log();
    let mut times: Vec<_> = log.iter().map(|r| r.at).collect();
    times.sort();
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] >= times[start] + LIMIT.1 {
            start += 1;
        }
        if end - start >= LIMIT.0 as usize {
            let t0 = times[start];
            let burst: Vec<String> = log
                .iter()
                .filter(|r| r.at >= t0 && r.at <= times[end])
                .map(|r| {
                    format!(
                        "+{:?} {} {} {}",
                        r.at - t0,
                        r.status,
                        r.path,
                        r.query.clone().unwrap_or_default()
                    )
                })
                .collect();
            panic!(
                "{phase}: {} requests arrived within {:?}:\n{}",
                end - start + 1,
                LIMIT.1,
                burst.join("\n")
            );
        }
    }
    let refused = log.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        refused, 0,
        "the emulator refused {refused} requests with 429"
    );
}

fn zone(hours: i32) -> Option<FixedOffset> {
    FixedOffset::east_opt(hours * 3600)
}

/// What the state keeps about the org (`state show --json`): the accepted date format and
/// the learned window facts — what the three processes of a row learned, together.
async fn learned(rig: &Rig) -> (String, serde_json::Value) {
    let out = crate::support::daemon::bin()
        .arg("-c")
        .arg(&rig.cfg)
        .args(["state", "show", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("state show --json");
    let format = v["api_date_format"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut facts = v["window_facts"][&rig.org].clone();
    facts["cursors"] = v["cursors"].clone();
    facts["now"] = chrono::Utc::now().to_rfc3339().into();
    (format, facts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_filtering_exactly_with_strict_dates_loses_nothing_and_recovers_nothing() {
    let (rig, d) = run_row(Row {
        window: WindowSemantics::default(),
        api: "",
        activities: "",
        overlap: None,
        history_h: 6,
        per_day: 400,
    })
    .await;
    stop_clean(d).await;
    let (format, f) = learned(&rig).await;
    assert_eq!(format, "rfc3339");
    assert_eq!(f["violations"], 0, "{f}");
    assert_eq!(f["recovered_total"], 0, "{f}");
    assert_eq!(f["whole_days"], false, "{f}");
    assert_eq!(f["pad_ms"], 0, "{f}");
    assert!(f["last_sweep_ms"].as_i64().is_some(), "sweeps ran: {f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_less_bounds_read_at_utc_minus_8_are_detected_and_read_safely() {
    let (rig, d) = run_row(Row {
        window: WindowSemantics {
            dates: DateValidation::Lenient,
            zone_offset: zone(-8),
            ..WindowSemantics::default()
        },
        api: "date_format = \"naive\"",
        activities: "",
        overlap: None,
        history_h: 6,
        per_day: 400,
    })
    .await;
    let logs = stop_clean(d).await;
    // Windows read 8 h late hold nothing live; answers reaching past the bounds asked said
    // so and switched the org to a safe reading (wider windows or whole days).
    let (format, f) = learned(&rig).await;
    assert_eq!(format, "naive");
    assert!(f["violations"].as_u64() >= Some(1), "{f}\n{logs}");
    assert!(
        f["whole_days"] == true || f["pad_ms"].as_i64() >= Some(8 * 3_600_000),
        "{f}\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_only_bounds_read_at_utc_plus_5_are_detected_and_padded() {
    let (rig, d) = run_row(Row {
        window: WindowSemantics {
            dates: DateValidation::DateOnly,
            zone_offset: zone(5),
            ..WindowSemantics::default()
        },
        api: "",
        activities: "",
        overlap: None,
        // Yesterday evening too: a UTC+5 reading puts its last 5 hours into today.
        history_h: 30,
        per_day: 400,
    })
    .await;
    let m = d.scrape().await;
    assert_eq!(m.sum("clickhouse_audit_activities_day_mode", &[]), 1.0);
    stop_clean(d).await;
    // rfc3339 and naive refused: the state keeps date-only bounds.
    let (format, f) = learned(&rig).await;
    assert_eq!(format, "date");
    assert!(f["violations"].as_u64() >= Some(1), "{f}");
    assert!(f["pad_ms"].as_i64() >= Some(5 * 3_600_000), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_answering_whole_days_is_read_in_day_mode() {
    let (rig, d) = run_row(Row {
        window: WindowSemantics {
            whole_days: true,
            ..WindowSemantics::default()
        },
        api: "",
        activities: "",
        overlap: None,
        history_h: 6,
        per_day: 400,
    })
    .await;
    let m = d.scrape().await;
    assert_eq!(m.sum("clickhouse_audit_activities_day_mode", &[]), 1.0);
    stop_clean(d).await;
    let (_, f) = learned(&rig).await;
    assert_eq!(f["whole_days"], true, "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_cap_of_the_newest_100_is_learned_and_nothing_is_lost() {
    let (rig, d) = run_row(Row {
        window: WindowSemantics {
            cap: Some(100),
            ..WindowSemantics::default()
        },
        api: "",
        activities: "",
        overlap: None,
        history_h: 6,
        // 6 h of history at 1,600 a day: 400 activities, four times the cap.
        per_day: 1600,
    })
    .await;
    let m = d.scrape().await;
    assert_eq!(m.sum("clickhouse_audit_api_answer_cap", &[]), 100.0);
    assert_eq!(
        m.sum(
            "clickhouse_audit_api_capped_answers_total",
            &[("splittable", "false")]
        ),
        0.0,
        "no window had to be given up"
    );
    stop_clean(d).await;
    let (_, f) = learned(&rig).await;
    assert_eq!(f["cap"], 100, "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_visible_later_than_the_overlap_are_recovered_and_grow_it() {
    let (rig, d) = run_row(Row {
        window: WindowSemantics {
            visibility_delay: Duration::from_secs(8),
            ..WindowSemantics::default()
        },
        api: "",
        activities: "",
        // The case scaled down: visible 8 s late with a 2 s overlap (38–40 min
        // against 15 min).
        overlap: Some("2s"),
        history_h: 6,
        per_day: 400,
    })
    .await;
    let logs = stop_clean(d).await;
    let (_, f) = learned(&rig).await;
    assert!(f["recovered_total"].as_u64() >= Some(1), "{f}\n{logs}");
    assert!(
        f["overlap_ms"].as_i64() >= Some(8_000),
        "the overlap grew: {f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_day_behind_date_only_bounds_is_read_in_a_few_requests_by_once() {
    let rig = Rig::with(EmulatorOptions {
        history: Duration::from_secs(86400),
        history_events_per_day: 80_000,
        rate_limit: Some(LIMIT),
        window: WindowSemantics {
            dates: DateValidation::DateOnly,
            ..WindowSemantics::default()
        },
        ..Default::default()
    })
    .await;
    rig.configure("", "rate_limit_window = \"2s\"", "");
    let (code, out) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 0, "once: {out}");
    let activities = rig
        .emu
        .emulator
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/activities"))
        .count();
    // Two refusals (rfc3339, naive), then the 2-day lookback as whole days (3 at most).
    assert!(activities <= 6, "{activities} activities requests");
    wait_complete(&rig.out, &rig.expected(), 0).await;
    check_rate(&rig, "once");
}
