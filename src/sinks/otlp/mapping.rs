//! Events → OTLP `LogRecord`s (one per event) and the export request around them: the
//! resource (`service.name`, `service.version`), the scope (`clickhouse-audit-exporter`), and
//! per record:
//!
//! | LogRecord field            | from                                                        |
//! |----------------------------|-------------------------------------------------------------|
//! | `time_unix_nano`           | `format::Facts` time (activity `createdAt`, else occurred_at) |
//! | `observed_time_unix_nano`  | `observed_at` (when this exporter stored the event)          |
//! | `severity_number` / `_text`| `Facts` severity: Info→INFO, Low→INFO2, Medium→WARN, High→ERROR, Critical→FATAL; text = its caption |
//! | `event_name`               | `Facts` type label (activity `type`, `inventory_…`, `finding_…`) |
//! | `body`                     | the event in the sink's `format` as a structured kvlist (json envelope by default); `cef`: a string |
//! | attribute `log.record.uid` | `event_id` (stable: receivers deduplicate on it)            |
//! | `cloud.account.id`         | the organization id                                         |
//! | `user.id`                  | `actorId`                                                   |
//! | `client.address`           | `actorIpAddress` when it is a valid IP                      |
//! | `user_agent.original`      | `userAgent`                                                 |
//! | `clickhouse.audit.kind`    | `activity`, `inventory` or `finding`                        |
//! | `clickhouse.actor.type`, `clickhouse.service.id` | `actorType`, `serviceId`              |
//!
//! `cloud.provider` is not set: its well-known values name the infrastructure (aws, gcp,
//! azure), which an audit activity does not tell. Payload fields are read through the lenient
//! views of `format::view`: a missing or odd field leaves its attribute out, never fails.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::event::{Event, EventKind};
use crate::format::catalog::Severity;
use crate::format::view::{ActivityView, parse_or_default, parse_time_ms, valid_ip};
use crate::format::{Facts, Format};

/// The instrumentation scope of every record.
pub const SCOPE_NAME: &str = "clickhouse-audit-exporter";

/// Builds export requests; holds the resource and a scratch buffer for encoding bodies.
pub struct Mapper {
    format: Format,
    resource: Resource,
    scratch: Vec<u8>,
}

impl Mapper {
    pub fn new(format: Format, service_name: &str) -> Mapper {
        Mapper {
            format,
            resource: Resource {
                attributes: vec![
                    kv("service.name", string(service_name)),
                    kv("service.version", string(env!("CARGO_PKG_VERSION"))),
                ],
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            },
            scratch: Vec::with_capacity(4096),
        }
    }

    /// One request carrying `log_records`, in order.
    pub fn request(&self, log_records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(self.resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    }),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    /// The record of one event.
    pub fn record(&mut self, event: &Event) -> LogRecord {
        let mut attributes = vec![
            kv("log.record.uid", string(&event.event_id)),
            kv("cloud.account.id", string(&event.org_id)),
            kv("clickhouse.audit.kind", string(event.kind.as_str())),
        ];
        // An activity's payload is read once, for its facts and its attributes.
        let view = (event.kind == EventKind::Activity)
            .then(|| parse_or_default::<ActivityView>(&event.payload).0);
        let (severity_number, severity_text, time_ms, event_name) = {
            let facts = match &view {
                Some(a) => Facts::activity(event, a),
                None => Facts::of(event),
            };
            let (number, text) = severity(facts.severity);
            (number, text, facts.time_ms, facts.ty.into_owned())
        };
        if let Some(a) = &view {
            let mut add = |key: &str, value: Option<&str>| {
                if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
                    attributes.push(kv(key, string(v)));
                }
            };
            add("user.id", a.actor_id.get());
            add("client.address", valid_ip(a.actor_ip_address.get()));
            add("user_agent.original", a.user_agent.get());
            add("clickhouse.actor.type", a.actor_type.get());
            add("clickhouse.service.id", a.service_id.get());
        }
        self.scratch.clear();
        self.format.encode(event, &mut self.scratch);
        let body = if self.format.is_json() {
            match serde_json::from_slice::<serde_json::Value>(&self.scratch) {
                Ok(value) => any_value_of(value),
                Err(_) => string(&String::from_utf8_lossy(&self.scratch)),
            }
        } else {
            string(&String::from_utf8_lossy(&self.scratch))
        };
        LogRecord {
            time_unix_nano: nanos(time_ms),
            observed_time_unix_nano: parse_time_ms(&event.observed_at).map_or(0, nanos),
            severity_number: severity_number as i32,
            severity_text: severity_text.into(),
            body: Some(body),
            attributes,
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: Vec::new(),
            span_id: Vec::new(),
            event_name,
        }
    }
}

/// OTel severity of an audit severity (security impact read as log severity).
pub fn severity(s: Severity) -> (SeverityNumber, &'static str) {
    let number = match s {
        Severity::Info => SeverityNumber::Info,
        Severity::Low => SeverityNumber::Info2,
        Severity::Medium => SeverityNumber::Warn,
        Severity::High => SeverityNumber::Error,
        Severity::Critical => SeverityNumber::Fatal,
    };
    (number, s.caption())
}

/// Milliseconds since the epoch as nanoseconds (before the epoch: 0, "unknown").
fn nanos(ms: i64) -> u64 {
    u64::try_from(ms).map_or(0, |ms| ms.saturating_mul(1_000_000))
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
    }
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

/// A JSON value as an AnyValue: objects → kvlist, arrays → array, integers that fit i64 →
/// int, other numbers → double, `null` → an empty AnyValue.
pub fn any_value_of(value: serde_json::Value) -> AnyValue {
    use serde_json::Value as J;
    let value = match value {
        J::Null => None,
        J::Bool(b) => Some(any_value::Value::BoolValue(b)),
        J::Number(n) => Some(match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        J::String(s) => Some(any_value::Value::StringValue(s)),
        J::Array(items) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: items.into_iter().map(any_value_of).collect(),
        })),
        J::Object(map) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: map
                .into_iter()
                .map(|(key, v)| KeyValue {
                    key,
                    value: Some(any_value_of(v)),
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity() -> Event {
        Event {
            seq: 1,
            event_id: "activity:org-1:a1".into(),
            kind: EventKind::Activity,
            org_id: "org-1".into(),
            occurred_at: "2026-12-05T08:00:00Z".into(),
            observed_at: "2026-12-05T08:00:01.5Z".into(),
            payload: r#"{"id":"a1","type":"key_create","createdAt":"2026-12-05T08:00:00.250Z","actorId":"u-1","actorIpAddress":"not an ip","userAgent":"curl/8","future":{"n":1.5,"l":[1,null]}}"#.into(),
        }
    }

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn an_activity_maps_times_severity_attributes_and_a_structured_body() {
        let r = Mapper::new(Format::Json, "svc").record(&activity());
        assert_eq!(r.time_unix_nano, 1_796_457_600_250_000_000);
        assert_eq!(r.observed_time_unix_nano, 1_796_457_601_500_000_000);
        assert_eq!(r.event_name, "key_create");
        let s = crate::format::catalog::info_for("key_create", None).severity;
        assert_eq!(r.severity_number, severity(s).0 as i32);
        let text = |v: Option<&any_value::Value>| match v {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        };
        assert_eq!(text(attr(&r, "user.id")).as_deref(), Some("u-1"));
        assert_eq!(
            text(attr(&r, "log.record.uid")).as_deref(),
            Some("activity:org-1:a1")
        );
        assert_eq!(
            text(attr(&r, "user_agent.original")).as_deref(),
            Some("curl/8")
        );
        assert!(attr(&r, "client.address").is_none(), "not an IP: left out");
        let Some(any_value::Value::KvlistValue(body)) = r.body.and_then(|b| b.value) else {
            panic!("body is not a kvlist")
        };
        assert!(body.values.iter().any(|kv| kv.key == "event_id"));
    }

    #[test]
    fn cef_bodies_are_strings_and_odd_payloads_still_map() {
        let mut e = activity();
        e.payload = "[1,2".into();
        let r = Mapper::new(Format::Cef, "svc").record(&e);
        assert!(matches!(
            r.body.and_then(|b| b.value),
            Some(any_value::Value::StringValue(s)) if s.starts_with("CEF:")
        ));
        assert_eq!(r.event_name, "");
        assert_eq!(r.time_unix_nano, 1_796_457_600_000_000_000);
    }
}
