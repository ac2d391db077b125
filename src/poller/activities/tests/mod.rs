//! The activity poller's tests and their shared rig: a fake API (inclusive bounds, late
//! visibility, server clock skew, configurable semantics) and a hand-moved clock. The cursor
//! rule's tests are in `cursor.rs`, what the API may do with a window in `api_semantics.rs`.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use super::check::{DAY_MS, floor_day};
use super::facts::FactsCell;
use super::*;
use crate::config::DateFormat;
use crate::poller::{Fetched, FetchedActivity, WindowQuery};

mod api_semantics;
mod cursor;
mod decode_permit;
mod sweep_loop;

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
                    format: sem.format,
                };
                if stream.tx.send(chunk).await.is_err() {
                    return Err(FetchError::Api {
                        kind: "decode",
                        message: "the receiver of the streamed activities is gone".into(),
                    });
                }
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
        decode: Arc::new(DecodePermit::default()),
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

// ---- issue 12: helpers for whatever the API does with a window ----

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
