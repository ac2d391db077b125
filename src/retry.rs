//! The one retry backoff: capped exponential growth with a named jitter mode. The API client
//! (full jitter: many callers of one key spread out), dispatch (equal jitter: a failing sink
//! waits at least half the step, so a dead receiver is not hammered) and Splunk's
//! acknowledgement polls (no jitter: a fixed, quick ladder) all take their waits from here.
//! How long a server asks to wait (`Retry-After`) is read in `http::retry_after`.

use std::time::Duration;

/// How a wait is spread below its step `s = initial · 2^attempt` (capped at `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, s]` ("full jitter", AWS Architecture Blog, 2015): least contention.
    Full,
    /// Uniform in `[s/2, s]` ("equal jitter"): never less than half the step.
    Equal,
    /// Exactly `s`.
    None,
}

/// Capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The step of the first retry (`attempt` 0).
    pub initial: Duration,
    /// No step grows past this.
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration, jitter: Jitter) -> Self {
        Backoff {
            initial,
            max,
            jitter,
        }
    }

    /// The step of retry `attempt` (0-based): `initial · 2^attempt`, capped at `max`.
    pub fn step(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max)
    }

    /// How long to wait before retry `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let step = self.step(attempt);
        match self.jitter {
            Jitter::Full => step.mul_f64(fastrand::f64()),
            Jitter::Equal => step.mul_f64(0.5 + fastrand::f64() * 0.5),
            Jitter::None => step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn steps_double_up_to_the_cap() {
        let b = Backoff::new(500 * MS, 4000 * MS, Jitter::None);
        let steps: Vec<_> = (0..6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(steps, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(b.step(u32::MAX), 4000 * MS, "huge attempts do not overflow");
    }

    #[test]
    fn jitter_modes_stay_in_their_ranges() {
        for _ in 0..200 {
            let full = Backoff::new(MS * 1000, MS * 1000, Jitter::Full).delay(3);
            assert!(full <= MS * 1000, "{full:?}");
            let equal = Backoff::new(MS * 1000, MS * 1000, Jitter::Equal).delay(3);
            assert!(equal >= MS * 500 && equal <= MS * 1000, "{equal:?}");
        }
    }
}
