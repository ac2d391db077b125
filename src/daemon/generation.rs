//! A *generation*: the tasks of one configuration (pollers, sink tasks, prune, gauge refresh
//! and the own-key watches), how they are started (`Pipeline::start`) and stopped (loops at once, sinks after
//! the batch in hand), and what a task's end means: a loop ending or any task panicking is a
//! dead process (`/healthz` fails); a sink stopping is not, unless it was the last one.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::dispatch::{DispatchError, Mode, SinkTask};
use crate::health::Health;
use crate::poller::{activities, inventory};

impl Pipeline {
    /// Spawns the pollers, sink tasks and background loops of this configuration.
    pub(super) fn start(&self, sinks: Vec<SinkTask>) -> Generation {
        let mut g = Generation::default();
        self.spawn_sinks(&mut g, sinks);
        self.spawn_pollers(&mut g);
        let stop = g.stop.clone();
        g.spawn_loop(
            "prune".into(),
            super::prune::prune_loop(
                self.store.clone(),
                self.sink_names(),
                self.cfg.state.retention,
                self.metrics.clone(),
                stop,
            ),
        );
        let (refresh, every) = super::refresh::Refresh::new(self);
        g.spawn_loop("gauge refresh".into(), refresh.run(every));
        // At start and every inventory interval, whether or not the inventory is polled.
        for watch in self.key_watches() {
            let name = format!("key watch {}", watch.name);
            g.spawn_loop(name, watch.run(self.cfg.inventory.interval));
        }
        g
    }

    fn spawn_sinks(&self, g: &mut Generation, sinks: Vec<SinkTask>) {
        for task in sinks {
            let (name, health) = (task.name.clone(), self.health.clone());
            let stop = g.sink_stop.clone();
            g.spawn(format!("sink {name}"), Role::Sink, async move {
                match task.run(Mode::Follow, stop).await {
                    Ok(_) | Err(DispatchError::Fatal { .. }) => {} // Fatal: logged and recorded
                    Err(e) => {
                        tracing::error!(sink = %name, error = %e, "sink task stopped; other sinks and polling go on");
                        health.sink_stopped(&name, e.to_string());
                    }
                }
            });
        }
    }

    fn spawn_pollers(&self, g: &mut Generation) {
        if self.cfg.activities.enabled {
            for org in &self.orgs {
                let poller = self.poller(org);
                let stop = g.stop.clone();
                g.spawn_loop(format!("poller {org}/{}", activities::STREAM), async move {
                    poller.run(stop).await
                });
            }
        }
        if self.cfg.inventory.enabled {
            for org in &self.orgs {
                let poller = self.inventory_poller(org);
                let stop = g.stop.clone();
                g.spawn_loop(format!("poller {org}/{}", inventory::STREAM), async move {
                    poller.run(stop).await
                });
            }
        }
    }
}

/// What a task of a generation is, for deciding what its end means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Ends on cancellation only; ending otherwise means the process is broken.
    Loop,
    /// May stop for good on its own (e.g. stdout closed) while the others go on.
    Sink,
}

/// The tasks of one configuration.
#[derive(Default)]
pub(super) struct Generation {
    /// Pollers, prune and gauge refresh: stop at once.
    stop: CancellationToken,
    /// Sink tasks: finish the batch in hand, then stop.
    sink_stop: CancellationToken,
    pub(super) tasks: JoinSet<()>,
    roles: HashMap<tokio::task::Id, (String, Role)>,
    sinks_running: usize,
}

impl Generation {
    fn spawn(
        &mut self,
        name: String,
        role: Role,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(fut);
        if role == Role::Sink {
            self.sinks_running += 1;
        }
        self.roles.insert(handle.id(), (name, role));
    }

    /// Spawns a loop that is dropped as soon as `stop` is cancelled: pollers and background
    /// loops hold nothing that must be finished (a store write in flight completes on its
    /// blocking thread, in one transaction).
    fn spawn_loop(
        &mut self,
        name: String,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let stop = self.stop.clone();
        self.spawn(name, Role::Loop, async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = fut => {}
            }
        });
    }

    /// Accounts for a finished task; true when that was the last sink (nothing left to
    /// deliver to).
    pub(super) fn ended(
        &mut self,
        result: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        health: &Health,
    ) -> bool {
        let (id, panic) = match result {
            Ok((id, ())) => (id, None),
            Err(e) => {
                let id = e.id();
                let msg = e.is_panic().then(|| panic_message(e.into_panic()));
                (id, msg)
            }
        };
        let Some((name, role)) = self.roles.remove(&id) else {
            return false;
        };
        if role == Role::Sink {
            self.sinks_running = self.sinks_running.saturating_sub(1);
        }
        if let Some(msg) = panic {
            tracing::error!(task = %name, panic = %msg, "task panicked; /healthz now fails so a supervisor restarts the exporter");
            health.task_died(&name, format!("panicked: {msg}"));
            if let Some(sink) = name.strip_prefix("sink ") {
                health.sink_stopped(sink, format!("panicked: {msg}"));
            }
        } else if role == Role::Loop && !self.stop.is_cancelled() {
            tracing::error!(task = %name, "task ended unexpectedly; /healthz now fails");
            health.task_died(&name, "ended unexpectedly".into());
        }
        role == Role::Sink && self.sinks_running == 0 && !self.sink_stop.is_cancelled()
    }

    /// Pollers and loops stop at once; sinks finish the batch in hand within `grace`, after
    /// which whatever still runs is aborted (undelivered events stay in the outbox).
    pub(super) async fn stop(&mut self, grace: Duration) {
        self.stop.cancel();
        self.sink_stop.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "shutdown grace period over; undelivered events stay in the outbox for next start"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        self.roles.clear();
        self.sinks_running = 0;
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_or_vanished_loop_is_a_dead_process_a_stopped_sink_is_not() {
        let health = Health::default();
        let mut g = Generation::default();
        g.spawn_loop("poller o/activities".into(), async { panic!("boom") });
        g.spawn_loop("gauge refresh".into(), async {});
        for _ in 0..2 {
            let ended = g.tasks.join_next_with_id().await.unwrap();
            assert!(!g.ended(ended, &health), "no sink was involved");
        }
        let dead = health.dead_tasks();
        assert_eq!(dead["poller o/activities"], "panicked: boom");
        assert_eq!(dead["gauge refresh"], "ended unexpectedly");

        let health = Health::default();
        let mut g = Generation::default();
        g.spawn("sink a".into(), Role::Sink, async {});
        g.spawn("sink b".into(), Role::Sink, async {});
        let first = g.tasks.join_next_with_id().await.unwrap();
        assert!(!g.ended(first, &health), "one sink left");
        let second = g.tasks.join_next_with_id().await.unwrap();
        assert!(g.ended(second, &health), "no sink left: the daemon ends");
        assert!(
            health.dead_tasks().is_empty(),
            "sinks stopping is not a dead process"
        );
    }

    #[tokio::test]
    async fn stopping_ends_loops_at_once_and_is_not_a_death() {
        let health = Health::default();
        let mut g = Generation::default();
        g.spawn_loop("poller o/activities".into(), std::future::pending());
        let sink_stop = g.sink_stop.clone();
        g.spawn("sink a".into(), Role::Sink, async move {
            sink_stop.cancelled().await
        });
        let started = std::time::Instant::now();
        g.stop(Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(g.tasks.is_empty() && health.dead_tasks().is_empty());
    }
}
