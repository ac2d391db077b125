//! The gauge refresh loop: outbox size by kind, state file size, cursor lag and each sink's
//! backlog, recomputed from the store between polls and deliveries; and handing freed memory
//! back to the OS after each round, and the executable's pages a moment after each round of
//! polls.

use std::sync::Arc;
use std::time::Duration;

use super::Pipeline;
use crate::dispatch;
use crate::event::EventKind;
use crate::footprint;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::poller::activities;
use crate::store::Store;

/// Keeps the gauges that describe stored state true between polls and deliveries: outbox
/// size by kind, state file size, cursor lag (grows while polls fail), each sink's backlog and
/// oldest undelivered age (grow while a sink is stuck in retries).
pub(super) struct Refresh {
    store: Store,
    metrics: Arc<Metrics>,
    orgs: Vec<String>,
    sinks: Vec<String>,
    health: Arc<Health>,
    /// When the executable's pages are first released: after the first poll round, when the
    /// startup code has run and will not run again. From then on, after each poll round.
    settle: Duration,
}

impl Refresh {
    /// The refresh of `p`'s configuration, and how often it runs: often enough that cursor
    /// lag and backlog move between polls, never busier than 1/s.
    pub(super) fn new(p: &Pipeline) -> (Refresh, Duration) {
        let refresh = Refresh {
            store: p.store.clone(),
            metrics: p.metrics.clone(),
            orgs: if p.cfg.activities.enabled {
                p.orgs.clone()
            } else {
                Vec::new()
            },
            sinks: p.sink_names(),
            health: p.health.clone(),
            settle: p.cfg.activities.interval.max(Duration::from_secs(30)),
        };
        let every = p
            .cfg
            .activities
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(15));
        (refresh, every)
    }

    pub(super) async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Per-kind outbox counts scan the table, so they are recounted only when the outbox
        // changed (new events or a prune) and at most every 10 s: an idle daemon never scans.
        let mut counted: Option<(i64, u64, tokio::time::Instant)> = None;
        let mut page_out = PageOut::new(tokio::time::Instant::now() + self.settle);
        loop {
            let release_at = page_out.release_at();
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.health.poll_ended() => {
                    page_out.poll_ended(tokio::time::Instant::now());
                    continue;
                }
                _ = tokio::time::sleep_until(release_at.unwrap_or_else(tokio::time::Instant::now)), if release_at.is_some() => {
                    page_out.grace_over();
                }
            }
            // A tick, or the grace after a round is over. The round's gauges (and its outbox
            // count) before the release: code touched after it stays resident until the next
            // round (a count at the next tick brought back 2 MiB of it).
            self.refresh(&mut counted).await;
            footprint::release_freed_memory();
            self.release_pages(&mut page_out);
        }
    }

    /// Recomputes the gauges; the per-kind outbox counts only when the outbox changed since
    /// they were last counted (`counted`: max seq, pruned total, when) and 10 s have passed.
    async fn refresh(&self, counted: &mut Option<(i64, u64, tokio::time::Instant)>) {
        let seq = self.store.max_seq().await.unwrap_or(0);
        let pruned = self.metrics.state_pruned_events.get();
        let due = match *counted {
            None => true,
            Some((s, p, at)) => (s, p) != (seq, pruned) && at.elapsed() >= Duration::from_secs(10),
        };
        self.once(due).await;
        if due {
            *counted = Some((seq, pruned, tokio::time::Instant::now()));
        }
    }

    /// A poll round touches a few MiB of code (HTTP, TLS, JSON, SQLite) that then sits idle
    /// until the next one: released after each round (a short grace after its last poll
    /// ended, or at the next tick), the idle resident set stays the refresh's own (issue 17).
    fn release_pages(&self, page_out: &mut PageOut) {
        let polls = self.health.polls_ended();
        if page_out.due(tokio::time::Instant::now(), polls) {
            let bytes = footprint::page_out_executable();
            tracing::debug!(bytes, polls, "released the executable's resident pages");
        }
    }

    async fn once(&self, count_kinds: bool) {
        let m = &self.metrics;
        m.state_db_bytes.set(self.store.size_bytes() as i64);
        if count_kinds {
            match self.store.counts_by_kind().await {
                Ok(counts) => {
                    for kind in [
                        EventKind::Activity,
                        EventKind::Inventory,
                        EventKind::Finding,
                    ] {
                        let n = counts
                            .iter()
                            .find(|(k, _)| k == kind.as_str())
                            .map_or(0, |(_, n)| *n);
                        m.outbox_events.with_label_values(&[kind.as_str()]).set(n);
                    }
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "reading outbox counts failed"),
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        for org in &self.orgs {
            if let Ok(Some(c)) = self.store.cursor(org, activities::STREAM).await {
                m.cursor_timestamp
                    .with_label_values(&[org])
                    .set(c.cursor_ms as f64 / 1000.0);
                m.cursor_lag
                    .with_label_values(&[org])
                    .set((now_ms - c.cursor_ms) as f64 / 1000.0);
            }
        }
        for sink in &self.sinks {
            let Ok(position) = self.store.position(sink).await else {
                continue;
            };
            if let Ok((count, oldest)) = self.store.backlog(position).await {
                dispatch::set_backlog_gauges(m, sink, count, oldest.as_deref());
            }
        }
    }
}

/// How long after a poll cycle ends the executable's pages are released: the sinks deliver
/// what it stored meanwhile, and the other streams of the round end (a later end restarts it).
const PAGE_OUT_GRACE: Duration = Duration::from_secs(2);

/// When the refresh releases the executable's pages: once settled, `PAGE_OUT_GRACE` after each
/// round of polls, else at the first tick after it (a tick without a poll ended since the last
/// release does nothing, so an idle daemon reads back only what the refresh itself runs).
struct PageOut {
    settled_at: tokio::time::Instant,
    /// `Health::polls_ended` at the last release.
    released_after: Option<u64>,
    /// When the grace after the last poll end is over, while one runs.
    grace_until: Option<tokio::time::Instant>,
}

impl PageOut {
    fn new(settled_at: tokio::time::Instant) -> PageOut {
        PageOut {
            settled_at,
            released_after: None,
            grace_until: None,
        }
    }

    /// A poll cycle ended at `now`: release `PAGE_OUT_GRACE` later.
    fn poll_ended(&mut self, now: tokio::time::Instant) {
        self.grace_until = Some(now + PAGE_OUT_GRACE);
    }

    /// When to release next without waiting for a tick.
    fn release_at(&self) -> Option<tokio::time::Instant> {
        self.grace_until
    }

    /// The grace ran out (released or not: before settling, the tick releases later).
    fn grace_over(&mut self) {
        self.grace_until = None;
    }

    /// Whether to release now, `polls` poll cycles having ended so far; records it if so.
    fn due(&mut self, now: tokio::time::Instant, polls: u64) -> bool {
        if now < self.settled_at || self.released_after == Some(polls) {
            return false;
        }
        self.released_after = Some(polls);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_released_once_settled_then_after_each_round_of_polls() {
        let t0 = tokio::time::Instant::now();
        let s = Duration::from_secs(15);
        let mut p = PageOut::new(t0 + 4 * s);
        assert!(!p.due(t0 + 3 * s, 1), "not before the first round settled");
        assert!(p.due(t0 + 4 * s, 1));
        assert!(!p.due(t0 + 5 * s, 1), "no poll since: nothing to release");
        assert!(p.due(t0 + 6 * s, 4), "a round of three polls ended");
        assert!(!p.due(t0 + 7 * s, 4));
    }

    #[test]
    fn a_poll_end_schedules_a_release_after_the_grace_and_a_later_end_restarts_it() {
        let t0 = tokio::time::Instant::now();
        let mut p = PageOut::new(t0);
        assert_eq!(
            p.release_at(),
            None,
            "nothing ended: only the tick releases"
        );
        p.poll_ended(t0 + Duration::from_secs(60));
        assert_eq!(p.release_at(), Some(t0 + Duration::from_secs(62)));
        p.poll_ended(t0 + Duration::from_secs(61));
        assert_eq!(
            p.release_at(),
            Some(t0 + Duration::from_secs(63)),
            "the round's last end counts"
        );
        p.grace_over();
        assert_eq!(p.release_at(), None);
        assert!(p.due(t0 + Duration::from_secs(63), 2));
    }
}
