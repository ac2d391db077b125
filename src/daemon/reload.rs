//! SIGHUP's configuration reload: build the pipeline of the re-read configuration (sharing
//! metrics and health, and the store and client when their settings did not change); only
//! when that works, stop the running generation and start the new one (keys added or removed:
//! their organizations' pollers start or stop; the state of a removed one stays). Gauge series
//! of organizations, keys and sinks the new configuration dropped are removed.

use super::generation::Generation;
use super::{Pipeline, Reloader};
use crate::poller::{activities, inventory};
use crate::server::ServerState;

/// SIGHUP: build the pipeline of the re-read configuration; if that works, stop the running
/// generation and start the new one; otherwise keep everything as it is, with an ERROR.
pub(super) async fn reload_config(
    pipeline: &mut Pipeline,
    generation: &mut Generation,
    reload: &Reloader,
    state: &ServerState,
) {
    tracing::info!("SIGHUP: output files reopened; reloading the configuration");
    let metrics = pipeline.metrics.clone();
    let built = async {
        let cfg = reload()?;
        let next = Pipeline::build_with(
            cfg,
            pipeline.metrics.clone(),
            pipeline.health.clone(),
            Some(pipeline),
        )
        .await?;
        let sinks = next.sink_tasks()?;
        anyhow::Ok((next, sinks))
    }
    .await;
    let (next, sinks) = match built {
        Ok(b) => b,
        Err(e) => {
            let error = format!("{e:#}");
            tracing::error!(error = %error, "configuration reload failed; keeping the running configuration");
            // The overlap/interval gauges follow the running configuration.
            metrics
                .overlap_seconds
                .set(pipeline.cfg.activities.overlap.as_secs_f64());
            metrics
                .interval_seconds
                .set(pipeline.cfg.activities.interval.as_secs_f64());
            metrics.config_reloads.with_label_values(&["failure"]).inc();
            metrics.config_last_reload_successful.set(0);
            state.record_reload(Some(error));
            return;
        }
    };
    if next.cfg.server.listen != pipeline.cfg.server.listen {
        tracing::warn!(old = %pipeline.cfg.server.listen, new = %next.cfg.server.listen, "server.listen changed: the listener moves at the next restart");
    }
    if format!("{:?}", next.cfg.log) != format!("{:?}", pipeline.cfg.log) {
        tracing::warn!("log settings changed: they apply at the next restart");
    }
    generation.stop(pipeline.cfg.daemon.shutdown_grace).await;
    let old = std::mem::replace(pipeline, next);
    forget_removed(&old, pipeline);
    pipeline
        .health
        .retain(&pipeline.poller_keys(), &pipeline.sink_names());
    *generation = pipeline.start(sinks);
    state.set_view(pipeline.view());
    state.record_reload(None);
    metrics.config_reloads.with_label_values(&["success"]).inc();
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success
        .set(chrono::Utc::now().timestamp() as f64);
    tracing::info!(orgs = ?pipeline.orgs, keys = ?pipeline.keys.names(), sinks = ?pipeline.sink_names(), "configuration reloaded; pollers and sinks restarted");
}

/// Drops the gauge series of organizations and sinks the new configuration no longer has, so
/// dashboards do not show frozen values (counters stay: they are history).
fn forget_removed(old: &Pipeline, new: &Pipeline) {
    let m = &new.metrics;
    for org in old.orgs.iter().filter(|o| !new.orgs.contains(o)) {
        let _ = m.cursor_timestamp.remove_label_values(&[org]);
        let _ = m.cursor_lag.remove_label_values(&[org]);
        for stream in [activities::STREAM, inventory::STREAM] {
            let _ = m.last_success.remove_label_values(&[org, stream]);
        }
    }
    let keys = new.keys.names();
    for key in old.keys.names().iter().filter(|k| !keys.contains(k)) {
        let _ = m.api_own_key_expiry.remove_label_values(&[key]);
        let _ = m.api_key_organizations.remove_label_values(&[key]);
        for state in [
            "enabled", "disabled", "expired", "deleted", "refused", "unknown",
        ] {
            let _ = m.api_own_key_state.remove_label_values(&[key, state]);
        }
    }
    let sinks = new.sink_names();
    for sink in old.sink_names().iter().filter(|s| !sinks.contains(s)) {
        let _ = m.sink_backlog.remove_label_values(&[sink]);
        let _ = m.sink_oldest_undelivered_age.remove_label_values(&[sink]);
        let _ = m.sink_last_success.remove_label_values(&[sink]);
    }
}
