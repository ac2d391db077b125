//! Whatever the API does with a window (issue 12): shifted and whole-day filtering, silent
//! caps, late visibility recovered by sweeps, day mode, learned facts across restarts, and a
//! refused fetch.

use super::*;

/// A server reading zone-less bounds at UTC-8 answers every window 8 h later than asked:
/// the first answer names the shift, later windows are padded, the sweep recovers the rest.
async fn shifted(shift_h: i64) {
    let r = rig(chrono::Duration::zero(), true, backfilling());
    r.set(|s| {
        s.format = Some(DateFormat::Naive);
        s.shift_ms = shift_h * 3_600_000;
    });
    let mut expected = spread(&r, 60, 600, "old");
    for minute in 0..30 {
        let id = format!("live{minute}");
        r.api.add(r.api.server_now(), chrono::Duration::zero(), &id);
        expected.push(id);
        r.cycle().await;
        r.clock.advance(Duration::from_secs(60));
    }
    let f = r.facts();
    assert!(f.pad_ms > shift_h.abs() * 3_600_000, "{f:?}");
    let side = if shift_h > 0 { "after" } else { "before" };
    assert!(r.counter("violations", &["org-1", side]) > 0);
    r.sweep().await;
    r.cycle().await;
    // What the history before the initial lookback held is not owed: only the lookback and
    // everything since.
    let horizon = (start() - chrono::Duration::hours(48)).timestamp_millis();
    let stored = r.stored_ids().await;
    let owed: Vec<String> = r
        .api
        .items
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _, _)| *c >= horizon)
        .map(|(_, _, id)| id.clone())
        .collect();
    let missing: Vec<&String> = owed.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "missing {missing:?}");
    assert!(
        expected
            .iter()
            .filter(|id| id.starts_with("live"))
            .all(|id| stored.contains(id))
    );
}

#[tokio::test]
async fn a_server_reading_bounds_at_utc_minus_8_is_detected_padded_and_swept() {
    shifted(8).await;
}

#[tokio::test]
async fn a_server_reading_bounds_at_utc_plus_5_is_detected_padded_and_swept() {
    shifted(-5).await;
}

#[tokio::test]
async fn whole_day_answers_switch_the_org_to_day_mode() {
    let r = rig(chrono::Duration::zero(), true, sweeping());
    r.set(|s| s.whole_days = true);
    // Older history too: a whole-day answer reaches back before the 6-hour lookback.
    spread(&r, 30, 300, "old");
    let horizon = (start() - chrono::Duration::hours(6)).timestamp_millis();
    let day_start = floor_day(horizon);
    r.cycle().await;
    assert!(r.facts().whole_days, "{:?}", r.facts());
    assert_eq!(
        r.poller
            .metrics
            .window
            .day_mode
            .with_label_values(&["org-1"])
            .get(),
        1
    );
    let before = r.api.requests.lock().unwrap().len();
    for _ in 0..10 {
        r.clock.advance(Duration::from_secs(60));
        r.cycle().await;
    }
    // Steady state in day mode: one request per cycle (the current day).
    let reqs = r.api.requests.lock().unwrap().clone();
    assert_eq!(reqs.len() - before, 10, "{reqs:?}");
    let expected: Vec<String> = r
        .api
        .items
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _, _)| *c >= day_start)
        .map(|(_, _, id)| id.clone())
        .collect();
    r.assert_stored_once(expected, "whole days").await;
    assert!(
        !r.api.streamed.lock().unwrap().is_empty(),
        "day mode streams"
    );
}

#[tokio::test]
async fn a_silent_cap_of_the_newest_100_is_detected_and_windows_stay_below_it() {
    let r = rig(chrono::Duration::zero(), true, sweeping());
    r.set(|s| s.cap = Some(100));
    let expected = spread(&r, 6, 60, "c"); // 360 activities in the lookback
    r.cycle().await;
    assert_eq!(r.facts().cap, Some(100));
    assert!(r.counter("capped", &["org-1", "true"]) >= 1);
    r.assert_stored_once(expected.clone(), "capped backfill")
        .await;
    // Live activity at 3/min: windows stay below the cap, nothing is lost.
    let mut all = expected;
    for minute in 0..20 {
        for i in 0..3 {
            let id = format!("l{minute}-{i}");
            r.api.add(r.api.server_now(), chrono::Duration::zero(), &id);
            all.push(id);
        }
        r.clock.advance(Duration::from_secs(60));
        r.cycle().await;
    }
    r.assert_stored_once(all, "capped live").await;
}

#[tokio::test]
async fn a_capped_window_that_cannot_be_split_degrades_readiness_and_never_loops() {
    let r = rig(chrono::Duration::zero(), true, sweeping());
    r.set(|s| {
        s.format = Some(DateFormat::Date);
        s.cap = Some(1000);
    });
    // 2000 activities in the last hour of one day: the day answers its newest 1000.
    for i in 0..2000 {
        r.api.add(
            start() - chrono::Duration::seconds(3600 - i),
            chrono::Duration::zero(),
            &format!("d{i}"),
        );
    }
    // One round answer is chance; the same round answer again, as large as any, for other
    // activities (new ones arrived, the newest 1000 moved on) is called.
    for round in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), r.cycle())
            .await
            .expect("a cycle over an uncheckable day ends");
        r.clock.advance(Duration::from_secs(60));
        for i in 0..10 {
            r.api.add(
                r.api.server_now() - chrono::Duration::seconds(1),
                chrono::Duration::zero(),
                &format!("new{round}-{i}"),
            );
        }
    }
    assert!(r.counter("capped", &["org-1", "false"]) >= 1);
    let h = r.poller.health.pollers();
    let why = h["org-1/activities"].degraded.clone().expect("degraded");
    assert!(
        why.contains("1000") && why.contains("cannot be split"),
        "{why}"
    );
    assert!(r.api.requests.lock().unwrap().len() <= 4);
}

#[tokio::test]
async fn the_same_round_day_read_twice_is_no_cap() {
    let r = rig(chrono::Duration::zero(), true, sweeping());
    r.set(|s| s.format = Some(DateFormat::Date));
    for i in 0..1000 {
        r.api.add(
            start() - chrono::Duration::seconds(3600 - i),
            chrono::Duration::zero(),
            &format!("d{i}"),
        );
    }
    for _ in 0..3 {
        r.cycle().await;
        r.clock.advance(Duration::from_secs(60));
    }
    assert_eq!(r.counter("capped", &["org-1", "false"]), 0);
    let health = r.poller.health.pollers();
    assert!(
        health
            .get("org-1/activities")
            .is_none_or(|h| h.degraded.is_none()),
        "{health:?}"
    );
}

#[tokio::test]
async fn late_visibility_beyond_the_overlap_is_recovered_by_a_sweep_and_grows_the_overlap() {
    let r = rig(chrono::Duration::zero(), true, sweeping());
    r.cycle().await;
    let mut late = Vec::new();
    for i in 0..20 {
        let id = format!("late{i}");
        r.api.add(
            r.clock.now() - chrono::Duration::seconds(30),
            chrono::Duration::minutes(38 + i % 3),
            &id,
        );
        late.push(id);
        r.clock.advance(Duration::from_secs(60));
        r.cycle().await;
    }
    for _ in 0..45 {
        r.clock.advance(Duration::from_secs(60));
        r.cycle().await;
    }
    let missed = r.stored_ids().await.len();
    assert!(missed < 20, "the polls alone miss them (overlap 15 min)");
    let stats = r.sweep().await;
    assert_eq!(stats.recovered as usize, 20 - missed);
    assert_eq!(
        r.counter("recovered", &["org-1"]),
        stats.recovered,
        "each recovered activity is counted"
    );
    r.assert_stored_once(late, "late activities recovered")
        .await;
    let f = r.facts();
    assert!(
        r.poller.overlap_ms(&f) >= 38 * 60_000,
        "the overlap grew from the observed delay: {f:?}"
    );
    assert!(f.overlap_ms <= 6 * 3_600_000);
}

#[tokio::test]
async fn day_mode_reads_a_huge_day_streamed_in_bounded_requests() {
    let mut s = sweeping();
    s.initial_lookback = Duration::from_secs(86400);
    let r = rig(chrono::Duration::zero(), true, s);
    r.set(|s| s.format = Some(DateFormat::Date));
    *r.api.too_large_over.lock().unwrap() = Some(100);
    let expected = spread(&r, 20, 1, "b"); // 72,000 activities in one day and a bit
    let stats = tokio::time::timeout(Duration::from_secs(60), r.cycle())
        .await
        .expect("day mode never crawls");
    assert!(stats.requests <= 3, "{stats:?}");
    assert_eq!(stats.splits, 0);
    let streamed = r.api.streamed.lock().unwrap().clone();
    assert!(streamed.iter().any(|n| *n > 10_000), "{streamed:?}");
    r.assert_stored_once(expected, "a huge day").await;
}

#[tokio::test]
async fn learned_facts_and_the_accepted_date_format_survive_a_restart() {
    let r = rig(chrono::Duration::zero(), true, backfilling());
    r.set(|s| {
        s.format = Some(DateFormat::Naive);
        s.shift_ms = 8 * 3_600_000;
    });
    spread(&r, 60, 600, "a");
    r.cycle().await;
    let pad = r.facts().pad_ms;
    assert!(pad > 0);
    let fresh = FactsCell::default()
        .get(&r.poller.store, "org-1")
        .await
        .unwrap();
    assert_eq!(fresh.pad_ms, pad);
    assert_eq!(
        r.poller
            .store
            .meta_get(DATE_FORMAT_KEY)
            .await
            .unwrap()
            .as_deref(),
        Some("naive")
    );
}

#[tokio::test]
async fn a_sweep_never_reaches_before_the_first_cursor() {
    let r = rig(chrono::Duration::zero(), true, sweeping());
    spread(&r, 30, 600, "h"); // 30 h of history, the lookback is 6 h
    r.cycle().await;
    let horizon = (start() - chrono::Duration::hours(6)).timestamp_millis();
    assert_eq!(r.facts().horizon_ms, Some(horizon));
    let stats = r.sweep().await;
    assert_eq!(stats.recovered, 0, "older history is not owed: {stats:?}");
    assert_eq!(r.facts().overlap_ms, 0, "and no reason to grow the overlap");
    let reqs = r.api.requests.lock().unwrap().clone();
    assert!(reqs.iter().all(|(from, _)| *from >= horizon), "{reqs:?}");
}

#[tokio::test]
async fn a_date_only_to_date_seen_covering_its_day_halves_what_day_windows_read() {
    let r = rig(chrono::Duration::zero(), true, backfilling());
    r.set(|s| s.format = Some(DateFormat::Date));
    spread(&r, 60, 600, "d");
    r.cycle().await;
    assert!(r.facts().to_date_whole_day, "{:?}", r.facts());
    // After the first window, day windows ending on a midnight ask for their last day itself.
    let reqs = r.api.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .skip(1)
            .any(|(_, to)| to.rem_euclid(DAY_MS) == 0),
        "{reqs:?}"
    );
    let horizon = (start() - chrono::Duration::hours(48)).timestamp_millis();
    let owed: Vec<String> = r
        .api
        .items
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _, _)| *c >= floor_day(horizon))
        .map(|(_, _, id)| id.clone())
        .collect();
    r.assert_stored_once(owed, "whole days from the first one on")
        .await;
}

#[tokio::test]
async fn a_learned_cap_is_forgotten_when_an_answer_holds_more() {
    let r = rig(chrono::Duration::zero(), true, sweeping());
    r.set(|s| s.cap = Some(100));
    spread(&r, 6, 60, "c");
    r.cycle().await;
    assert_eq!(r.facts().cap, Some(100));
    // The API lifts its cap; a window now answers more than 100: the cap is forgotten.
    r.set(|s| s.cap = None);
    r.poller.learned.facts.update(|f| f.cap = Some(10));
    r.clock.advance(Duration::from_secs(60));
    r.api
        .add(r.api.server_now(), chrono::Duration::zero(), "extra");
    r.cycle().await;
    spread(&r, 1, 10, "more");
    r.clock.advance(Duration::from_secs(60));
    r.cycle().await;
    assert_eq!(r.facts().cap, None, "{:?}", r.facts());
}

/// A source that refuses every request, as the API does a key without the permission.
struct Refusing;

#[async_trait]
impl ActivitySource for Refusing {
    async fn fetch(&self, _org: &str, _q: WindowQuery) -> Result<Fetched, FetchError> {
        Err(FetchError::Api {
            kind: "forbidden",
            message: "the key lacks the permission".into(),
        })
    }
}

#[tokio::test]
async fn a_refused_fetch_is_a_typed_error_counted_under_its_kind() {
    let mut r = rig(chrono::Duration::zero(), true, settings());
    r.poller.source = Arc::new(Refusing);
    let err = r
        .poller
        .cycle_logged(&CancellationToken::new())
        .await
        .expect_err("every fetch is refused");
    assert!(
        matches!(
            &err,
            PollError::Fetch(FetchError::Api {
                kind: "forbidden",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(format!("{err:#}"), "the key lacks the permission");
    let counted = r
        .poller
        .metrics
        .poll_errors
        .with_label_values(&["org-1", STREAM, "forbidden"])
        .get();
    assert_eq!(counted, 1);
}

#[tokio::test]
async fn a_utc_minus_8_reading_just_after_utc_midnight_with_hours_of_history_is_padded() {
    // 20 minutes past UTC midnight, six hours of history (exactly 100 activities, a round
    // number that asks for a cap check): the first window of a two-day backfill, read 8 h
    // late, holds the whole history at its end, and the check's part before the oldest
    // activity holds everything after it. Its start is empty because nothing is older, not
    // because of the shift; the evidence still demands a pad that covers the shift.
    let r = rig(chrono::Duration::zero(), true, backfilling());
    *r.clock.0.lock().unwrap() = Utc.with_ymd_and_hms(2026, 12, 6, 0, 20, 0).unwrap();
    r.set(|s| {
        s.format = Some(DateFormat::Naive);
        s.shift_ms = 8 * 3_600_000;
    });
    let history = spread(&r, 6, 216, "h");
    assert_eq!(history.len(), 100);
    r.cycle().await;
    let f = r.facts();
    assert!(f.violations > 0, "{f:?}");
    assert!(
        f.whole_days || f.pad_ms >= 8 * 3_600_000,
        "the reading is made safe: {f:?}"
    );
    r.sweep().await;
    r.cycle().await;
    r.assert_stored_once(history, "every activity of the history, once")
        .await;
}
