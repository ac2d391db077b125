//! The cursor rule: a quiet org for days, skewed clocks, bursts of late arrivals, oldest-first
//! backfill, adaptive splits, local clock steps, and the documented limit (later than
//! `overlap` can be missed).

use super::*;

#[tokio::test]
async fn quiet_org_for_days_keeps_windows_bounded_and_the_cursor_moving() {
    let r = rig(chrono::Duration::zero(), true, settings());
    for _ in 0..(3 * 24 * 60) {
        r.cycle().await;
        r.clock.advance(Duration::from_secs(60));
    }
    let reqs = r.api.requests.lock().unwrap().clone();
    assert_eq!(
        reqs.len(),
        3 * 24 * 60,
        "one request per cycle once caught up"
    );
    let longest = reqs.iter().skip(1).map(|(f, t)| t - f).max().unwrap();
    assert!(
        longest <= (60 + 15 * 60 + 2) * 1000,
        "window grew to {longest} ms"
    );
    let cursor = r
        .poller
        .store
        .cursor("org-1", STREAM)
        .await
        .unwrap()
        .unwrap();
    let lag = r.clock.now().timestamp_millis() - 60_000 - cursor.cursor_ms;
    assert!(lag <= (15 * 60 + 2) * 1000, "cursor lags now by {lag} ms");
}

/// Every activity visible within `overlap - skew` of its createdAt is stored exactly once,
/// whichever way the clocks are skewed.
async fn late_arrivals_with_skew(skew_minutes: i64, send_date: bool) {
    let r = rig(
        chrono::Duration::minutes(skew_minutes),
        send_date,
        settings(),
    );
    let max_delay_s = if send_date {
        14 * 60
    } else {
        (15 - skew_minutes.abs()) * 60 - 60
    };
    let mut expected = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for minute in 0..180 {
        // A burst every 30 minutes, a trickle otherwise; delays up to the bound.
        let n = if minute % 30 == 0 { 200 } else { 3 };
        for i in 0..n {
            let created = r.api.server_now() - chrono::Duration::seconds(rng.i64(0..60));
            let delay = chrono::Duration::seconds(rng.i64(0..=max_delay_s));
            let id = format!("m{minute}-{i}");
            r.api.add(created, delay, &id);
            expected.push(id);
        }
        r.cycle().await;
        r.clock.advance(Duration::from_secs(60));
    }
    for _ in 0..30 {
        r.cycle().await;
        r.clock.advance(Duration::from_secs(60));
    }
    r.assert_stored_once(
        expected,
        &format!("skew {skew_minutes} min: every activity exactly once"),
    )
    .await;
}

#[tokio::test]
async fn burst_of_late_arrivals_is_stored_exactly_once() {
    late_arrivals_with_skew(0, true).await;
}

#[tokio::test]
async fn server_clock_ahead_by_ten_minutes_loses_nothing() {
    late_arrivals_with_skew(10, true).await;
}

#[tokio::test]
async fn server_clock_behind_by_ten_minutes_loses_nothing() {
    late_arrivals_with_skew(-10, true).await;
}

#[tokio::test]
async fn without_a_date_header_skew_within_overlap_loses_nothing() {
    late_arrivals_with_skew(-5, false).await;
    late_arrivals_with_skew(5, false).await;
}

#[tokio::test]
async fn later_than_overlap_can_be_missed_as_documented() {
    let r = rig(chrono::Duration::zero(), true, settings());
    r.cycle().await;
    r.api.add(
        r.clock.now() - chrono::Duration::seconds(30),
        chrono::Duration::minutes(40),
        "very-late",
    );
    for _ in 0..60 {
        r.clock.advance(Duration::from_secs(60));
        r.cycle().await;
    }
    assert!(
        r.stored_ids().await.is_empty(),
        "an activity visible 40 min late with a 15 min overlap is outside the guarantee"
    );
}

#[tokio::test]
async fn fresh_state_backfills_oldest_first_in_max_window_chunks() {
    let mut s = settings();
    s.initial_lookback = Duration::from_secs(3 * 86400);
    s.max_window = Duration::from_secs(6 * 3600);
    let r = rig(chrono::Duration::zero(), true, s);
    for h in 0..72 {
        r.api.add(
            start() - chrono::Duration::hours(h) - chrono::Duration::minutes(30),
            chrono::Duration::zero(),
            &format!("h{h:02}"),
        );
    }
    let stats = r.cycle().await;
    assert_eq!(stats.windows, 12, "3 days in 6 h chunks");
    let reqs = r.api.requests.lock().unwrap().clone();
    for pair in reqs.windows(2) {
        assert_eq!(
            pair[1].0, pair[0].1,
            "backfill chunks are contiguous and do not re-read"
        );
    }
    let ids = r.stored_ids().await;
    let mut oldest_first: Vec<String> = (0..72).rev().map(|h| format!("h{h:02}")).collect();
    oldest_first.retain(|id| ids.contains(id));
    assert_eq!(ids, oldest_first, "outbox order follows createdAt");
    assert_eq!(ids.len(), 72);
}

#[tokio::test]
async fn too_large_windows_are_split_and_the_split_is_remembered() {
    let mut s = settings();
    s.initial_lookback = Duration::from_secs(86400);
    let r = rig(chrono::Duration::zero(), true, s);
    *r.api.too_large_over.lock().unwrap() = Some(100);
    for i in 0..1000 {
        r.api.add(
            start() - chrono::Duration::seconds(86400 - i * 80),
            chrono::Duration::zero(),
            &format!("a{i:04}"),
        );
    }
    let stats = r.cycle().await;
    assert!(stats.splits >= 3, "{stats:?}");
    assert_eq!(r.stored_ids().await.len(), 1000);
    let cursor = r
        .poller
        .store
        .cursor("org-1", STREAM)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cursor.window_ms.is_some(),
        "the smaller window is stored with the cursor"
    );
    // Every fetch that was not refused stayed under the threshold. Answers of a size that
    // looks like a silent cap (a round number, a repeat of the largest) were checked by
    // fetching their halves: those requests are no window of their own.
    let checks = r
        .poller
        .metrics
        .window
        .requests
        .with_label_values(&["org-1", "cap_check"])
        .get() as u32;
    let refused = r.api.requests.lock().unwrap().len() as u32 - stats.windows - checks;
    assert_eq!(refused, stats.splits);
    assert_eq!(
        r.poller.learned.facts.update(|_| {}).cap,
        None,
        "the checks found no cap: there is none"
    );
}

/// Every answer is streamed into the store (not only whole days): a poll never holds its
/// answer whole, whatever its size, and what it stores is the same.
#[tokio::test]
async fn every_window_is_streamed_into_the_store() {
    let mut s = settings();
    s.initial_lookback = Duration::from_secs(6 * 3600);
    let r = rig(chrono::Duration::zero(), true, s);
    let expected = spread(&r, 5, 3, "s"); // 6,000 activities: three streamed chunks and more
    r.cycle().await;
    r.clock.advance(Duration::from_secs(60));
    r.cycle().await;
    let requests = r.api.requests.lock().unwrap().len();
    let streamed = r.api.streamed.lock().unwrap().clone();
    assert_eq!(
        streamed.len(),
        requests,
        "every request streamed: {streamed:?}"
    );
    assert!(streamed.iter().any(|n| *n > 2_000), "{streamed:?}");
    r.assert_stored_once(expected, "streamed windows").await;
}

/// The local clock steps back two hours, then forward three, while activities keep arriving
/// (late ones too): with the server's `Date` every one is still stored exactly once, and the
/// cursor never moves back.
async fn local_clock_jumps(send_date: bool) {
    let r = rig(chrono::Duration::zero(), send_date, settings());
    let mut expected = Vec::new();
    let mut rng = fastrand::Rng::with_seed(11);
    let mut last_cursor = i64::MIN;
    for minute in 0..120 {
        if minute == 30 {
            r.api.jump_local_clock(chrono::Duration::hours(-2));
        }
        if minute == 70 {
            r.api.jump_local_clock(chrono::Duration::hours(3));
        }
        for i in 0..5 {
            let created = r.api.server_now() - chrono::Duration::seconds(rng.i64(0..60));
            let delay = chrono::Duration::seconds(rng.i64(0..=5 * 60));
            let id = format!("m{minute}-{i}");
            r.api.add(created, delay, &id);
            expected.push(id);
        }
        r.cycle().await;
        let cursor = r
            .poller
            .store
            .cursor("org-1", STREAM)
            .await
            .unwrap()
            .unwrap();
        assert!(
            cursor.cursor_ms >= last_cursor,
            "the cursor never moves back"
        );
        last_cursor = cursor.cursor_ms;
        // Not only eventually: with the server's Date nothing waits for the clocks to agree
        // (activities are visible at most 6 minutes after their minute).
        if send_date && (minute == 69 || minute == 119) {
            let stored = r.stored_ids().await;
            let late: Vec<&String> = expected
                .iter()
                .filter(|id| {
                    let m: i32 = id[1..id.find('-').unwrap()].parse().unwrap();
                    m + 6 < minute && !stored.contains(id)
                })
                .collect();
            assert!(late.is_empty(), "minute {minute}: not stored yet: {late:?}");
        }
        r.clock.advance(Duration::from_secs(60));
    }
    for _ in 0..30 {
        r.cycle().await;
        r.clock.advance(Duration::from_secs(60));
    }
    r.assert_stored_once(expected, "every activity exactly once across both jumps")
        .await;
}

#[tokio::test]
async fn the_local_clock_stepping_back_and_forward_loses_nothing() {
    local_clock_jumps(true).await;
}

#[tokio::test]
async fn without_a_date_header_a_clock_step_loses_nothing_either() {
    local_clock_jumps(false).await;
}

/// An org whose `interval + overlap` holds several windows' worth (the soak run's 200
/// activities/s over 3 orgs): each cycle walks to now in a few windows and ends, instead of
/// re-reading the front of the overlap until the cursor catches up; late arrivals within the
/// overlap are still stored exactly once.
#[tokio::test]
async fn busy_org_walks_to_now_each_cycle_and_loses_no_late_arrival() {
    let mut s = settings();
    s.split_threshold = 100; // windows of ~70 activities: ~3.5 min at 20/min
    let r = rig(chrono::Duration::zero(), true, s);
    let (mut expected, mut prompt) = (Vec::new(), Vec::new());
    let mut rng = fastrand::Rng::with_seed(11);
    let mut windows = Vec::new();
    for minute in 0..60 {
        for i in 0..20 {
            let created = r.api.server_now() - chrono::Duration::seconds(rng.i64(0..60));
            // One in five becomes visible up to 14 minutes late.
            let delay = if i % 5 == 0 { rng.i64(0..=14 * 60) } else { 0 };
            let id = format!("m{minute}-{i}");
            r.api.add(created, chrono::Duration::seconds(delay), &id);
            if delay == 0 {
                prompt.push(id.clone());
            }
            expected.push(id);
        }
        let stats = tokio::time::timeout(Duration::from_secs(10), r.cycle())
            .await
            .expect("a cycle ends once it reaches now");
        windows.push(stats.windows);
        let stored = r.stored_ids().await;
        let waiting = prompt.iter().filter(|id| !stored.contains(id)).count();
        assert_eq!(
            waiting, 0,
            "minute {minute}: visible activities wait for a later cycle"
        );
        r.clock.advance(Duration::from_secs(60));
    }
    for _ in 0..20 {
        r.cycle().await;
        r.clock.advance(Duration::from_secs(60));
    }
    // 16 minutes of 20/min in windows of ~70: about 5 per cycle once the overlap is full.
    let most = windows.iter().skip(20).max().copied().unwrap_or(0);
    assert!(most <= 8, "windows per cycle: {windows:?}");
    r.assert_stored_once(expected, "every activity exactly once")
        .await;
}

#[tokio::test]
async fn a_store_failure_mid_stream_fails_the_poll_and_keeps_the_cursor() {
    // Enough for more chunks than the channel holds: the fetch is still sending when the
    // store fails. It used to wait on the full channel forever.
    let r = rig(chrono::Duration::zero(), true, sweeping());
    spread(&r, 5, 2, "s");
    let other = rusqlite::Connection::open(r.poller.store.path()).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER disk_full BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;",
        )
        .unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        r.poller.cycle(&CancellationToken::new()),
    )
    .await
    .expect("the poll ends instead of hanging");
    let err = done.expect_err("a store failure fails the poll");
    assert!(format!("{err:#}").contains("disk full (test)"), "{err:#}");
    assert_eq!(
        r.poller.store.cursor("org-1", "activities").await.unwrap(),
        None,
        "no cursor moved past what was not stored"
    );
}
