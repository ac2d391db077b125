//! `ocsf`: Open Cybersecurity Schema Framework 1.3.0 events (Amazon Security Lake, Splunk's
//! OCSF add-on, any OCSF pipeline). The class and activity of an activity come from the
//! catalogue (`catalog.rs`, one row per vendor type); every event sets `class_uid`,
//! `category_uid`, `activity_id`, `type_uid = class_uid * 100 + activity_id`, `time` (ms, from
//! `createdAt`), `severity_id`, `metadata.{version, product, uid = event_id}`, `actor`,
//! `src_endpoint.ip` (valid IPs only), `cloud.account.uid` = org, and keeps the verbatim activity
//! as `unmapped` (as `raw_data` text when the payload is not a JSON object).
//!
//! Inventory events → Entity Management (3004): the inventoried object is the managed `entity`
//! and created/updated/deleted/observed line up with its Create/Update/Delete/Read activities.
//! Inventory Info (5001), the Discovery class issue #6 names first, requires a `device` — a host
//! — and ClickHouse services, API keys and members are not hosts.
//! Findings → Detection Finding (2004): open = Create, resolved = Close, with `finding_info`
//! keyed by rule and resource so the open and the resolution correlate.
//! Tests validate the output against the official 1.3.0 schema (pydantic-ocsf).
//!
//! Layout: this file writes the parts every event shares (`open`, `metadata`, `close`);
//! `activity.rs` maps activities, `state.rs` inventory events and findings.

mod activity;
mod state;
#[cfg(test)]
mod tests;

use super::catalog::Severity;
use super::time::parse_time_ms;
use super::write::{push_int, push_json_str, push_json_str_contents, push_verbatim};
use crate::event::{Event, EventKind};

pub const OCSF_VERSION: &str = "1.3.0";

pub fn encode(event: &Event, out: &mut Vec<u8>) {
    match event.kind {
        EventKind::Activity => activity::encode(event, out),
        EventKind::Inventory => state::encode_inventory(event, out),
        EventKind::Finding => state::encode_finding(event, out),
    }
}

/// The classification and occurrence attributes every event opens with.
pub(super) struct Head<'s> {
    pub(super) class_uid: u32,
    pub(super) class_name: &'s str,
    pub(super) category_uid: u32,
    pub(super) category_name: &'s str,
    pub(super) activity_id: u8,
    pub(super) activity_name: &'s str,
    pub(super) severity: Severity,
    /// `Some(true)` Success, `Some(false)` Failure.
    pub(super) success: Option<bool>,
    pub(super) time_ms: i64,
}

pub(super) fn open(h: &Head, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"class_uid\":");
    push_int(out, i64::from(h.class_uid));
    out.extend_from_slice(b",\"class_name\":");
    push_json_str(out, h.class_name);
    out.extend_from_slice(b",\"category_uid\":");
    push_int(out, i64::from(h.category_uid));
    out.extend_from_slice(b",\"category_name\":");
    push_json_str(out, h.category_name);
    out.extend_from_slice(b",\"activity_id\":");
    push_int(out, i64::from(h.activity_id));
    out.extend_from_slice(b",\"activity_name\":");
    push_json_str(out, h.activity_name);
    out.extend_from_slice(b",\"type_uid\":");
    push_int(out, i64::from(h.class_uid) * 100 + i64::from(h.activity_id));
    out.extend_from_slice(b",\"type_name\":\"");
    push_json_str_contents(out, h.class_name);
    out.extend_from_slice(b": ");
    push_json_str_contents(out, h.activity_name);
    out.push(b'"');
    out.extend_from_slice(b",\"severity_id\":");
    push_int(out, i64::from(h.severity.id()));
    out.extend_from_slice(b",\"severity\":\"");
    out.extend_from_slice(h.severity.caption().as_bytes());
    out.push(b'"');
    match h.success {
        Some(true) => out.extend_from_slice(b",\"status_id\":1,\"status\":\"Success\""),
        Some(false) => out.extend_from_slice(b",\"status_id\":2,\"status\":\"Failure\""),
        None => {}
    }
    out.extend_from_slice(b",\"time\":");
    push_int(out, h.time_ms);
}

/// `metadata` (`original_time`: the source's time text, `createdAt` for activities), then
/// `cloud`. `actor_via_host` lists the host profile, through which User Access Management
/// (3005) gets its `actor` attribute.
pub(super) fn metadata(
    event: &Event,
    event_code: Option<&str>,
    original_time: &str,
    log_name: &str,
    actor_via_host: bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b",\"metadata\":{\"version\":\"");
    out.extend_from_slice(OCSF_VERSION.as_bytes());
    out.extend_from_slice(
        b"\",\"product\":{\"name\":\"ClickHouse Cloud\",\"vendor_name\":\"ClickHouse\"},\"uid\":",
    );
    push_json_str(out, &event.event_id);
    if let Some(code) = event_code {
        out.extend_from_slice(b",\"event_code\":");
        push_json_str(out, code);
    }
    out.extend_from_slice(b",\"original_time\":");
    push_json_str(out, original_time);
    if let Some(ms) = parse_time_ms(&event.observed_at) {
        out.extend_from_slice(b",\"logged_time\":");
        push_int(out, ms);
    }
    out.extend_from_slice(b",\"log_name\":\"");
    out.extend_from_slice(log_name.as_bytes());
    out.extend_from_slice(if actor_via_host {
        b"\",\"profiles\":[\"cloud\",\"host\"]}"
    } else {
        b"\",\"profiles\":[\"cloud\"]}"
    });
    out.extend_from_slice(b",\"cloud\":{\"provider\":\"ClickHouse Cloud\",\"account\":{\"uid\":");
    push_json_str(out, &event.org_id);
    out.extend_from_slice(b"}}");
}

/// `"unmapped":{verbatim}` or, for a payload that is not an object, `"raw_data":"…"`; then `}`.
pub(super) fn close(event: &Event, is_object: bool, out: &mut Vec<u8>) {
    if is_object {
        out.extend_from_slice(b",\"unmapped\":");
        push_verbatim(out, &event.payload);
    } else {
        out.extend_from_slice(b",\"raw_data\":");
        push_json_str(out, &event.payload);
    }
    out.push(b'}');
}
