//! The outbox's and the sinks' metrics: events stored, backlog and oldest undelivered age per
//! sink, deliveries, failures, delivery duration, truncations, dead-lettered events and Splunk
//! HEC ack latency.

use super::registry::{DURATION_BUCKETS, Def};

/// Splunk HEC indexer acknowledgement takes seconds to minutes.
const ACK_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

pub(super) const OUTBOX_EVENTS: Def = Def::new(
    "outbox_events",
    "Events stored in the outbox, by kind.",
    &["kind"],
);

pub(super) const SINK_BACKLOG: Def = Def::new(
    "sink_backlog_events",
    "Events stored but not yet delivered to the sink.",
    &["sink"],
);

pub(super) const SINK_OLDEST_UNDELIVERED_AGE: Def = Def::new(
    "sink_oldest_undelivered_age_seconds",
    "Age of the oldest event not yet delivered to the sink (0 when none).",
    &["sink"],
);

pub(super) const SINK_EVENTS_DELIVERED: Def = Def::new(
    "sink_events_delivered_total",
    "Events delivered (acknowledged) by the sink.",
    &["sink"],
);

pub(super) const SINK_BATCHES_DELIVERED: Def = Def::new(
    "sink_batches_delivered_total",
    "Batches delivered by the sink.",
    &["sink"],
);

pub(super) const SINK_FAILURES: Def = Def::new(
    "sink_failures_total",
    "Failed delivery attempts by kind (transient, rejected, fatal).",
    &["sink", "kind"],
);

pub(super) const SINK_DELIVERY_DURATION: Def = Def::new(
    "sink_delivery_duration_seconds",
    "Time to deliver one batch.",
    &["sink"],
)
.buckets(DURATION_BUCKETS);

pub(super) const SINK_LAST_SUCCESS: Def = Def::new(
    "sink_last_success_timestamp_seconds",
    "Unix time of the sink's last successful delivery.",
    &["sink"],
);

pub(super) const SINK_MESSAGES_TRUNCATED: Def = Def::new(
    "sink_messages_truncated_total",
    "Messages cut (on a UTF-8 boundary) to fit the sink's size limit, e.g. a syslog UDP datagram.",
    &["sink"],
);

pub(super) const SINK_EVENTS_DEAD_LETTERED: Def = Def::new(
    "sink_events_dead_lettered_total",
    "Events the destination refused for good, written to the sink's dead-letter file, by reason.",
    &["sink", "reason"],
);

pub(super) const SINK_OTLP_REJECTED_LOG_RECORDS: Def = Def::new(
    "sink_otlp_rejected_log_records_total",
    "Log records an OTLP receiver reported rejected in a partial success (never sent again, per the OTLP spec).",
    &["sink"],
);

pub(super) const SINK_ACK_LATENCY: Def = Def::new("sink_ack_latency_seconds", "Time from sending a batch to the destination acknowledging it as stored (Splunk HEC indexer acknowledgement).", &["sink"]).buckets(ACK_BUCKETS);

pub(super) const SINK_OBJECTS_WRITTEN: Def = Def::new(
    "sink_objects_written_total",
    "Objects the object store acknowledged (put or multipart upload completed).",
    &["sink"],
);

pub(super) const SINK_OBJECT_BYTES_WRITTEN: Def = Def::new(
    "sink_object_bytes_written_total",
    "Bytes of the objects the object store acknowledged, as stored (after compression).",
    &["sink"],
);

pub(super) const SINK_OBJECT_UPLOAD_DURATION: Def = Def::new(
    "sink_object_upload_duration_seconds",
    "Time to encode, compress and upload one object until the store acknowledged it.",
    &["sink"],
)
.buckets(DURATION_BUCKETS);

pub(super) const SINK_OBJECT_FAILURES: Def = Def::new(
    "sink_object_failures_total",
    "Failed object uploads by reason (bucket_missing, unauthorized, clock_skew, throttled, server_error, refused, disk_full, io).",
    &["sink", "reason"],
);
