//! The decode permit (issue 17): one activities answer read (streamed, decoded and stored) at
//! a time across the organizations polled through one API key. Three busy organizations
//! decoding their ~20 MB answers at once held three sets of body buffers and decoded chunks:
//! the soak's peak. Shared by the activity pollers of a key (`daemon::pipeline`); the wait is
//! counted per organization.
//!
//! The permit covers one read with its retries, which ends (request timeout, retries
//! exhausted, a failed store) or is dropped (cancel): the guard gives the permit back either
//! way, so a slow or hung organization delays the others of its key by at most one read, never
//! starves them. One permit per key, not per process: a read holds it while it waits for the
//! key's rate limiter, which the other organizations of that key would wait for anyway, but a
//! key answered 429 for minutes must not stall the organizations of other keys.

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// One permit, shared by `Arc` between the activity pollers of one API key.
#[derive(Debug)]
pub struct DecodePermit {
    sem: Semaphore,
}

impl Default for DecodePermit {
    fn default() -> Self {
        DecodePermit {
            sem: Semaphore::new(1),
        }
    }
}

impl DecodePermit {
    /// Waits for the permit and adds the seconds waited to `waited`. The permit is released
    /// when the guard is dropped: at the end of the read, on its error, or when it is
    /// cancelled.
    pub async fn acquire(&self, waited: &prometheus::Counter) -> SemaphorePermit<'_> {
        let start = Instant::now();
        let permit = self
            .sem
            .acquire()
            .await
            .expect("the decode semaphore is never closed");
        waited.inc_by(start.elapsed().as_secs_f64());
        permit
    }

    /// Whether no read holds the permit (tests).
    pub fn is_free(&self) -> bool {
        self.sem.available_permits() == 1
    }
}
