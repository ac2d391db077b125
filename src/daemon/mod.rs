//! Wiring: open the store, build the API client and sinks, resolve organizations, then either
//! run the daemon (activity and inventory pollers + sink tasks + server until SIGTERM, then
//! drain within the grace period) or `once` (one cycle per org, deliver everything pending,
//! report failures).
//!
//! The daemon's tasks form a *generation* (pollers, sink tasks, prune and gauge refresh);
//! `supervise` owns it together with the server, systemd notifications and SIGHUP. A SIGHUP
//! reopens output files and reloads the configuration: the new pipeline is built first (an
//! invalid file, an unreachable API or a sink that cannot be built keeps the running one, with
//! an ERROR), then the old generation stops (pollers at once, sinks after the batch in hand)
//! and the new one starts. Metrics, health and the listener carry over; so do the store and the
//! API client (with its rate-limit window) when their settings did not change.
//!
//! Map (this file: the entry points `run` and `once`, and how a daemon is driven, `Control`):
//! - `pipeline`: `Pipeline`, built once (and again on reload): store, client, orgs, and the
//!   poller and sink tasks of its configuration.
//! - `generation`: the tasks of one configuration, and what a task's end means.
//! - `supervise`: the daemon's main loop (server, SIGHUP, systemd status and watchdog).
//! - `reload`: SIGHUP's configuration reload, keeping the running one when the new fails.
//! - `once`: one cycle per org, then everything pending to every sink.
//! - `refresh`: the gauges that describe stored state, kept true between polls.
//! - `prune`: hourly pruning of delivered events past retention.

mod generation;
mod once;
mod pipeline;
mod prune;
mod refresh;
mod reload;
mod supervise;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::notify::Notifier;
use crate::values::ConfigError;

pub use pipeline::{ORG_KEYS_KEY, Pipeline};

/// Re-reads the configuration on SIGHUP (the same file and environment as at start-up).
pub type Reloader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// How a running daemon is driven from outside: SIGHUP and systemd.
#[derive(Default)]
pub struct Control {
    /// Bumped on every SIGHUP: reopen output files, then reload with `reload`.
    pub hup: Option<watch::Receiver<u64>>,
    /// How to reload the configuration; `None`: SIGHUP only reopens files.
    pub reload: Option<Reloader>,
    pub notify: Option<Notifier>,
}

/// `run`: the daemon until SIGTERM/SIGINT; SIGHUP reopens files and, with `reload`, reloads
/// the configuration; systemd is notified when `$NOTIFY_SOCKET` is set.
pub async fn run(cfg: Config, reload: Option<Reloader>) -> anyhow::Result<()> {
    let notify = Notifier::from_env();
    notify.status("starting: opening the state and resolving organizations");
    // Signals first: a SIGHUP during start-up must not kill the process (its default action).
    let token = CancellationToken::new();
    let (hup_tx, hup_rx) = watch::channel(0);
    tokio::spawn(crate::shutdown::handle_signals(token.clone(), hup_tx));
    let pipeline = Pipeline::build(cfg).await?;
    pipeline
        .run_with(
            token,
            Control {
                hup: Some(hup_rx),
                reload,
                notify: Some(notify),
            },
        )
        .await
}

/// `once`.
pub async fn once(cfg: Config) -> anyhow::Result<()> {
    Pipeline::build(cfg).await?.once().await
}
