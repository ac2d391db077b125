//! Dispatch tests with an in-memory sink that records batches and fails on command: positions
//! move only after delivery, retries resend the same batch, a fatal sink stops alone, and
//! partial batches fill within `batch_timeout`.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::event::EventKind;
use crate::store::NewEvent;

/// How many of the next deliveries fail, and with what.
type FailPlan = Arc<Mutex<(u32, Option<fn() -> SinkError>)>>;

/// Records every delivered batch; fails the next `fail` deliveries with `error`.
#[derive(Default)]
struct MemorySink {
    batches: Arc<Mutex<Vec<Vec<i64>>>>,
    attempts: Arc<Mutex<Vec<Vec<i64>>>>,
    fail: FailPlan,
}

#[async_trait]
impl Sink for MemorySink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let seqs: Vec<i64> = batch.iter().map(|e| e.seq).collect();
        self.attempts.lock().unwrap().push(seqs.clone());
        let mut fail = self.fail.lock().unwrap();
        if fail.0 > 0 {
            fail.0 -= 1;
            return Err((fail.1.expect("error set"))());
        }
        self.batches.lock().unwrap().push(seqs);
        Ok(())
    }
}

async fn store_with(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let events = (0..n)
        .map(|i| NewEvent {
            occurred_ms: i as i64,
            event_id: format!("activity:o:{i}"),
            kind: EventKind::Activity,
            org_id: "o".into(),
            occurred_at: "2025-01-01T00:00:00Z".into(),
            payload: format!("{{\"id\":\"{i}\"}}").into(),
        })
        .collect();
    store
        .insert_window("o", "activities", events, vec![], None)
        .await
        .unwrap();
    (dir, store)
}

fn task(store: &Store, sink: MemorySink, batch: usize, wake: &watch::Sender<i64>) -> SinkTask {
    SinkTask {
        name: "mem".into(),
        sink: Box::new(sink),
        batch_max_events: batch,
        batch_timeout: None,
        store: store.clone(),
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(Health::default()),
        backoff: Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
            ..Backoff::default()
        },
        wake: wake.subscribe(),
        reopen: watch::channel(0).1,
        producers_done: None,
    }
}

const DRAIN: Mode = Mode::Drain {
    give_up_after: Duration::from_secs(30),
};

#[tokio::test]
async fn transient_failures_resend_the_same_batch_and_commit_only_after_success() {
    let (_d, store) = store_with(10).await;
    let sink = MemorySink::default();
    *sink.fail.lock().unwrap() = (3, Some(|| SinkError::transient("receiver down")));
    let (batches, attempts) = (sink.batches.clone(), sink.attempts.clone());
    let (wake, _) = watch::channel(10);
    let delivered = task(&store, sink, 4, &wake)
        .run(DRAIN, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(delivered, 10);
    assert_eq!(
        *batches.lock().unwrap(),
        vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10]]
    );
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(
        attempts[..4],
        [
            vec![1, 2, 3, 4],
            vec![1, 2, 3, 4],
            vec![1, 2, 3, 4],
            vec![1, 2, 3, 4]
        ],
        "the same batch again"
    );
    assert_eq!(store.position("mem").await.unwrap(), 10);
}

#[tokio::test]
async fn a_fatal_sink_stops_without_moving_its_position() {
    let (_d, store) = store_with(5).await;
    let sink = MemorySink::default();
    *sink.fail.lock().unwrap() = (1, Some(|| SinkError::Fatal("stdout closed".into())));
    let (wake, _) = watch::channel(5);
    let err = task(&store, sink, 10, &wake)
        .run(DRAIN, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stdout closed"), "{err}");
    assert_eq!(
        store.position("mem").await.unwrap(),
        0,
        "nothing was delivered"
    );
}

#[tokio::test]
async fn drain_gives_up_after_its_deadline_with_the_reason() {
    let (_d, store) = store_with(3).await;
    let sink = MemorySink::default();
    *sink.fail.lock().unwrap() = (
        u32::MAX,
        Some(|| SinkError::transient("connection refused")),
    );
    let (wake, _) = watch::channel(3);
    let mode = Mode::Drain {
        give_up_after: Duration::from_millis(50),
    };
    let err = task(&store, sink, 10, &wake)
        .run(mode, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DispatchError::GaveUp { .. })
            && err.to_string().contains("connection refused"),
        "{err}"
    );
}

#[tokio::test]
async fn following_sinks_wake_on_new_events_and_fill_partial_batches() {
    let (_d, store) = store_with(2).await;
    let sink = MemorySink::default();
    let batches = sink.batches.clone();
    let (wake, _) = watch::channel(2);
    let mut t = task(&store, sink, 5, &wake);
    t.batch_timeout = Some(Duration::from_secs(30));
    let token = CancellationToken::new();
    let run = tokio::spawn(t.run(Mode::Follow, token.clone()));
    // Three more events arrive while the first two wait for company.
    let more = (2..5)
        .map(|i| NewEvent {
            occurred_ms: i,
            event_id: format!("activity:o:{i}"),
            kind: EventKind::Activity,
            org_id: "o".into(),
            occurred_at: "x".into(),
            payload: "{}".into(),
        })
        .collect();
    let stats = store
        .insert_window("o", "activities", more, vec![], None)
        .await
        .unwrap();
    wake.send_replace(stats.max_seq);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while batches.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    token.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        *batches.lock().unwrap(),
        vec![vec![1, 2, 3, 4, 5]],
        "one full batch, not a trickle"
    );
}

/// Records, at each delivery, the position the store holds for the sink.
struct PositionSpy {
    store: Store,
    seen: Arc<Mutex<Vec<(i64, i64)>>>,
}

#[async_trait]
impl Sink for PositionSpy {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let committed = self.store.position("mem").await.unwrap();
        self.seen.lock().unwrap().push((batch[0].seq, committed));
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_is_delivered_only_after_the_previous_position_is_committed() {
    // The next batch is read while a position commits; delivering it before the commit
    // would let a crash re-deliver two batches.
    let (_d, store) = store_with(10).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (wake, _) = watch::channel(10);
    let mut t = task(&store, MemorySink::default(), 3, &wake);
    t.sink = Box::new(PositionSpy {
        store: store.clone(),
        seen: seen.clone(),
    });
    assert_eq!(t.run(DRAIN, CancellationToken::new()).await.unwrap(), 10);
    assert_eq!(*seen.lock().unwrap(), [(1, 0), (4, 3), (7, 6), (10, 9)]);
    assert_eq!(store.position("mem").await.unwrap(), 10);
}
