//! `RateLimiter`: the one sliding-window log every request of a `Client` passes through, so that
//! no rolling `window` ever holds more than `max` sends (the vendor counts 10 requests per 10 s
//! per key), plus a shared "blocked until" instant set after a 429 so that no caller hammers a
//! key the API has already limited. Uses `tokio::time`, so paused-clock tests drive it.

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until};

/// A sliding-window log of send instants (not a refilling token bucket: a bucket allows a burst
/// of `max` right after a window's worth of sends, i.e. up to 2×`max` in one rolling window).
pub struct RateLimiter {
    max: usize,
    window: Duration,
    /// Send instants inside the current window, oldest first. The async mutex is fair (FIFO),
    /// so waiters are served in arrival order; the head waiter sleeps while holding it.
    sends: Mutex<VecDeque<Instant>>,
    /// No send before this instant (set from a 429's reset). A plain mutex: never held across
    /// an await, so a 429 handler can extend it while a waiter sleeps on `sends`.
    blocked_until: StdMutex<Option<Instant>>,
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
    /// Waiting for the window to make room.
    pub limiter: Duration,
    /// Waiting out a 429 reset.
    pub reset: Duration,
}

impl RateLimiter {
    /// At most `max` sends (at least 1) in any rolling `window`.
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        let max = (max as usize).max(1);
        RateLimiter {
            max,
            window,
            sends: Mutex::new(VecDeque::with_capacity(max)),
            blocked_until: StdMutex::new(None),
        }
    }

    /// Waits until a send is allowed, then records it (the caller must send right away).
    /// Cancel-safe: a dropped future records nothing.
    pub async fn acquire(&self) -> Waited {
        let mut waited = Waited::default();
        let mut sends = self.sends.lock().await;
        loop {
            let now = Instant::now();
            if let Some(until) = self.blocked_until().filter(|u| *u > now) {
                sleep_until(until).await;
                waited.reset += until - now;
                continue;
            }
            while sends.front().is_some_and(|t| *t + self.window <= now) {
                sends.pop_front();
            }
            match sends.front() {
                Some(oldest) if sends.len() >= self.max => {
                    let until = *oldest + self.window;
                    sleep_until(until).await;
                    waited.limiter += until - now;
                }
                _ => {
                    sends.push_back(now);
                    return waited;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_never_exceed_max_in_any_window() {
        let limiter = Arc::new(RateLimiter::new(4, Duration::from_secs(10)));
        let times = Arc::new(StdMutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for task in 0..6u64 {
            let (limiter, times) = (limiter.clone(), times.clone());
            tasks.push(tokio::spawn(async move {
                for call in 0..7u64 {
                    // Uneven pacing so callers interleave differently.
                    tokio::time::sleep(Duration::from_millis((task * 37 + call * 13) % 700)).await;
                    limiter.acquire().await;
                    times.lock().unwrap().push(Instant::now());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let times = times.lock().unwrap().clone();
        assert_eq!(times.len(), 42);
        assert_eq!(max_in_any_window(&times, Duration::from_secs(10)), 4);
        // And the limiter is not needlessly slow: 42 sends at 4 per 10 s take ~100 s.
        let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
        assert!(span <= Duration::from_secs(101), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_holds_every_caller_and_is_reported_as_reset_wait() {
        let limiter = RateLimiter::new(10, Duration::from_secs(10));
        let start = Instant::now();
        limiter.block_until(start + Duration::from_secs(5));
        limiter.block_until(start + Duration::from_secs(2)); // never shortens
        let waited = limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        assert_eq!(waited.reset, Duration::from_secs(5));
        assert_eq!(waited.limiter, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn full_window_waits_for_the_oldest_send_to_leave() {
        let limiter = RateLimiter::new(2, Duration::from_secs(10));
        let start = Instant::now();
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        limiter.acquire().await;
        let waited = limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
        assert_eq!(waited.limiter, Duration::from_secs(7));
        let waited = limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(13));
        assert_eq!(waited.limiter, Duration::from_secs(3));
    }
}
