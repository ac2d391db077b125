//! The exporter's own metrics: state file size and pruning, build info, readiness and
//! configuration reloads.

use super::registry::Def;

pub(super) const STATE_DB_BYTES: Def =
    Def::scalar("state_db_bytes", "Size of the SQLite state file.");

pub(super) const STATE_PRUNED_EVENTS: Def = Def::scalar(
    "state_pruned_events_total",
    "Events pruned from the outbox after every sink delivered them and retention passed.",
);

pub(super) const BUILD_INFO: Def = Def::new(
    "build_info",
    "Always 1; labels carry the exporter version and commit.",
    &["version", "commit"],
);

pub(super) const READY: Def = Def::scalar(
    "ready",
    "1 when /readyz answers 200 (every poller succeeded recently, no sink stuck), else 0.",
);

pub(super) const CONFIG_RELOADS: Def = Def::new(
    "config_reloads_total",
    "Configuration reloads on SIGHUP, by result (success, failure).",
    &["result"],
);

pub(super) const CONFIG_LAST_RELOAD_SUCCESSFUL: Def = Def::scalar(
    "config_last_reload_successful",
    "1 when the last reload attempt succeeded (or none was tried), 0 when the running configuration is older than the file.",
);

pub(super) const CONFIG_LAST_RELOAD_SUCCESS: Def = Def::scalar(
    "config_last_reload_success_timestamp_seconds",
    "Unix time the running configuration was loaded.",
);

pub(super) const INSECURE_TRANSPORT: Def = Def::new(
    "insecure_transport",
    "1 for each component (api, sink:<name>) that sends a credential over a cleartext transport to a non-loopback host because its config says allow_insecure = true.",
    &["component"],
);
