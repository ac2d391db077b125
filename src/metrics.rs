//! Every metric the exporter exposes: names, help texts and label sets, built once into a
//! per-instance `Registry` (tests build their own) and shared by `Arc<Metrics>`. Label values
//! come from config (org ids, sink names, endpoints), never from event data.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const NS: &str = "clickhouse_audit";

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
    // activities
    pub activities_fetched: IntCounterVec,
    pub activities_new: IntCounterVec,
    pub activities_duplicates: IntCounterVec,
    pub activities_quarantined: IntCounterVec,
    pub cursor_timestamp: GaugeVec,
    pub cursor_lag: GaugeVec,
    pub last_success: GaugeVec,
    pub window_splits: IntCounterVec,
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
    /// Splunk HEC with `ack = true`: POST to indexer acknowledgement.
    pub sink_ack_latency: HistogramVec,
    // state
    pub state_db_bytes: IntGauge,
    pub state_pruned_events: IntCounter,
    pub build_info: IntGaugeVec,
    // operations
    pub ready: IntGauge,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success: Gauge,
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

/// What activities answers revealed about the API's window semantics, and what the poller
/// did about it (answer checks, sweeps, caps, day mode; issue 12).
pub struct WindowMetrics {
    pub violations: IntCounterVec,
    pub recovered: IntCounterVec,
    pub requests: IntCounterVec,
    pub cycle_requests: IntGaugeVec,
    pub cap: IntGaugeVec,
    pub capped: IntCounterVec,
    pub day_mode: IntGaugeVec,
    pub pad_seconds: GaugeVec,
    pub effective_overlap: GaugeVec,
    pub sweep_last_success: GaugeVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NS)
}

impl Metrics {
    /// Builds and registers every metric (plus process metrics where the platform has them).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definitions are static and valid");
                registry
                    .register(Box::new(m.clone()))
                    .expect("metric names are unique");
                m
            }};
        }
        let dur_buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        let m = Metrics {
            api_requests: reg!(IntCounterVec::new(
                opts(
                    "api_requests_total",
                    "API requests by endpoint and HTTP status class (2xx, 4xx, 5xx, error)."
                ),
                &["endpoint", "status_class"]
            )),
            api_request_duration: reg!(HistogramVec::new(
                HistogramOpts::from(opts(
                    "api_request_duration_seconds",
                    "API request duration, headers to full body."
                ))
                .buckets(dur_buckets.clone()),
                &["endpoint"]
            )),
            api_rate_limited: reg!(IntCounterVec::new(
                opts(
                    "api_rate_limited_total",
                    "429 Too Many Requests answers received."
                ),
                &["endpoint"]
            )),
            api_rate_limit_wait_seconds: reg!(prometheus::CounterVec::new(
                opts(
                    "api_rate_limit_wait_seconds_total",
                    "Seconds spent waiting for the shared rate limiter or a 429 reset."
                ),
                &["reason"]
            )),
            api_retries: reg!(IntCounterVec::new(
                opts(
                    "api_retries_total",
                    "API requests retried after a transient failure."
                ),
                &["endpoint"]
            )),
            api_decode_failures: reg!(IntCounterVec::new(
                opts(
                    "api_decode_failures_total",
                    "API responses that could not be decoded (truncated, malformed, wrong shape)."
                ),
                &["endpoint"]
            )),
            api_bytes_received: reg!(IntCounterVec::new(
                opts(
                    "api_bytes_received_total",
                    "Response body bytes received from the API."
                ),
                &["endpoint"]
            )),
            api_date_format_fallbacks: reg!(IntCounterVec::new(
                opts(
                    "api_date_format_fallback_total",
                    "Times the API rejected the activity window's date format (400) and the client stepped down one format (rfc3339 -> naive -> date), by from and to format."
                ),
                &["from", "to"]
            )),
            api_errors: reg!(IntCounterVec::new(
                opts(
                    "api_errors_total",
                    "API calls that failed for good, by error kind."
                ),
                &["endpoint", "kind"]
            )),
            activities_fetched: reg!(IntCounterVec::new(
                opts(
                    "activities_fetched_total",
                    "Activities received from the API (including overlap re-reads)."
                ),
                &["org"]
            )),
            activities_new: reg!(IntCounterVec::new(
                opts(
                    "activities_new_total",
                    "Activities stored for the first time."
                ),
                &["org"]
            )),
            activities_duplicates: reg!(IntCounterVec::new(
                opts(
                    "dedup_dropped_total",
                    "Activities dropped because their id was already stored."
                ),
                &["org"]
            )),
            activities_quarantined: reg!(IntCounterVec::new(
                opts(
                    "activities_quarantined_total",
                    "Activities kept aside because they lack an id or a parseable createdAt."
                ),
                &["org", "reason"]
            )),
            cursor_timestamp: reg!(GaugeVec::new(
                opts(
                    "cursor_timestamp_seconds",
                    "Activity cursor: everything created before it (minus overlap) is stored."
                ),
                &["org"]
            )),
            cursor_lag: reg!(GaugeVec::new(
                opts("cursor_lag_seconds", "now - cursor, per organization."),
                &["org"]
            )),
            last_success: reg!(GaugeVec::new(
                opts(
                    "last_success_timestamp_seconds",
                    "Unix time of the last successful poll, per organization and stream."
                ),
                &["org", "stream"]
            )),
            window_splits: reg!(IntCounterVec::new(
                opts(
                    "window_splits_total",
                    "Activity windows split because their answer was too large."
                ),
                &["org"]
            )),
            poll_errors: reg!(IntCounterVec::new(
                opts(
                    "poll_errors_total",
                    "Failed poll cycles by organization, stream and error kind."
                ),
                &["org", "stream", "kind"]
            )),
            overlap_seconds: reg!(Gauge::with_opts(opts(
                "activities_overlap_seconds",
                "The configured overlap: activities visible later than this after createdAt can be missed."
            ))),
            interval_seconds: reg!(Gauge::with_opts(opts(
                "activities_interval_seconds",
                "The configured activity poll interval (alerts compare cursor lag with it)."
            ))),
            window: WindowMetrics {
                violations: reg!(IntCounterVec::new(
                    opts(
                        "api_window_violations_total",
                        "Activities answered outside the bounds asked (side = before | after): the API does not filter the way the cursor rule assumes."
                    ),
                    &["org", "side"]
                )),
                recovered: reg!(IntCounterVec::new(
                    opts(
                        "activities_recovered_total",
                        "Activities the regular polls missed and a reconcile sweep (or a cap check) had to recover."
                    ),
                    &["org"]
                )),
                requests: reg!(IntCounterVec::new(
                    opts(
                        "activity_requests_total",
                        "Activities requests by organization and purpose (poll, sweep, cap_check)."
                    ),
                    &["org", "purpose"]
                )),
                cycle_requests: reg!(IntGaugeVec::new(
                    opts(
                        "activity_cycle_requests",
                        "Activities requests the organization's last poll cycle made."
                    ),
                    &["org"]
                )),
                cap: reg!(IntGaugeVec::new(
                    opts(
                        "api_answer_cap",
                        "The silent per-answer cap learned for the organization (0: none seen)."
                    ),
                    &["org"]
                )),
                capped: reg!(IntCounterVec::new(
                    opts(
                        "api_capped_answers_total",
                        "Answers that hit the API's silent cap (splittable = false: the window could not be split, activities may be missing)."
                    ),
                    &["org", "splittable"]
                )),
                day_mode: reg!(IntGaugeVec::new(
                    opts(
                        "activities_day_mode",
                        "1 while the organization's windows are whole UTC days (date-only bounds, or the API ignores the time part)."
                    ),
                    &["org"]
                )),
                pad_seconds: reg!(GaugeVec::new(
                    opts(
                        "activities_window_pad_seconds",
                        "How far every window is widened on each side after the API answered shifted windows."
                    ),
                    &["org"]
                )),
                effective_overlap: reg!(GaugeVec::new(
                    opts(
                        "activities_effective_overlap_seconds",
                        "The organization's overlap in use: activities.overlap, grown by visibility delays sweeps observed."
                    ),
                    &["org"]
                )),
                sweep_last_success: reg!(GaugeVec::new(
                    opts(
                        "reconcile_last_success_timestamp_seconds",
                        "Unix time the organization's last reconcile sweep completed."
                    ),
                    &["org"]
                )),
            },
            outbox_events: reg!(IntGaugeVec::new(
                opts("outbox_events", "Events stored in the outbox, by kind."),
                &["kind"]
            )),
            sink_backlog: reg!(IntGaugeVec::new(
                opts(
                    "sink_backlog_events",
                    "Events stored but not yet delivered to the sink."
                ),
                &["sink"]
            )),
            sink_oldest_undelivered_age: reg!(GaugeVec::new(
                opts(
                    "sink_oldest_undelivered_age_seconds",
                    "Age of the oldest event not yet delivered to the sink (0 when none)."
                ),
                &["sink"]
            )),
            sink_events_delivered: reg!(IntCounterVec::new(
                opts(
                    "sink_events_delivered_total",
                    "Events delivered (acknowledged) by the sink."
                ),
                &["sink"]
            )),
            sink_batches_delivered: reg!(IntCounterVec::new(
                opts(
                    "sink_batches_delivered_total",
                    "Batches delivered by the sink."
                ),
                &["sink"]
            )),
            sink_failures: reg!(IntCounterVec::new(
                opts(
                    "sink_failures_total",
                    "Failed delivery attempts by kind (transient, rejected, fatal)."
                ),
                &["sink", "kind"]
            )),
            sink_delivery_duration: reg!(HistogramVec::new(
                HistogramOpts::from(opts(
                    "sink_delivery_duration_seconds",
                    "Time to deliver one batch."
                ))
                .buckets(dur_buckets.clone()),
                &["sink"]
            )),
            sink_last_success: reg!(GaugeVec::new(
                opts(
                    "sink_last_success_timestamp_seconds",
                    "Unix time of the sink's last successful delivery."
                ),
                &["sink"]
            )),
            sink_messages_truncated: reg!(IntCounterVec::new(
                opts(
                    "sink_messages_truncated_total",
                    "Messages cut (on a UTF-8 boundary) to fit the sink's size limit, e.g. a syslog UDP datagram."
                ),
                &["sink"]
            )),
            sink_ack_latency: reg!(HistogramVec::new(
                HistogramOpts::from(opts(
                    "sink_ack_latency_seconds",
                    "Time from sending a batch to the destination acknowledging it as stored (Splunk HEC indexer acknowledgement)."
                ))
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
                &["sink"]
            )),
            state_db_bytes: reg!(IntGauge::with_opts(opts(
                "state_db_bytes",
                "Size of the SQLite state file."
            ))),
            state_pruned_events: reg!(IntCounter::with_opts(opts(
                "state_pruned_events_total",
                "Events pruned from the outbox after every sink delivered them and retention passed."
            ))),
            build_info: reg!(IntGaugeVec::new(
                opts(
                    "build_info",
                    "Always 1; labels carry the exporter version and commit."
                ),
                &["version", "commit"]
            )),
            ready: reg!(IntGauge::with_opts(opts(
                "ready",
                "1 when /readyz answers 200 (every poller succeeded recently, no sink stuck), else 0."
            ))),
            config_reloads: reg!(IntCounterVec::new(
                opts(
                    "config_reloads_total",
                    "Configuration reloads on SIGHUP, by result (success, failure)."
                ),
                &["result"]
            )),
            config_last_reload_successful: reg!(IntGauge::with_opts(opts(
                "config_last_reload_successful",
                "1 when the last reload attempt succeeded (or none was tried), 0 when the running configuration is older than the file."
            ))),
            config_last_reload_success: reg!(Gauge::with_opts(opts(
                "config_last_reload_success_timestamp_seconds",
                "Unix time the running configuration was loaded."
            ))),
            inventory_objects: reg!(IntGaugeVec::new(
                opts(
                    "inventory_objects",
                    "Inventory objects in the last snapshot, by resource and state (services: state; keys: enabled|disabled; backups: status; members, invitations: present)."
                ),
                &["org", "resource", "state"]
            )),
            api_key_expiry: reg!(GaugeVec::new(
                opts(
                    "api_key_expiry_timestamp_seconds",
                    "Unix time each API key expires (+Inf: never)."
                ),
                &["org", "key_id", "key_name"]
            )),
            findings_open: reg!(IntGaugeVec::new(
                opts(
                    "findings_open",
                    "Open posture findings, by rule and severity."
                ),
                &["rule", "severity"]
            )),
            backup_last_success_age: reg!(GaugeVec::new(
                opts(
                    "backup_last_success_age_seconds",
                    "Seconds since the service's newest successful backup finished, as of the last inventory cycle (+Inf: none listed)."
                ),
                &["org", "service_id", "service_name"]
            )),
            inventory_poll_duration: reg!(HistogramVec::new(
                HistogramOpts::from(opts(
                    "inventory_poll_duration_seconds",
                    "Duration of one inventory list call (backups: one service), retries and rate-limit waits included."
                ))
                .buckets(dur_buckets),
                &["org", "resource"]
            )),
            inventory_poll_errors: reg!(IntCounterVec::new(
                opts(
                    "inventory_poll_errors_total",
                    "Inventory list calls that failed for good, by resource and error kind."
                ),
                &["org", "resource", "kind"]
            )),
            inventory_requests: reg!(IntCounterVec::new(
                opts(
                    "inventory_requests_total",
                    "Inventory list calls made (each spends the shared API budget; retries add to api_requests_total)."
                ),
                &["org", "resource"]
            )),
            inventory_cycle_requests: reg!(IntGaugeVec::new(
                opts(
                    "inventory_cycle_requests",
                    "API calls the last inventory cycle of the organization made."
                ),
                &["org"]
            )),
            inventory_cycle_duration: reg!(GaugeVec::new(
                opts(
                    "inventory_cycle_duration_seconds",
                    "Duration of the last inventory cycle of the organization."
                ),
                &["org"]
            )),
            inventory_backups_deferred: reg!(IntGaugeVec::new(
                opts(
                    "inventory_backups_deferred",
                    "Backup lists due but left for the next cycle (inventory.backups_per_cycle)."
                ),
                &["org"]
            )),
            inventory_resource_disabled: reg!(IntGaugeVec::new(
                opts(
                    "inventory_resource_disabled",
                    "1 when a resource's inventory is off because the API key lacks its permission (403)."
                ),
                &["org", "resource"]
            )),
            inventory_events: reg!(IntCounterVec::new(
                opts(
                    "inventory_events_total",
                    "Inventory change events stored, by resource and action."
                ),
                &["org", "resource", "action"]
            )),
            finding_events: reg!(IntCounterVec::new(
                opts(
                    "finding_events_total",
                    "Finding events stored, by rule and status (open|resolved)."
                ),
                &["org", "rule", "status"]
            )),
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
