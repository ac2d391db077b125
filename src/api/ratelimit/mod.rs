//! `RateLimiter`: the one sliding-window log every request of a `Client` passes through, so that
//! the server never sees more than `max` requests arrive in any rolling `window` (the vendor
//! counts 10 requests per 10 s per key), plus a shared "blocked until" instant set after a 429
//! so that no caller hammers a key the API has already limited. A slot is held from the send
//! until the answer arrives and then for one more `window` counted from that answer: arrival at
//! the server lies somewhere between the two, so counting from the answer is the conservative
//! end. Two priorities share the window; `Low` (background sweeps) always leaves one slot for
//! `Normal`. Uses `tokio::time`, so paused-clock tests drive it.
//!
//! Files: `mod.rs` (the window and its queues), `permit.rs` (`Priority`, the `Permit` a caller
//! holds while its request is in flight, `Waited`), `tests.rs`.

mod permit;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, Notify};
use tokio::time::{Instant, sleep_until};

use permit::NormalWaiting;
pub use permit::{Permit, Priority, Waited};

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

    /// The budget: at most this many requests in any rolling window of this length.
    pub fn budget(&self) -> (usize, Duration) {
        (self.max, self.window)
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
