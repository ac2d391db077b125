//! Per-key sliding-window rate limiter (the documented "10 requests over a 10-second window",
//! API notes §2.3). Owned by `Inner`; the request pipeline in `server.rs` calls `check` once per
//! authenticated request.
//!
//! Semantics: a request admitted at `t` occupies a slot during `[t, t + window)`, so any
//! half-open interval of length `window` contains at most `limit` admitted requests. A
//! rejected request (the 429 itself) takes no slot, so waiting the returned duration always
//! frees one. Uses `tokio::time::Instant` so tests running on paused time see a consistent clock.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Sliding-window log of admitted request times, per key id.
#[derive(Debug)]
pub(crate) struct SlidingWindow {
    limit: u32,
    window: Duration,
    hits: HashMap<String, VecDeque<Instant>>,
}

impl SlidingWindow {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        SlidingWindow {
            limit,
            window,
            hits: HashMap::new(),
        }
    }

    /// Admits the request at `now` or says how long until a slot frees.
    ///
    /// # Errors
    /// `Err(wait)`: the key already has `limit` requests inside the window ending at `now`;
    /// `wait` is when the oldest of them leaves the window.
    pub(crate) fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Err(self.window);
        }
        let q = self.hits.entry(key.to_owned()).or_default();
        while let Some(&front) = q.front() {
            if now.saturating_duration_since(front) >= self.window {
                q.pop_front();
            } else {
                break;
            }
        }
        if q.len() < self.limit as usize {
            q.push_back(now);
            return Ok(());
        }
        let oldest = *q.front().expect("queue holds `limit` > 0 entries");
        Err((oldest + self.window).saturating_duration_since(now))
    }

    /// Time until the key could make its next request (zero if it could now).
    pub(crate) fn wait_for(&self, key: &str, now: Instant) -> Duration {
        let Some(q) = self.hits.get(key) else {
            return Duration::ZERO;
        };
        let live: Vec<_> = q
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.window)
            .collect();
        if live.len() < self.limit as usize {
            return Duration::ZERO;
        }
        (*live[0] + self.window).saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    #[test]
    fn eleventh_request_in_the_window_is_refused_with_time_to_free_slot() {
        let t0 = Instant::now();
        let mut rl = SlidingWindow::new(10, W);
        for i in 0..10 {
            assert!(rl.check("k", t0 + Duration::from_millis(i * 100)).is_ok());
        }
        let wait = rl.check("k", t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(5));
        // Exactly when the first slot frees, one more request fits, and only one.
        assert!(rl.check("k", t0 + W).is_ok());
        let wait = rl.check("k", t0 + W).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let mut rl = SlidingWindow::new(1, W);
        assert!(rl.check("a", t0).is_ok());
        assert!(rl.check("b", t0).is_ok());
        assert!(rl.check("a", t0).is_err());
    }

    #[test]
    fn never_more_than_limit_in_any_window() {
        // Requests every 300 ms for a minute against 4 per 2 s: check every window.
        let t0 = Instant::now();
        let mut rl = SlidingWindow::new(4, Duration::from_secs(2));
        let admitted: Vec<Instant> = (0..200)
            .map(|i| t0 + Duration::from_millis(i * 300))
            .filter(|t| rl.check("k", *t).is_ok())
            .collect();
        assert!(admitted.len() > 100, "throughput should approach the limit");
        for (i, start) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(2))
                .count();
            assert!(in_window <= 4);
        }
    }

    #[test]
    fn rejected_requests_take_no_slot_and_wait_for_reports_it() {
        let t0 = Instant::now();
        let mut rl = SlidingWindow::new(2, W);
        assert!(rl.check("k", t0).is_ok());
        assert!(rl.check("k", t0 + Duration::from_secs(1)).is_ok());
        for s in 2..9 {
            assert!(rl.check("k", t0 + Duration::from_secs(s)).is_err());
        }
        assert_eq!(
            rl.wait_for("k", t0 + Duration::from_secs(9)),
            Duration::from_secs(1)
        );
        assert!(rl.check("k", t0 + W).is_ok());
        assert_eq!(rl.wait_for("other", t0), Duration::ZERO);
    }
}
