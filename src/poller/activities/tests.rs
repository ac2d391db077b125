//! Cursor-rule tests with a fake API and a hand-moved clock: quiet org for days, skewed
//! clocks, bursts of late arrivals, oldest-first backfill, adaptive splits, and the documented
//! limit (later than `overlap` can be missed).

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use super::check::{DAY_MS, floor_day};
use super::facts::FactsCell;
use super::*;
use crate::poller::{Fetched, FetchedActivity, WindowQuery};

/// A wall clock and a steady clock; `advance` moves both, a jump only the wall clock.
struct ManualClock(Mutex<DateTime<Utc>>, Mutex<i64>);

impl ManualClock {
    fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap();
        *t += chrono::Duration::from_std(d).unwrap();
        *self.1.lock().unwrap() += d.as_millis() as i64;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    fn elapsed_ms(&self) -> i64 {
        *self.1.lock().unwrap()
    }
}

/// A fake activities endpoint: inclusive bounds, late visibility, server clock = client + skew.
struct FakeApi {
    clock: Arc<ManualClock>,
    skew: Mutex<chrono::Duration>,
    /// (createdAt ms, visible-from ms in server time, id)
    items: Mutex<Vec<(i64, i64, String)>>,
    requests: Mutex<Vec<(i64, i64)>>,
    /// A capped fetch answering more than this many items is "too large".
    too_large_over: Mutex<Option<usize>>,
    send_date: bool,
    /// Answers sent streamed (their sizes).
    streamed: Mutex<Vec<usize>>,
    /// How the server reads windows (issue 12): its format, a shift of the bounds (a zone
    /// reading), whole days, a silent cap on the newest N.
    semantics: Mutex<Semantics>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Semantics {
    format: Option<DateFormat>,
    shift_ms: i64,
    whole_days: bool,
    cap: Option<usize>,
}

impl FakeApi {
    fn server_now(&self) -> DateTime<Utc> {
        self.clock.now() + *self.skew.lock().unwrap()
    }
    /// The local clock jumps by `by` (NTP step, VM resume, an operator's `date -s`); the
    /// server's clock goes on undisturbed.
    fn jump_local_clock(&self, by: chrono::Duration) {
        *self.clock.0.lock().unwrap() += by;
        *self.skew.lock().unwrap() -= by;
    }
    fn add(&self, created: DateTime<Utc>, delay: chrono::Duration, id: &str) {
        self.items.lock().unwrap().push((
            created.timestamp_millis(),
            (created + delay).timestamp_millis(),
            id.to_string(),
        ));
    }
}

#[async_trait]
impl ActivitySource for FakeApi {
    async fn fetch(&self, _org: &str, q: WindowQuery) -> Result<Fetched, FetchError> {
        let max_bytes = q.max_bytes;
        let sem = *self.semantics.lock().unwrap();
        let (from, to) = (q.from.timestamp_millis(), q.to.timestamp_millis());
        self.requests.lock().unwrap().push((from, to));
        let (lo, hi) = super::window::wire_bounds(sem.format, q.from, q.to);
        let (mut from, mut to) = (
            lo.timestamp_millis() + sem.shift_ms,
            hi.timestamp_millis() + sem.shift_ms,
        );
        if sem.whole_days {
            (from, to) = (floor_day(from), floor_day(to) + DAY_MS - 1);
        }
        let now = self.server_now().timestamp_millis();
        let activities: Vec<FetchedActivity> = self
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, v, _)| *c >= from && *c <= to && *v <= now)
            .map(|(c, _, id)| {
                let created_at = DateTime::from_timestamp_millis(*c).unwrap();
                let raw_time = created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
                FetchedActivity {
                    id: id.clone(),
                    created_at,
                    raw: format!(r#"{{"id":"{id}","createdAt":"{raw_time}","type":"user_login"}}"#)
                        .into(),
                    created_at_raw: raw_time,
                }
            })
            .collect();
        let mut activities = activities;
        if let Some(cap) = sem.cap {
            activities.sort_by_key(|a| std::cmp::Reverse(a.created_at));
            activities.truncate(cap);
        }
        if let (Some(limit), Some(over)) = (max_bytes, *self.too_large_over.lock().unwrap())
            && activities.len() > over
        {
            return Err(FetchError::TooLarge {
                limit,
                bytes: activities.len() * 100,
            });
        }
        let server_date = self
            .send_date
            .then(|| DateTime::from_timestamp(self.server_now().timestamp(), 0).unwrap());
        let (count, body_bytes) = (activities.len(), activities.len() * 100);
        if let Some(stream) = q.stream {
            self.streamed.lock().unwrap().push(count);
            while !activities.is_empty() {
                let rest = activities.split_off(stream.batch.min(activities.len()));
                let chunk = crate::poller::Chunk {
                    activities: std::mem::replace(&mut activities, rest),
                    quarantined: vec![],
                };
                stream.tx.send(chunk).await.unwrap();
            }
        }
        Ok(Fetched {
            body_bytes,
            count,
            activities,
            quarantined: vec![],
            server_date,
            bounds: None,
            format: sem.format,
        })
    }

    fn date_format(&self) -> Option<DateFormat> {
        self.semantics.lock().unwrap().format
    }
}

struct Rig {
    clock: Arc<ManualClock>,
    api: Arc<FakeApi>,
    poller: ActivityPoller,
    _dir: tempfile::TempDir,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(60),
        overlap: Duration::from_secs(15 * 60),
        initial_lookback: Duration::from_secs(3600),
        max_window: Duration::from_secs(86400),
        split_threshold: 50_000,
        max_response_bytes: 32 << 20,
        min_window: Duration::from_secs(1),
        reconcile_interval: Duration::ZERO,
        reconcile_lookback: Duration::from_secs(2 * 86400),
        max_overlap: Duration::from_secs(6 * 3600),
    }
}

fn rig(skew: chrono::Duration, send_date: bool, settings: Settings) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(start()), Mutex::new(0)));
    let api = Arc::new(FakeApi {
        clock: clock.clone(),
        skew: Mutex::new(skew),
        items: Mutex::new(Vec::new()),
        requests: Mutex::new(Vec::new()),
        too_large_over: Mutex::new(None),
        send_date,
        streamed: Mutex::new(Vec::new()),
        semantics: Mutex::new(Semantics::default()),
    });
    let (wake, _) = watch::channel(0);
    let poller = ActivityPoller {
        org: "org-1".into(),
        source: api.clone(),
        store,
        settings,
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(Health::default()),
        wake,
        clock: clock.clone(),
        steady_anchor: Mutex::new(None),
        learned: Arc::new(Learned::default()),
    };
    Rig {
        clock,
        api,
        poller,
        _dir: dir,
    }
}

impl Rig {
    async fn cycle(&self) -> CycleStats {
        self.poller.cycle(&CancellationToken::new()).await.unwrap()
    }
    /// The outbox holds exactly `expected` (any order), each once.
    async fn assert_stored_once(&self, mut expected: Vec<String>, what: &str) {
        let mut stored = self.stored_ids().await;
        let n = stored.len();
        stored.sort();
        stored.dedup();
        assert_eq!(stored.len(), n, "{what}: no duplicates in the outbox");
        expected.sort();
        assert_eq!(stored, expected, "{what}");
    }

    async fn stored_ids(&self) -> Vec<String> {
        let batch = self.poller.store.read_batch(0, 1_000_000).await.unwrap();
        batch
            .iter()
            .map(|e| e.event_id.rsplit(':').next().unwrap().to_string())
            .collect()
    }
}

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

// ---- issue 12: whatever the API does with a window ----

/// Activities spread over the last `hours`, one every `every` seconds, visible at once.
fn spread(r: &Rig, hours: i64, every: i64, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let now = r.api.server_now();
    let mut t = now - chrono::Duration::hours(hours);
    let mut i = 0;
    while t < now {
        let id = format!("{prefix}{i:05}");
        r.api.add(t, chrono::Duration::zero(), &id);
        ids.push(id);
        t += chrono::Duration::seconds(every);
        i += 1;
    }
    ids
}

impl Rig {
    fn set(&self, change: impl FnOnce(&mut Semantics)) {
        change(&mut self.api.semantics.lock().unwrap());
    }
    fn counter(&self, name: &str, labels: &[&str]) -> u64 {
        let w = &self.poller.metrics.window;
        match name {
            "violations" => w.violations.with_label_values(labels).get(),
            "recovered" => w.recovered.with_label_values(labels).get(),
            "capped" => w.capped.with_label_values(labels).get(),
            _ => unreachable!("{name}"),
        }
    }
    fn facts(&self) -> WindowFacts {
        self.poller.learned.facts.update(|_| {})
    }
    async fn sweep(&self) -> SweepStats {
        self.poller
            .sweep(&CancellationToken::new())
            .await
            .unwrap()
            .expect("a cursor exists")
    }
}

/// A two-day initial lookback: a fresh state backfills in day-long windows first.
fn backfilling() -> Settings {
    Settings {
        initial_lookback: Duration::from_secs(2 * 86400),
        ..sweeping()
    }
}

fn sweeping() -> Settings {
    Settings {
        initial_lookback: Duration::from_secs(6 * 3600),
        reconcile_interval: Duration::from_secs(3600),
        ..settings()
    }
}

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
