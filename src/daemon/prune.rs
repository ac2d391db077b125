//! Retention: every hour, prune the events every sink has delivered once they are older than
//! `state.retention`, and inventory tombstones past it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;

/// Prunes delivered events past retention, hourly.
pub(super) async fn prune_loop(
    store: Store,
    sinks: Vec<String>,
    retention: Duration,
    metrics: Arc<Metrics>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
        if let Err(e) = store.prune_inventory(cutoff).await {
            tracing::error!(error = %format!("{e:#}"), "pruning inventory tombstones failed");
        }
        match store.prune(sinks.clone(), cutoff).await {
            Ok(n) => {
                metrics.state_pruned_events.inc_by(n);
                if n > 0 {
                    tracing::info!(pruned = n, "pruned delivered events past retention");
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "pruning the state failed"),
        }
        metrics.state_db_bytes.set(store.size_bytes() as i64);
    }
}
