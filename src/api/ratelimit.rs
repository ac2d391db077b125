//! `RateLimiter`: the one sliding-window log every request of a `Client` passes through, so that
//! the server never sees more than `max` requests arrive in any rolling `window` (the vendor
//! counts 10 requests per 10 s per key), plus a shared "blocked until" instant set after a 429
//! so that no caller hammers a key the API has already limited. A slot is held from the send
//! until the answer arrives and then for one more `window` counted from that answer: arrival at
//! the server lies somewhere between the two, so counting from the answer is the conservative
//! end. Two priorities share the window; `Low` (background sweeps) always leaves one slot for
//! `Normal`. Uses `tokio::time`, so paused-clock tests drive it.

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, Notify};
use tokio::time::{Instant, sleep_until};

/// Who is asking for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// The activity poller's own windows, inventory, `validate`: served first, in arrival order.
    #[default]
    Normal,
    /// Background work (reconcile sweeps): proceeds only while no `Normal` caller waits and at
    /// least one slot of the window would stay free after it, so it delays a `Normal` request
    /// by at most the one request already in flight.
    Low,
}

/// A sliding-window log of slots (not a refilling token bucket: a bucket allows a burst of
/// `max` right after a window's worth of sends, i.e. up to 2×`max` in one rolling window).
pub struct RateLimiter {
    max: usize,
    window: Duration,
    /// The slots in use. A plain mutex: never held across an await.
    slots: StdMutex<Slots>,
    /// FIFO queues (tokio's mutex is fair): the head of each holds it while it waits, so
    /// callers of one priority are served in arrival order.
    normal_queue: Mutex<()>,
    low_queue: Mutex<()>,
    /// Woken whenever a slot is released or a `Normal` caller leaves `acquire`.
    changed: Notify,
    /// No send before this instant (set from a 429's reset). A plain mutex: never held across
    /// an await, so a 429 handler can extend it while a waiter sleeps.
    blocked_until: StdMutex<Option<Instant>>,
}

/// The slots of the window.
#[derive(Debug, Default)]
struct Slots {
    /// When the answers of finished requests arrived, oldest first, while inside the window.
    answered: VecDeque<Instant>,
    /// Requests sent whose answer has not arrived: each holds its slot until it does.
    in_flight: usize,
    /// `Normal` callers inside `acquire` (queued or at the head).
    normal_waiting: usize,
}

impl Slots {
    /// Slots in use at `now`.
    fn occupied(&mut self, now: Instant, window: Duration) -> usize {
        while self.answered.front().is_some_and(|t| *t + window <= now) {
            self.answered.pop_front();
        }
        self.answered.len() + self.in_flight
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("max", &self.max)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// How long one `acquire` waited, by cause (for `api_rate_limit_wait_seconds_total{reason}`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Waited {
    /// Waiting for the window to make room (or, for `Low`, for `Normal` callers to go first).
    pub limiter: Duration,
    /// Waiting out a 429 reset.
    pub reset: Duration,
}

/// One slot of the window, held while the request is in flight. Dropping it (or `answered`)
/// records that the answer has arrived: the slot then stays taken for one `window` from now.
/// Drop it as soon as the response headers (or an error) arrive; a request abandoned mid-way
/// releases its slot the same way.
#[must_use = "the slot is released (answer stamped) when the permit is dropped"]
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
    waited: Waited,
}

impl Permit<'_> {
    /// How long `acquire` waited for this permit.
    pub fn waited(&self) -> Waited {
        self.waited
    }

    /// The answer has arrived: the slot counts from now for one more window.
    pub fn answered(self) {
        drop(self);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        {
            let mut slots = self.limiter.slots();
            slots.in_flight -= 1;
            slots.answered.push_back(now);
        }
        self.limiter.changed.notify_waiters();
    }
}

/// Counts a `Normal` caller as waiting for as long as it is inside `acquire` (cancel-safe).
struct NormalWaiting<'a>(&'a RateLimiter);

impl<'a> NormalWaiting<'a> {
    fn enter(limiter: &'a RateLimiter) -> Self {
        limiter.slots().normal_waiting += 1;
        NormalWaiting(limiter)
    }
}

impl Drop for NormalWaiting<'_> {
    fn drop(&mut self) {
        self.0.slots().normal_waiting -= 1;
        self.0.changed.notify_waiters();
    }
}

impl RateLimiter {
    /// At most `max` requests (at least 1) in any rolling `window`.
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        let max = (max as usize).max(1);
        RateLimiter {
            max,
            window,
            slots: StdMutex::new(Slots {
                answered: VecDeque::with_capacity(max),
                ..Slots::default()
            }),
            normal_queue: Mutex::new(()),
            low_queue: Mutex::new(()),
            changed: Notify::new(),
            blocked_until: StdMutex::new(None),
        }
    }

    /// Waits until a request of `priority` may be sent and takes its slot; the caller sends
    /// right away and drops the permit when the answer arrives. `Normal` callers are served
    /// in arrival order; a `Low` caller waits while any `Normal` one does and never takes the
    /// last free slot (with `max` = 1 there is nothing to reserve: it only yields to `Normal`).
    /// Cancel-safe: a dropped future takes nothing.
    pub async fn acquire(&self, priority: Priority) -> Permit<'_> {
        match priority {
            Priority::Normal => {
                let _waiting = NormalWaiting::enter(self);
                let head = self.normal_queue.lock().await;
                self.take_slot(head, |_, occupied| occupied < self.max)
                    .await
            }
            Priority::Low => {
                let reserve = usize::from(self.max > 1);
                let head = self.low_queue.lock().await;
                self.take_slot(head, |slots, occupied| {
                    slots.normal_waiting == 0 && occupied + 1 + reserve <= self.max
                })
                .await
            }
        }
    }

    /// The head of a queue: waits for a 429 block to pass and for `allowed`, then takes a slot
    /// (no await between the check and the permit, so cancellation cannot leak a slot).
    async fn take_slot(
        &self,
        _head: MutexGuard<'_, ()>,
        allowed: impl Fn(&Slots, usize) -> bool,
    ) -> Permit<'_> {
        let mut waited = Waited::default();
        loop {
            // Registered before the check, so a release between the check and the wait wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            if let Some(until) = self.blocked_until().filter(|u| *u > now) {
                sleep_until(until).await;
                waited.reset += Instant::now() - now;
                continue;
            }
            let next_expiry = {
                let mut slots = self.slots();
                let occupied = slots.occupied(now, self.window);
                if allowed(&slots, occupied) {
                    slots.in_flight += 1;
                    return Permit {
                        limiter: self,
                        waited,
                    };
                }
                slots.answered.front().map(|t| *t + self.window)
            };
            match next_expiry {
                Some(at) => {
                    tokio::select! {
                        () = sleep_until(at) => {}
                        () = &mut changed => {}
                    }
                }
                // Every slot is in flight (or a `Low` caller waits for `Normal` ones).
                None => changed.await,
            }
            waited.limiter += Instant::now() - now;
        }
    }

    /// The wall-clock times of the answers still inside the window, oldest first: what a
    /// process hands its successor so a restart does not start with a full budget the server
    /// has not refilled yet (issue 12).
    pub fn recent(&self) -> Vec<std::time::SystemTime> {
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let mut slots = self.slots();
        slots.occupied(now, self.window);
        let mut times: Vec<_> = slots.answered.iter().map(|t| wall - (now - *t)).collect();
        // Still in flight: counted as answered now.
        times.extend(std::iter::repeat_n(wall, slots.in_flight));
        times
    }

    /// Counts answers a previous process received at `times` (wall clock) as if this limiter
    /// had sent them; times in the future (a clock step) count as now.
    pub fn seed(&self, times: &[std::time::SystemTime]) {
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let mut seeded: Vec<Instant> = times
            .iter()
            .filter_map(|t| {
                let ago = wall.duration_since(*t).unwrap_or(Duration::ZERO);
                (ago < self.window).then(|| now.checked_sub(ago).unwrap_or(now))
            })
            .collect();
        if seeded.is_empty() {
            return;
        }
        let mut slots = self.slots();
        seeded.extend(slots.answered.drain(..));
        seeded.sort();
        slots.answered = seeded.into();
    }

    /// Holds every caller until `until` (a 429's reset); an earlier instant never shortens a
    /// block already in place.
    pub fn block_until(&self, until: Instant) {
        let mut b = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if b.is_none_or(|cur| cur < until) {
            *b = Some(until);
        }
    }

    fn blocked_until(&self) -> Option<Instant> {
        *self.blocked_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Test helper: the most instants of `times` that fall in one rolling `window`.
#[cfg(test)]
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
#[cfg(test)]
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

#[cfg(test)]
mod tests {
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
}

#[cfg(test)]
mod lead_tests {
    use super::*;

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
}
