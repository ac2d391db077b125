//! Live activity: while serving with `rate_per_min > 0`, adds activities at that average rate
//! per org (exponential gaps, so bursts happen) with `createdAt` = now and visibility delayed by
//! up to `max_visibility_delay`, so clients see late arrivals. Stops on shutdown.

use std::sync::Arc;
use std::time::Duration;
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
    loop {
        let gap = -mean_secs * (1.0 - rng.f64()).ln();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs_f64(gap.min(3600.0))) => {}
        }
        let org = &orgs[rng.usize(..orgs.len())];
        inner.add_live_activity(org, &mut rng);
    }
}
