//! The limiter's unit tests, all on tokio's paused clock: no rolling window ever sees more than
//! `max` arrivals, in-flight slots, cancellation, 429 blocks, `Low` versus `Normal`, and the
//! budget handed over a restart.

use super::*;
use std::sync::Arc;

const W: Duration = Duration::from_secs(10);

/// `tasks` callers of `priority`, each sending `calls` requests whose answers take
/// `latency(task, call)`; returns every (sent, answered).
async fn run_callers(
    limiter: &Arc<RateLimiter>,
    tasks: u64,
    calls: u64,
    latency: fn(u64, u64) -> Duration,
) -> Vec<(Instant, Instant)> {
    let log = Arc::new(StdMutex::new(Vec::new()));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (limiter, log) = (limiter.clone(), log.clone());
        handles.push(tokio::spawn(async move {
            for call in 0..calls {
                let permit = limiter.acquire(Priority::Normal).await;
                let sent = Instant::now();
                tokio::time::sleep(latency(task, call)).await;
                permit.answered();
                log.lock().unwrap().push((sent, Instant::now()));
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    Arc::try_unwrap(log).unwrap().into_inner().unwrap()
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_never_exceed_max_in_any_window() {
    let limiter = Arc::new(RateLimiter::new(4, W));
    // Uneven answer times so callers interleave differently.
    let log = run_callers(&limiter, 6, 7, |task, call| {
        Duration::from_millis((task * 37 + call * 13) % 700)
    })
    .await;
    assert_eq!(log.len(), 42);
    let sends: Vec<Instant> = log.iter().map(|r| r.0).collect();
    assert_eq!(max_in_any_window(&sends, W), 4);
    assert_eq!(max_arrivals_in_any_window(&log, W), 4);
    // And the limiter is not needlessly slow: 42 requests at 4 per (10 s + ≤0.7 s) take
    // at most 10 such cycles.
    let span = sends
        .iter()
        .max()
        .unwrap()
        .duration_since(*sends.iter().min().unwrap());
    assert!(span <= Duration::from_millis(10 * 10_700), "{span:?}");
}

#[tokio::test(start_paused = true)]
async fn slow_answers_never_let_more_than_max_arrive_in_any_window() {
    // 3 s answers: counting from the send (the old limiter) lets a second burst leave 10 s
    // after the first left, when the first may have arrived only 3 s later.
    let limiter = Arc::new(RateLimiter::new(4, W));
    let log = run_callers(&limiter, 8, 5, |_, _| Duration::from_secs(3)).await;
    assert_eq!(log.len(), 40);
    let answers: Vec<Instant> = log.iter().map(|r| r.1).collect();
    assert_eq!(max_in_any_window(&answers, W), 4, "measured at the answer");
    assert_eq!(
        max_arrivals_in_any_window(&log, W),
        4,
        "wherever they arrived"
    );
    // Not needlessly slow: a slot cycles every 3 s + 10 s, so the 10 bursts of 4 leave at
    // 0, 13, …, 117 s.
    let start = log.iter().map(|r| r.0).min().unwrap();
    let last = log.iter().map(|r| r.0).max().unwrap();
    assert_eq!(last - start, Duration::from_secs(117));

    // Random answer times up to 3 s, same guarantee.
    let limiter = Arc::new(RateLimiter::new(4, W));
    let log = run_callers(&limiter, 6, 6, |task, call| {
        Duration::from_millis((task * 977 + call * 1_301) % 3_000)
    })
    .await;
    assert_eq!(max_arrivals_in_any_window(&log, W), 4);
}

#[tokio::test(start_paused = true)]
async fn a_slot_in_flight_holds_the_window_until_its_answer_plus_window() {
    let limiter = RateLimiter::new(1, W);
    let start = Instant::now();
    let permit = limiter.acquire(Priority::Normal).await;
    let next = async {
        let p = limiter.acquire(Priority::Normal).await;
        (Instant::now() - start, p.waited())
    };
    let answer = async {
        tokio::time::sleep(Duration::from_secs(25)).await;
        permit.answered();
    };
    let ((at, waited), ()) = tokio::join!(next, answer);
    assert_eq!(at, Duration::from_secs(35));
    assert_eq!(waited.limiter, Duration::from_secs(35));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_takes_nothing() {
    let limiter = RateLimiter::new(1, W);
    let held = limiter.acquire(Priority::Normal).await;
    let r = tokio::time::timeout(Duration::from_secs(1), limiter.acquire(Priority::Normal));
    assert!(r.await.is_err());
    held.answered();
    let start = Instant::now();
    drop(limiter.acquire(Priority::Normal).await);
    assert_eq!(
        Instant::now() - start,
        W,
        "only the answered slot was in the way"
    );
}

#[tokio::test(start_paused = true)]
async fn a_block_holds_every_caller_and_is_reported_as_reset_wait() {
    let limiter = RateLimiter::new(10, W);
    let start = Instant::now();
    limiter.block_until(start + Duration::from_secs(5));
    limiter.block_until(start + Duration::from_secs(2)); // never shortens
    let waited = limiter.acquire(Priority::Normal).await.waited();
    assert_eq!(Instant::now() - start, Duration::from_secs(5));
    assert_eq!(waited.reset, Duration::from_secs(5));
    assert_eq!(waited.limiter, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn full_window_waits_for_the_oldest_answer_to_leave() {
    let limiter = RateLimiter::new(2, W);
    let start = Instant::now();
    limiter.acquire(Priority::Normal).await.answered();
    tokio::time::sleep(Duration::from_secs(3)).await;
    limiter.acquire(Priority::Normal).await.answered();
    let waited = limiter.acquire(Priority::Normal).await.waited();
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
    assert_eq!(waited.limiter, Duration::from_secs(7));
    let waited = limiter.acquire(Priority::Normal).await.waited();
    assert_eq!(Instant::now() - start, Duration::from_secs(13));
    assert_eq!(waited.limiter, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn low_priority_leaves_the_last_slot_for_normal() {
    let limiter = Arc::new(RateLimiter::new(3, W));
    let start = Instant::now();
    limiter.acquire(Priority::Low).await.answered();
    limiter.acquire(Priority::Low).await.answered();
    let third_low = tokio::spawn({
        let limiter = limiter.clone();
        async move {
            limiter.acquire(Priority::Low).await.answered();
            Instant::now() - start
        }
    });
    tokio::task::yield_now().await;
    // The reserved slot: a Normal caller goes at once.
    limiter.acquire(Priority::Normal).await.answered();
    assert_eq!(Instant::now() - start, Duration::ZERO);
    assert_eq!(third_low.await.unwrap(), W);

    // With a window of one there is nothing to reserve; Low still gets the slot.
    let one = RateLimiter::new(1, W);
    let at = Instant::now();
    one.acquire(Priority::Low).await.answered();
    one.acquire(Priority::Low).await.answered();
    assert_eq!(Instant::now() - at, W);
}

#[tokio::test(start_paused = true)]
async fn low_priority_waits_while_a_normal_caller_waits() {
    let limiter = Arc::new(RateLimiter::new(2, W));
    let start = Instant::now();
    limiter.acquire(Priority::Normal).await.answered();
    limiter.acquire(Priority::Normal).await.answered();
    let spawn = |priority| {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            limiter.acquire(priority).await.answered();
            Instant::now() - start
        })
    };
    // Low asks first, Normal second: Normal still goes first when the window frees.
    let low = spawn(Priority::Low);
    tokio::task::yield_now().await;
    let normal = spawn(Priority::Normal);
    assert_eq!(normal.await.unwrap(), W);
    // Then Low needs a free slot besides its own: the 2nd one frees when Normal's expires.
    assert_eq!(low.await.unwrap(), 2 * W);
}

#[tokio::test(start_paused = true)]
async fn a_hogging_low_caller_never_delays_normal_calls() {
    let limiter = Arc::new(RateLimiter::new(4, W));
    let low_sends = Arc::new(StdMutex::new(0usize));
    let hog = tokio::spawn({
        let (limiter, low_sends) = (limiter.clone(), low_sends.clone());
        async move {
            loop {
                let permit = limiter.acquire(Priority::Low).await;
                *low_sends.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                permit.answered();
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..6 {
        let permit = limiter.acquire(Priority::Normal).await;
        assert_eq!(
            permit.waited(),
            Waited::default(),
            "Normal never waits for Low"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        permit.answered();
        tokio::time::sleep(W).await; // its own slot is free again
    }
    hog.abort();
    // Low used the rest: 2-3 slots per 11 s.
    let low = *low_sends.lock().unwrap();
    assert!(low >= 12, "{low}");
}

#[tokio::test(start_paused = true)]
async fn a_seeded_budget_carries_over_a_restart() {
    let window = Duration::from_secs(10);
    let old = RateLimiter::new(10, window);
    for _ in 0..10 {
        old.acquire(Priority::Normal).await.answered();
    }
    let recent = old.recent();
    assert_eq!(recent.len(), 10);
    let new = RateLimiter::new(10, window);
    new.seed(&recent);
    let t0 = Instant::now();
    new.acquire(Priority::Normal).await.answered();
    assert!(Instant::now() - t0 >= window - Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn low_after_nine_low_and_one_normal_waits_for_the_window() {
    let l = RateLimiter::new(10, Duration::from_secs(2));
    let t0 = Instant::now();
    for _ in 0..9 {
        l.acquire(Priority::Low).await.answered();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    l.acquire(Priority::Normal).await.answered();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let p = l.acquire(Priority::Low).await;
    assert!(
        Instant::now() - t0 >= Duration::from_secs(2),
        "{:?}",
        Instant::now() - t0
    );
    drop(p);
}

/// Test helper: the most instants of `times` that fall in one rolling `window`.
fn max_in_any_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end] >= sorted[start] + window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Test helper: the most requests (sent, answered) that can all have arrived at the server in
/// one rolling `window`, wherever in `[sent, answered]` each arrived: the most intervals that
/// meet one `[t, t + window)`, where it suffices to try `t` = each answer.
fn max_arrivals_in_any_window(requests: &[(Instant, Instant)], window: Duration) -> usize {
    requests
        .iter()
        .map(|(_, t)| {
            requests
                .iter()
                .filter(|(sent, answered)| *sent < *t + window && *answered >= *t)
                .count()
        })
        .max()
        .unwrap_or(0)
}
