//! Live activity: while serving with `rate_per_min > 0`, adds activities at that average rate
//! per org (exponential gaps, so bursts happen) with `createdAt` = now and visibility delayed by
//! up to `max_visibility_delay`, so clients see late arrivals. Stops on shutdown, or after
//! `live_for` while the server keeps answering.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Inner;

pub(crate) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let orgs = inner.org_ids.clone();
    let per_min = inner.opts.rate_per_min * orgs.len() as f64;
    if orgs.is_empty() || per_min <= 0.0 || !per_min.is_finite() {
        return;
    }
    let mean_secs = 60.0 / per_min;
    let mut rng = fastrand::Rng::with_seed(inner.opts.seed ^ 0x11FE_6E4E);
    let start = Instant::now();
    let stop = inner.opts.live_for.map(|d| start + d);
    // Each gap is added to a running deadline instead of slept on its own: tokio rounds every
    // sleep up to the next millisecond, which cut the generated rate by a third at 1,000/s
    // (soak run, issue 8).
    let mut next = start;
    loop {
        let gap = -mean_secs * (1.0 - rng.f64()).ln();
        next += Duration::from_secs_f64(gap.min(3600.0));
        if stop.is_some_and(|s| next > s) {
            tracing::info!(
                after = ?inner.opts.live_for.unwrap_or_default(),
                "emulator: live generation stopped; still serving"
            );
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let org = &orgs[rng.usize(..orgs.len())];
        inner.add_live_activity(org, &mut rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::EmulatorOptions;

    #[tokio::test(start_paused = true)]
    async fn live_generation_keeps_its_rate_and_stops_after_live_for() {
        let inner = Arc::new(Inner::new(EmulatorOptions {
            history_events_per_day: 0,
            rate_per_min: 60_000.0, // 1,000/s: gaps of 1 ms on average
            live_for: Some(Duration::from_secs(10)),
            ..EmulatorOptions::default()
        }));
        let org = inner.org_ids[0].clone();
        let count = || inner.with_log(&org, |l| l.len()).unwrap_or(0);
        let before = count();
        tokio::time::timeout(
            Duration::from_secs(11),
            run(Arc::clone(&inner), CancellationToken::new()),
        )
        .await
        .expect("live generation ends by itself after live_for");
        let made = count() - before;
        // Poisson with mean 10,000 (sd 100); a sleep per gap made about 6,400.
        assert!((9_500..=10_500).contains(&made), "generated {made}");
    }
}
