//! Every metric the exporter exposes: names, help texts and label sets, built once into a
//! per-instance `Registry` (tests build their own) and shared by `Arc<Metrics>`. Label values
//! come from config (org ids, sink names, endpoints), never from event data.
//!
//! `Metrics` holds every typed handle (one flat struct, plus `window`); each metric's
//! definition (`registry::Def`: name, help text, label set) lives in its group's file:
//! `api.rs`, `activities.rs`, `window.rs` (with its handles), `sinks.rs` (outbox and sinks),
//! `ops.rs` (state, build, readiness, reloads), `inventory.rs` (inventory and findings).
//! `registry.rs` builds and registers them.

mod activities;
mod api;
mod inventory;
mod ops;
mod registry;
mod sinks;
mod window;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry, TextEncoder,
};

use registry::Registrar;
pub use window::WindowMetrics;

/// Typed handles to every metric.
pub struct Metrics {
    pub registry: Registry,
    // API client
    pub api_requests: IntCounterVec,
    pub api_request_duration: HistogramVec,
    pub api_rate_limited: IntCounterVec,
    pub api_rate_limit_wait_seconds: prometheus::CounterVec,
    pub api_retries: IntCounterVec,
    pub api_decode_failures: IntCounterVec,
    pub api_bytes_received: IntCounterVec,
    /// Date-format step-downs after a 400 about dates, by `from` and `to` format.
    pub api_date_format_fallbacks: IntCounterVec,
    pub api_errors: IntCounterVec,
    // per API key (issue 16)
    pub api_key_requests: IntCounterVec,
    pub api_key_rate_limited: IntCounterVec,
    pub api_key_rate_limit_wait_seconds: prometheus::CounterVec,
    pub api_own_key_expiry: GaugeVec,
    pub api_own_key_state: IntGaugeVec,
    pub api_key_organizations: IntGaugeVec,
    // activities
    pub activities_fetched: IntCounterVec,
    pub activities_new: IntCounterVec,
    pub activities_duplicates: IntCounterVec,
    pub activities_quarantined: IntCounterVec,
    pub cursor_timestamp: GaugeVec,
    pub cursor_lag: GaugeVec,
    pub last_success: GaugeVec,
    pub window_splits: IntCounterVec,
    /// Seconds waited for the cross-org decode permit (`poller::decode_permit`).
    pub decode_permit_wait: prometheus::CounterVec,
    pub poll_errors: IntCounterVec,
    pub overlap_seconds: Gauge,
    pub interval_seconds: Gauge,
    // activities: what the answers revealed about the API's window semantics (issue 12)
    pub window: WindowMetrics,
    // outbox
    pub outbox_events: IntGaugeVec,
    pub sink_backlog: IntGaugeVec,
    pub sink_oldest_undelivered_age: GaugeVec,
    // sinks
    pub sink_events_delivered: IntCounterVec,
    pub sink_batches_delivered: IntCounterVec,
    pub sink_failures: IntCounterVec,
    pub sink_delivery_duration: HistogramVec,
    pub sink_last_success: GaugeVec,
    /// Syslog over UDP: messages cut to fit one datagram.
    pub sink_messages_truncated: IntCounterVec,
    /// Events written to a sink's dead-letter file (`sinks::dead_letter`).
    pub sink_events_dead_lettered: IntCounterVec,
    /// OTLP partial success: records the receiver rejected (`sinks::otlp`).
    pub sink_otlp_rejected_log_records: IntCounterVec,
    /// Splunk HEC with `ack = true`: POST to indexer acknowledgement.
    pub sink_ack_latency: HistogramVec,
    /// Object-store sink: objects acknowledged, their stored bytes, upload time, failures.
    pub sink_objects_written: IntCounterVec,
    pub sink_object_bytes_written: IntCounterVec,
    pub sink_object_upload_duration: HistogramVec,
    pub sink_object_failures: IntCounterVec,
    // state
    pub state_db_bytes: IntGauge,
    pub state_pruned_events: IntCounter,
    pub build_info: IntGaugeVec,
    // operations
    pub ready: IntGauge,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success: Gauge,
    /// `allow_insecure` in force, by component (issue 18).
    pub insecure_transport: IntGaugeVec,
    // inventory and findings (issue #6)
    pub inventory_objects: IntGaugeVec,
    pub api_key_expiry: GaugeVec,
    pub findings_open: IntGaugeVec,
    pub backup_last_success_age: GaugeVec,
    pub inventory_poll_duration: HistogramVec,
    pub inventory_poll_errors: IntCounterVec,
    pub inventory_requests: IntCounterVec,
    pub inventory_cycle_requests: IntGaugeVec,
    pub inventory_cycle_duration: GaugeVec,
    pub inventory_backups_deferred: IntGaugeVec,
    pub inventory_resource_disabled: IntGaugeVec,
    pub inventory_events: IntCounterVec,
    pub finding_events: IntCounterVec,
}

impl Metrics {
    /// Builds and registers every metric (plus process metrics where the platform has them).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let m = Metrics {
            api_requests: r.add(&api::API_REQUESTS),
            api_request_duration: r.add(&api::API_REQUEST_DURATION),
            api_rate_limited: r.add(&api::API_RATE_LIMITED),
            api_rate_limit_wait_seconds: r.add(&api::API_RATE_LIMIT_WAIT_SECONDS),
            api_retries: r.add(&api::API_RETRIES),
            api_decode_failures: r.add(&api::API_DECODE_FAILURES),
            api_bytes_received: r.add(&api::API_BYTES_RECEIVED),
            api_date_format_fallbacks: r.add(&api::API_DATE_FORMAT_FALLBACKS),
            api_errors: r.add(&api::API_ERRORS),
            api_key_requests: r.add(&api::API_KEY_REQUESTS),
            api_key_rate_limited: r.add(&api::API_KEY_RATE_LIMITED),
            api_key_rate_limit_wait_seconds: r.add(&api::API_KEY_RATE_LIMIT_WAIT_SECONDS),
            api_own_key_expiry: r.add(&api::API_OWN_KEY_EXPIRY),
            api_own_key_state: r.add(&api::API_OWN_KEY_STATE),
            api_key_organizations: r.add(&api::API_KEY_ORGANIZATIONS),
            activities_fetched: r.add(&activities::ACTIVITIES_FETCHED),
            activities_new: r.add(&activities::ACTIVITIES_NEW),
            activities_duplicates: r.add(&activities::ACTIVITIES_DUPLICATES),
            activities_quarantined: r.add(&activities::ACTIVITIES_QUARANTINED),
            cursor_timestamp: r.add(&activities::CURSOR_TIMESTAMP),
            cursor_lag: r.add(&activities::CURSOR_LAG),
            last_success: r.add(&activities::LAST_SUCCESS),
            window_splits: r.add(&activities::WINDOW_SPLITS),
            decode_permit_wait: r.add(&activities::DECODE_PERMIT_WAIT),
            poll_errors: r.add(&activities::POLL_ERRORS),
            overlap_seconds: r.add(&activities::OVERLAP_SECONDS),
            interval_seconds: r.add(&activities::INTERVAL_SECONDS),
            window: WindowMetrics::new(&r),
            outbox_events: r.add(&sinks::OUTBOX_EVENTS),
            sink_backlog: r.add(&sinks::SINK_BACKLOG),
            sink_oldest_undelivered_age: r.add(&sinks::SINK_OLDEST_UNDELIVERED_AGE),
            sink_events_delivered: r.add(&sinks::SINK_EVENTS_DELIVERED),
            sink_batches_delivered: r.add(&sinks::SINK_BATCHES_DELIVERED),
            sink_failures: r.add(&sinks::SINK_FAILURES),
            sink_delivery_duration: r.add(&sinks::SINK_DELIVERY_DURATION),
            sink_last_success: r.add(&sinks::SINK_LAST_SUCCESS),
            sink_messages_truncated: r.add(&sinks::SINK_MESSAGES_TRUNCATED),
            sink_events_dead_lettered: r.add(&sinks::SINK_EVENTS_DEAD_LETTERED),
            sink_otlp_rejected_log_records: r.add(&sinks::SINK_OTLP_REJECTED_LOG_RECORDS),
            sink_ack_latency: r.add(&sinks::SINK_ACK_LATENCY),
            sink_objects_written: r.add(&sinks::SINK_OBJECTS_WRITTEN),
            sink_object_bytes_written: r.add(&sinks::SINK_OBJECT_BYTES_WRITTEN),
            sink_object_upload_duration: r.add(&sinks::SINK_OBJECT_UPLOAD_DURATION),
            sink_object_failures: r.add(&sinks::SINK_OBJECT_FAILURES),
            state_db_bytes: r.add(&ops::STATE_DB_BYTES),
            state_pruned_events: r.add(&ops::STATE_PRUNED_EVENTS),
            build_info: r.add(&ops::BUILD_INFO),
            ready: r.add(&ops::READY),
            config_reloads: r.add(&ops::CONFIG_RELOADS),
            config_last_reload_successful: r.add(&ops::CONFIG_LAST_RELOAD_SUCCESSFUL),
            config_last_reload_success: r.add(&ops::CONFIG_LAST_RELOAD_SUCCESS),
            insecure_transport: r.add(&ops::INSECURE_TRANSPORT),
            inventory_objects: r.add(&inventory::INVENTORY_OBJECTS),
            api_key_expiry: r.add(&inventory::API_KEY_EXPIRY),
            findings_open: r.add(&inventory::FINDINGS_OPEN),
            backup_last_success_age: r.add(&inventory::BACKUP_LAST_SUCCESS_AGE),
            inventory_poll_duration: r.add(&inventory::INVENTORY_POLL_DURATION),
            inventory_poll_errors: r.add(&inventory::INVENTORY_POLL_ERRORS),
            inventory_requests: r.add(&inventory::INVENTORY_REQUESTS),
            inventory_cycle_requests: r.add(&inventory::INVENTORY_CYCLE_REQUESTS),
            inventory_cycle_duration: r.add(&inventory::INVENTORY_CYCLE_DURATION),
            inventory_backups_deferred: r.add(&inventory::INVENTORY_BACKUPS_DEFERRED),
            inventory_resource_disabled: r.add(&inventory::INVENTORY_RESOURCE_DISABLED),
            inventory_events: r.add(&inventory::INVENTORY_EVENTS),
            finding_events: r.add(&inventory::FINDING_EVENTS),
            registry,
        };
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        // The two possible steps, shown at 0 before they happen.
        for step in [["rfc3339", "naive"], ["naive", "date"]] {
            m.api_date_format_fallbacks.with_label_values(&step);
        }
        m.config_last_reload_successful.set(1);
        m.config_last_reload_success
            .set(chrono::Utc::now().timestamp() as f64);
        m.build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("CH_AUDIT_COMMIT").unwrap_or("unknown"),
            ])
            .set(1);
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            // Registration can only fail on a name clash, which a fresh registry cannot have.
            let _ = m.registry.register(Box::new(pc));
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail on I/O; a failure would be a bug in a collector.
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
