//! Waiting on a condition, never on time: `wait_until` polls a condition until it holds or a
//! deadline passes, then fails naming what never happened. Deadlines are real time
//! (`std::time::Instant`), so a test on a paused tokio clock may still wait for real I/O; the
//! poll interval is a tokio sleep, which such a test skips through.

use std::time::{Duration, Instant};

/// Generous: the machine runs several test binaries on 2 cores.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it answers `Some`, for up to `within`; `None` when the deadline passed
/// first (for callers with their own failure message).
pub async fn poll_until<T>(within: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `f` until it answers `Some`, for up to `within`; panics "timed out after … waiting
/// for `what`" otherwise.
pub async fn wait_until<T>(what: &str, within: Duration, f: impl AsyncFnMut() -> Option<T>) -> T {
    poll_until(within, f)
        .await
        .unwrap_or_else(|| panic!("timed out after {within:?} waiting for {what}"))
}

/// [`wait_until`] with [`PATIENCE`].
pub async fn eventually<T>(what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
    wait_until(what, PATIENCE, f).await
}

/// [`eventually`] for a plain condition.
pub async fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    eventually(what, async || cond().then_some(())).await
}

/// [`poll_until`] for code outside a runtime (a thread that owns a server process).
pub fn poll_until_blocking<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
