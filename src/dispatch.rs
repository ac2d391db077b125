//! Delivery: one task per sink. It reads the next batch after its own position in the outbox,
//! delivers it, and only then commits the position — so a crash re-delivers at most that batch.
//! Failures retry with capped exponential backoff + equal jitter (`retry`; rejections at the cap); a
//! failing sink never blocks polling or other sinks. Pollers wake sinks via a `watch` of the
//! highest stored seq, so nothing polls SQLite in a loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::sinks::{Sink, SinkError};
use crate::store::Store;

/// While a sink is behind, its backlog gauges are refreshed at most this often.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// How a sink task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The daemon: wait for new events until cancelled.
    Follow,
    /// `once`: deliver everything stored, then stop; give up after `give_up_after` of
    /// continuous failure, and at once when the destination refuses the credentials or the
    /// data (`SinkError::Unauthorized`/`Rejected`: waiting will not help).
    Drain { give_up_after: Duration },
}

/// Retry timing of a failing sink: `retry::Backoff` with equal jitter (at least half of each
/// step), 0.5 s doubling to `daemon.sink_max_backoff` by default.
pub use crate::retry::Backoff;

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(60),
            crate::retry::Jitter::Equal,
        )
    }
}

/// Why a sink task stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("sink {sink}: {error}")]
    Fatal { sink: String, error: String },
    #[error("sink {sink}: still failing after {secs} s: {error}")]
    GaveUp {
        sink: String,
        secs: u64,
        error: String,
    },
    /// `once` only: the destination refused the credentials or the batch.
    #[error("sink {sink}: {error}")]
    Refused { sink: String, error: String },
    #[error("sink {sink}: state error: {error:#}")]
    State { sink: String, error: anyhow::Error },
}

/// One sink's delivery loop and what it needs.
pub struct SinkTask {
    pub name: String,
    pub sink: Box<dyn Sink>,
    pub batch_max_events: usize,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub backoff: Backoff,
    /// Highest stored seq, bumped by pollers.
    pub wake: watch::Receiver<i64>,
    /// Bumped on SIGHUP: reopen files.
    pub reopen: watch::Receiver<u64>,
    /// Wait up to this long for a partial batch to fill (webhook `batch_timeout`): fewer,
    /// fuller requests. None = deliver what is there at once.
    pub batch_timeout: Option<Duration>,
    /// Drain mode only: keep waiting for new events until this is cancelled (the pollers of
    /// `once` are done), so delivery overlaps polling instead of following it.
    pub producers_done: Option<CancellationToken>,
}

impl SinkTask {
    /// Runs until cancelled (Follow) or drained (Drain). On cancel the batch in hand is finished
    /// (or abandoned while backing off: it stays in the outbox and is delivered next start).
    pub async fn run(mut self, mode: Mode, token: CancellationToken) -> Result<u64, DispatchError> {
        let state_err = |name: &str, error| DispatchError::State {
            sink: name.to_string(),
            error,
        };
        let mut position = self
            .store
            .position(&self.name)
            .await
            .map_err(|e| state_err(&self.name, e))?;
        let mut delivered = 0u64;
        self.update_backlog(position).await;
        // The batch after the one just delivered, read while its position was committed.
        let mut next: Option<(Vec<Event>, bool)> = None;
        let mut backlog_at = tokio::time::Instant::now();
        loop {
            if self.reopen.has_changed().unwrap_or(false) {
                self.reopen.borrow_and_update();
                self.sink.reopen();
            }
            // Whether producers still ran when the batch was read: only a read begun after
            // they all ended proves, by being empty, that a drain is done.
            let (batch, producing) = match next.take() {
                Some(read) => read,
                None => {
                    let producing = self.producing();
                    let batch = self
                        .store
                        .read_batch(position, self.batch_max_events)
                        .await
                        .map_err(|e| state_err(&self.name, e))?;
                    (batch, producing)
                }
            };
            if batch.is_empty() {
                if (matches!(mode, Mode::Drain { .. }) && !producing) || token.is_cancelled() {
                    break;
                }
                let producing = self.producing();
                if !producing && matches!(mode, Mode::Drain { .. }) {
                    continue; // they ended after the read: read once more
                }
                let done = self.producers_done.clone().unwrap_or_default();
                tokio::select! {
                    _ = token.cancelled() => break,
                    r = self.wake.changed() => if r.is_err() { break },
                    _ = self.reopen.changed() => {}
                    _ = done.cancelled(), if producing => {}
                }
                continue;
            }
            let batch = self
                .fill(batch, mode, &token)
                .await
                .map_err(|e| state_err(&self.name, e))?;
            let Some(last) = batch.last().map(|e| e.seq) else {
                continue;
            };
            if !self.deliver_with_retry(&batch, mode, &token).await? {
                break; // cancelled while backing off: the batch stays for next time
            }
            // The next batch is read while this position commits (another connection, and a
            // commit may wait for the poller's write lock); it is delivered only after the
            // commit, so a crash still re-delivers at most one batch.
            let producing = self.producing();
            let (committed, read) = tokio::join!(
                self.store.commit_position(&self.name, last),
                self.store.read_batch(last, self.batch_max_events)
            );
            committed.map_err(|e| state_err(&self.name, e))?;
            let read = read.map_err(|e| state_err(&self.name, e))?;
            position = last;
            delivered += batch.len() as u64;
            // The gauges are refreshed when caught up, and at most once a second while
            // behind (two queries a batch were a backfill's cost; the daemon refreshes them
            // too).
            if read.len() < self.batch_max_events || backlog_at.elapsed() >= BACKLOG_EVERY {
                self.update_backlog(position).await;
                backlog_at = tokio::time::Instant::now();
            }
            next = Some((read, producing));
            if token.is_cancelled() && matches!(mode, Mode::Follow) {
                break;
            }
        }
        if let Err(e) = self.sink.flush().await {
            tracing::warn!(sink = %self.name, error = %e, "flush on shutdown failed");
        }
        Ok(delivered)
    }

    /// Whether the producers of a drain (`once`'s pollers) are still running.
    fn producing(&self) -> bool {
        self.producers_done
            .as_ref()
            .is_some_and(|t| !t.is_cancelled())
    }

    /// Tops up a partial batch for at most `batch_timeout` while new events keep arriving
    /// (following mode only; draining and shutdown deliver what is there).
    async fn fill(
        &mut self,
        mut batch: Vec<Event>,
        mode: Mode,
        token: &CancellationToken,
    ) -> anyhow::Result<Vec<Event>> {
        let Some(timeout) = self.batch_timeout.filter(|_| mode == Mode::Follow) else {
            return Ok(batch);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while batch.len() < self.batch_max_events && !token.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = token.cancelled() => break,
                r = self.wake.changed() => if r.is_err() { break },
            }
            let after = batch.last().map_or(0, |e| e.seq);
            let more = self
                .store
                .read_batch(after, self.batch_max_events - batch.len())
                .await?;
            batch.extend(more);
        }
        Ok(batch)
    }

    /// Delivers `batch` until it succeeds. Returns false if cancelled while waiting to retry.
    async fn deliver_with_retry(
        &mut self,
        batch: &[Event],
        mode: Mode,
        token: &CancellationToken,
    ) -> Result<bool, DispatchError> {
        let mut attempt = 0u32;
        let first_failure = Instant::now();
        loop {
            let started = Instant::now();
            let err = match self.sink.deliver(batch).await {
                Ok(()) => {
                    self.record_success(batch.len(), started.elapsed());
                    return Ok(true);
                }
                Err(e) => e,
            };
            self.metrics
                .sink_failures
                .with_label_values(&[&self.name, err.kind()])
                .inc();
            let delay = match &err {
                SinkError::Fatal(msg) => {
                    tracing::error!(sink = %self.name, error = %msg, "sink stopped; other sinks and polling go on");
                    self.health.sink_stopped(&self.name, msg.clone());
                    return Err(DispatchError::Fatal {
                        sink: self.name.clone(),
                        error: msg.clone(),
                    });
                }
                SinkError::Rejected(msg) => {
                    tracing::error!(sink = %self.name, events = batch.len(), error = %msg, "receiver rejected the batch; keeping it and retrying at the maximum backoff");
                    self.backoff.max
                }
                SinkError::Unauthorized(msg) => {
                    tracing::error!(sink = %self.name, error = %msg, "destination refused the credentials; fix them — retrying at the maximum backoff");
                    self.backoff.max
                }
                SinkError::Transient {
                    message,
                    retry_after,
                } => {
                    let d = retry_after
                        .unwrap_or_else(|| self.backoff.delay(attempt))
                        .min(self.backoff.max.max(Duration::from_secs(1)) * 5);
                    tracing::warn!(sink = %self.name, attempt, retry_in_ms = d.as_millis() as u64, error = %message, "delivery failed; will retry");
                    d
                }
            };
            self.health
                .sink_failed(&self.name, err.kind(), err.to_string());
            if matches!(mode, Mode::Drain { .. })
                && matches!(err, SinkError::Unauthorized(_) | SinkError::Rejected(_))
            {
                return Err(DispatchError::Refused {
                    sink: self.name.clone(),
                    error: err.to_string(),
                });
            }
            if let Mode::Drain { give_up_after } = mode
                && first_failure.elapsed() + delay > give_up_after
            {
                {
                    return Err(DispatchError::GaveUp {
                        sink: self.name.clone(),
                        secs: first_failure.elapsed().as_secs(),
                        error: err.to_string(),
                    });
                }
            }
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = token.cancelled() => return Ok(false),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn record_success(&self, events: usize, took: Duration) {
        let name = &self.name;
        self.metrics
            .sink_events_delivered
            .with_label_values(&[name])
            .inc_by(events as u64);
        self.metrics
            .sink_batches_delivered
            .with_label_values(&[name])
            .inc();
        self.metrics
            .sink_delivery_duration
            .with_label_values(&[name])
            .observe(took.as_secs_f64());
        self.metrics
            .sink_last_success
            .with_label_values(&[name])
            .set(chrono::Utc::now().timestamp() as f64);
        self.health.sink_ok(name);
    }

    async fn update_backlog(&self, position: i64) {
        if let Ok((count, oldest)) = self.store.backlog(position).await {
            set_backlog_gauges(&self.metrics, &self.name, count, oldest.as_deref());
        }
    }
}

/// Sets `sink_backlog_events` and `sink_oldest_undelivered_age_seconds` of `sink` from the
/// outbox's answer (`oldest`: `observed_at` of the oldest undelivered event). Used after each
/// delivery and by the daemon's periodic refresh, so a stuck sink's backlog keeps growing.
pub fn set_backlog_gauges(metrics: &Metrics, sink: &str, count: i64, oldest: Option<&str>) {
    metrics.sink_backlog.with_label_values(&[sink]).set(count);
    let age = oldest
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (chrono::Utc::now() - t.to_utc()).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics
        .sink_oldest_undelivered_age
        .with_label_values(&[sink])
        .set(age.max(0.0));
}

#[cfg(test)]
mod tests;
