//! Fault-injection switches that tests flip through `Emulator` (fail the next N requests,
//! random error rate, latency, truncated / malformed / wrong-shape 200 bodies, Retry-After,
//! X-RateLimit-Reset on/off, clock skew). The request pipeline in `server.rs` consults them.

use std::sync::Mutex;
use std::time::Duration;

/// Which way the next 200 body is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFault {
    /// Full `Content-Length` announced, about half the bytes sent, then the connection is
    /// closed (what an interrupted transfer looks like to reqwest: a body read error).
    Truncate,
    /// Complete response whose body is not valid JSON.
    Malformed,
    /// Valid JSON envelope whose `result` has the wrong type (object for lists, array otherwise).
    WrongShape,
}

#[derive(Debug)]
struct State {
    fail_next: u32,
    fail_next_status: u16,
    error_rate: f64,
    error_rate_status: u16,
    rng: fastrand::Rng,
    latency: Duration,
    truncate: u32,
    malformed: u32,
    wrong_shape: u32,
    retry_after: bool,
    reset_header: bool,
    skew_ms: i64,
}

/// All switches behind one lock; every method is cheap.
#[derive(Debug)]
pub(crate) struct Faults(Mutex<State>);

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Faults(Mutex::new(State {
            fail_next: 0,
            fail_next_status: 500,
            error_rate: 0.0,
            error_rate_status: 500,
            rng: fastrand::Rng::with_seed(seed ^ 0xFA17_5EED),
            latency: Duration::ZERO,
            truncate: 0,
            malformed: 0,
            wrong_shape: 0,
            retry_after: false,
            reset_header: true,
            skew_ms: 0,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn fail_next(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.fail_next = n;
        s.fail_next_status = status;
    }

    pub(crate) fn set_error_rate(&self, rate: f64, status: u16) {
        let mut s = self.lock();
        s.error_rate = rate.clamp(0.0, 1.0);
        s.error_rate_status = status;
    }

    /// The status an injected failure should answer this request with, if any.
    pub(crate) fn take_failure(&self) -> Option<u16> {
        let mut s = self.lock();
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return Some(s.fail_next_status);
        }
        if s.error_rate > 0.0 && s.rng.f64() < s.error_rate {
            return Some(s.error_rate_status);
        }
        None
    }

    pub(crate) fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    pub(crate) fn add_body_fault(&self, f: BodyFault) {
        let mut s = self.lock();
        match f {
            BodyFault::Truncate => s.truncate += 1,
            BodyFault::Malformed => s.malformed += 1,
            BodyFault::WrongShape => s.wrong_shape += 1,
        }
    }

    /// Takes one pending body fault for a 200 response (malformed, wrong shape, truncate).
    pub(crate) fn take_body_fault(&self) -> Option<BodyFault> {
        let mut s = self.lock();
        if s.malformed > 0 {
            s.malformed -= 1;
            Some(BodyFault::Malformed)
        } else if s.wrong_shape > 0 {
            s.wrong_shape -= 1;
            Some(BodyFault::WrongShape)
        } else if s.truncate > 0 {
            s.truncate -= 1;
            Some(BodyFault::Truncate)
        } else {
            None
        }
    }

    pub(crate) fn set_retry_after(&self, on: bool) {
        self.lock().retry_after = on;
    }

    pub(crate) fn set_reset_header(&self, on: bool) {
        self.lock().reset_header = on;
    }

    pub(crate) fn reset_header(&self) -> bool {
        self.lock().reset_header
    }

    pub(crate) fn retry_after(&self) -> bool {
        self.lock().retry_after
    }

    pub(crate) fn set_skew_ms(&self, ms: i64) {
        self.lock().skew_ms = ms;
    }

    pub(crate) fn skew_ms(&self) -> i64 {
        self.lock().skew_ms
    }
}
