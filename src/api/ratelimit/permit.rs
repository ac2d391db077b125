//! What a caller of the `RateLimiter` names and holds: its `Priority`, the `Permit` (one slot,
//! stamped with the answer's arrival when dropped) with how long it `Waited`, and the guard
//! that counts a `Normal` caller as waiting (which holds `Low` callers back).

use std::time::Duration;

use tokio::time::Instant;

use super::RateLimiter;

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
    pub(super) limiter: &'a RateLimiter,
    pub(super) waited: Waited,
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
pub(super) struct NormalWaiting<'a>(&'a RateLimiter);

impl<'a> NormalWaiting<'a> {
    pub(super) fn enter(limiter: &'a RateLimiter) -> Self {
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
