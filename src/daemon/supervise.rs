//! The daemon's main loop: the server (/metrics, /healthz, /readyz, /status) on its listener,
//! the running generation, SIGHUP (reopen files, reload), systemd status lines and the
//! watchdog, which is fed only while every task still runs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{Control, Pipeline};
use crate::notify::Notifier;
use crate::server::{self, ServerState};

/// The daemon's main loop: server, generation, SIGHUP, systemd status and watchdog.
pub(super) async fn supervise(
    mut pipeline: Pipeline,
    token: CancellationToken,
    control: Control,
) -> anyhow::Result<()> {
    let Control {
        mut hup,
        reload,
        notify,
    } = control;
    let notify = notify.unwrap_or_else(Notifier::disabled);
    let state = Arc::new(ServerState::new(
        pipeline.metrics.clone(),
        pipeline.health.clone(),
        pipeline.view(),
    ));
    let server_stop = CancellationToken::new();
    let _stop_server = server_stop.clone().drop_guard();
    let listen = pipeline.cfg.server.listen.clone();
    if !listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding server.listen {listen}"))?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics /healthz /readyz /status");
        tokio::spawn(server::run(listener, state.clone(), server_stop.clone()));
    }
    let mut generation = pipeline.start(pipeline.sink_tasks()?);
    let mut status = status_line(&state);
    notify.ready(&status);
    let mut tick = tokio::time::interval(
        notify
            .watchdog_interval()
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(10)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            changed = async {
                match hup.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    hup = None; // the signal task ended: no more SIGHUPs
                    continue;
                }
                pipeline.reopen.send_modify(|n| *n += 1);
                match &reload {
                    Some(reload) => {
                        notify.reloading();
                        super::reload::reload_config(&mut pipeline, &mut generation, reload, &state).await;
                        status = status_line(&state);
                        notify.ready(&status);
                    }
                    None => tracing::info!("SIGHUP: output files reopened"),
                }
            }
            Some(ended) = generation.tasks.join_next_with_id() => {
                if generation.ended(ended, &pipeline.health) {
                    notify.stopping();
                    generation.stop(pipeline.cfg.daemon.shutdown_grace).await;
                    anyhow::bail!("every sink has stopped (see the errors above); nothing left to deliver to");
                }
            }
            _ = tick.tick() => {
                // Alive means every task still runs; then (and only then) feed the watchdog.
                if pipeline.health.dead_tasks().is_empty() {
                    notify.watchdog();
                }
                let now = status_line(&state);
                if now != status {
                    notify.status(&now);
                    status = now;
                }
            }
        }
    }
    notify.stopping();
    // Pollers stop at once; sinks finish the batch in hand.
    generation.stop(pipeline.cfg.daemon.shutdown_grace).await;
    pipeline.save_recent_requests().await;
    tracing::info!("stopped");
    Ok(())
}

/// One line for `systemctl status`: ready, or the first reason not to be.
fn status_line(state: &ServerState) -> String {
    let view = state.view();
    let failing = state.not_ready();
    let dead = state.health.dead_tasks();
    if let Some((task, why)) = dead.iter().next() {
        return format!("unhealthy: {task} {why}");
    }
    match failing.iter().next() {
        None => format!(
            "ready: polling {} stream(s), delivering to {} sink(s)",
            view.pollers.len(),
            view.sinks.len()
        ),
        Some((component, why)) => {
            let why = why.as_str().unwrap_or_default();
            let mut line = format!("not ready: {component}: {why}");
            if line.chars().count() > 200 {
                line = line.chars().take(197).collect::<String>() + "...";
            }
            if failing.len() > 1 {
                line.push_str(&format!(" (+{} more, see /readyz)", failing.len() - 1));
            }
            line
        }
    }
}
