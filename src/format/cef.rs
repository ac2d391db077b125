//! `cef`: ArcSight Common Event Format, one line per event, for ArcSight, QRadar and Microsoft
//! Sentinel's CEF connector (usually carried over syslog; over a webhook it is sent as lines).
//!
//! `CEF:0|ClickHouse|ClickHouse Cloud|<exporter version>|<type>|<Name>|<severity>|<extension>`.
//! Escaping (CEF spec rev. 25): in the header `\` → `\\` and `|` → `\|`; in extension values
//! `\` → `\\`, `=` → `\=`, line feed → `\n`, carriage return → `\r`. A line break in the header
//! and any other control character anywhere become a space, so a record is always one line.
//! Extension: `rt` (createdAt, epoch ms), `externalId` (the activity id, cut to ArcSight's 40
//! characters), `suid`/`suser`, `src` (valid IPs only), `cs1Label=orgId`, `cs2Label=eventId`
//! (the envelope id receivers deduplicate on), the rest in labelled custom strings.

use super::catalog;
use super::facts::Facts;
use super::view::{ActivityView, FindingView, InventoryView, parse_object, valid_ip};
use super::write::push_int;
use crate::event::{Event, EventKind};

const PREFIX: &str = concat!(
    "CEF:0|ClickHouse|ClickHouse Cloud|",
    env!("CARGO_PKG_VERSION"),
    "|"
);

/// ArcSight stores `externalId` in 40 characters.
const EXTERNAL_ID_MAX_CHARS: usize = 40;

pub fn encode(event: &Event, out: &mut Vec<u8>) {
    match event.kind {
        EventKind::Activity => encode_activity(event, out),
        EventKind::Inventory => encode_inventory(event, out),
        EventKind::Finding => encode_finding(event, out),
    }
}

/// Appends a header field, escaping `\` and `|`; line breaks and controls become spaces.
fn push_header(out: &mut Vec<u8>, s: &str) {
    push_escaped(out, s, |b| match b {
        b'\\' => Some(b"\\\\"),
        b'|' => Some(b"\\|"),
        b if b < 0x20 || b == 0x7f => Some(b" "),
        _ => None,
    });
}

/// Appends an extension value, escaping `\` and `=` and writing line breaks as `\n`/`\r`.
fn push_value(out: &mut Vec<u8>, s: &str) {
    push_escaped(out, s, |b| match b {
        b'\\' => Some(b"\\\\"),
        b'=' => Some(b"\\="),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b if b < 0x20 || b == 0x7f => Some(b" "),
        _ => None,
    });
}

/// Copies `s`, replacing the ASCII bytes `escape` names; runs of other bytes are copied at once.
#[inline]
fn push_escaped(out: &mut Vec<u8>, s: &str, escape: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x80 {
            continue; // part of a multi-byte character: never escaped
        }
        if let Some(rep) = escape(b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(rep);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `service_update_name` → `Service update name`, header-escaped, without allocating.
fn push_humanized(out: &mut Vec<u8>, ty: &str) {
    let mut chars = ty.chars();
    if let Some(c) = chars.next() {
        let mut buf = [0u8; 4];
        for u in c.to_uppercase() {
            push_header(out, u.encode_utf8(&mut buf));
        }
    }
    let rest = chars.as_str();
    let start = out.len();
    push_header(out, rest);
    for b in &mut out[start..] {
        if *b == b'_' {
            *b = b' ';
        }
    }
}

/// `CEF:0|…|<version>|` is written by the caller; this ends the header: `|<sev>|`.
fn push_severity(out: &mut Vec<u8>, severity: u8) {
    out.push(b'|');
    push_int(out, i64::from(severity));
    out.push(b'|');
}

/// ` key=value` (the key is a fixed CEF key; a leading space separates extensions).
fn ext(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    push_value(out, value);
}

/// ` csNLabel=<label> csN=value`.
fn labelled(out: &mut Vec<u8>, key: &str, label: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"Label=");
    out.extend_from_slice(label.as_bytes());
    ext(out, key, value);
}

/// ` [keyLabel=<label> ]key=a,b,c` for a non-empty list.
fn list<'s>(
    out: &mut Vec<u8>,
    key: &str,
    label: Option<&str>,
    items: impl Iterator<Item = &'s str>,
) {
    let mut items = items.peekable();
    if items.peek().is_none() {
        return;
    }
    if let Some(label) = label {
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"Label=");
        out.extend_from_slice(label.as_bytes());
    }
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_value(out, item);
    }
}

/// `rt=<ms>` first (no leading space), then `cat`, `cs1` org and `cs2` event id.
fn common(out: &mut Vec<u8>, event: &Event, time_ms: i64, cat: &str) {
    out.extend_from_slice(b"rt=");
    push_int(out, time_ms);
    ext(out, "cat", cat);
    labelled(out, "cs1", "orgId", &event.org_id);
    labelled(out, "cs2", "eventId", &event.event_id);
}

fn encode_activity(event: &Event, out: &mut Vec<u8>) {
    let a = parse_object::<ActivityView>(&event.payload).unwrap_or_default();
    let facts = Facts::activity(event, &a);
    let ty = if facts.ty.is_empty() {
        "unknown"
    } else {
        &facts.ty
    };

    out.extend_from_slice(PREFIX.as_bytes());
    push_header(out, ty);
    out.push(b'|');
    push_humanized(out, ty);
    push_severity(out, facts.severity.cef());
    common(out, event, facts.time_ms, "clickhouse_cloud.activity");
    ext(out, "act", ty);
    ext(
        out,
        "outcome",
        if catalog::is_failure(ty) {
            "failure"
        } else {
            "success"
        },
    );
    if let Some(id) = a.id.non_empty() {
        let cut = id
            .char_indices()
            .nth(EXTERNAL_ID_MAX_CHARS)
            .map_or(id.len(), |(i, _)| i);
        ext(out, "externalId", &id[..cut]);
    }
    if let Some(actor) = a.actor_id.non_empty() {
        ext(out, "suid", actor);
    }
    if let Some(name) = a.actor_details.non_empty().or(a.actor_id.non_empty()) {
        ext(out, "suser", name);
    }
    if let Some(ip) = valid_ip(a.actor_ip_address.get()) {
        ext(out, "src", ip);
    }
    if let Some(ua) = a.user_agent.non_empty() {
        ext(out, "requestClientApplication", ua);
    }
    list(out, "duser", None, a.target_actor_ids.iter());
    if let Some(s) = a.service_id.non_empty() {
        labelled(out, "cs3", "serviceId", s);
    }
    if let Some(s) = a.actor_type.non_empty() {
        labelled(out, "cs4", "actorType", s);
    }
    if let Some(s) = a.target_key_id.non_empty() {
        labelled(out, "cs5", "targetKeyId", s);
    }
    if let Some(s) = a.key_update_type.non_empty() {
        labelled(out, "cs6", "keyUpdateType", s);
    }
    let roles = if a.target_role_names.is_empty() {
        &a.target_role_ids
    } else {
        &a.target_role_names
    };
    list(out, "flexString1", Some("targetRoles"), roles.iter());
    list(
        out,
        "flexString2",
        Some("targetResourceIds"),
        a.target_resource_ids.iter(),
    );
}

fn encode_inventory(event: &Event, out: &mut Vec<u8>) {
    let v = parse_object::<InventoryView>(&event.payload).unwrap_or_default();
    let resource = v.resource.non_empty().unwrap_or("resource");
    let action = v.action.non_empty().unwrap_or("observed");
    let facts = Facts::inventory(event, &v);
    out.extend_from_slice(PREFIX.as_bytes());
    push_header(out, &facts.ty);
    out.push(b'|');
    push_humanized(out, resource);
    out.push(b' ');
    push_header(out, action);
    push_severity(out, facts.severity.cef());
    common(out, event, facts.time_ms, "clickhouse_cloud.inventory");
    ext(out, "act", action);
    labelled(out, "cs3", "resource", resource);
    if let Some(id) = v.resource_id.non_empty() {
        labelled(out, "cs4", "resourceId", id);
    }
    list(out, "cs5", Some("changed"), v.changed.iter());
    if let Some(name) = v.object_name() {
        labelled(out, "cs6", "resourceName", &name);
    }
}

fn encode_finding(event: &Event, out: &mut Vec<u8>) {
    let f = parse_object::<FindingView>(&event.payload).unwrap_or_default();
    let rule = f.rule.non_empty().unwrap_or("unknown_rule");
    let status = if f.is_resolved() { "resolved" } else { "open" };
    let facts = Facts::finding(event, &f);
    out.extend_from_slice(PREFIX.as_bytes());
    push_header(out, &facts.ty);
    out.push(b'|');
    match f.summary.non_empty() {
        Some(summary) => push_header(out, summary),
        None => push_humanized(out, rule),
    }
    push_severity(out, facts.severity.cef());
    common(out, event, facts.time_ms, "clickhouse_cloud.finding");
    ext(out, "act", status);
    if let Some(r) = f.resource.non_empty() {
        labelled(out, "cs3", "resource", r);
    }
    if let Some(id) = f.resource_id.non_empty() {
        labelled(out, "cs4", "resourceId", id);
    }
    labelled(out, "cs5", "rule", rule);
    if let Some(summary) = f.summary.non_empty() {
        ext(out, "msg", summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(payload: &str) -> String {
        let e = Event {
            observed_at: "2025-03-04T10:16:00Z".into(),
            ..crate::format::testing::event(EventKind::Activity, payload)
        };
        let mut out = Vec::new();
        encode(&e, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_and_extension_follow_the_spec() {
        let line = activity(
            r#"{"id":"a1","createdAt":"2025-03-04T10:15:30Z","type":"service_update_ip_access_list","actorId":"u1","actorDetails":"ann","actorIpAddress":"192.0.2.1","serviceId":"s1","actorType":"user"}"#,
        );
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            line,
            format!(
                "CEF:0|ClickHouse|ClickHouse Cloud|{version}|service_update_ip_access_list|Service update ip access list|8|\
                 rt=1741083330000 cat=clickhouse_cloud.activity cs1Label=orgId cs1=org-1 cs2Label=eventId cs2=activity:org-1:a1 \
                 act=service_update_ip_access_list outcome=success externalId=a1 suid=u1 suser=ann src=192.0.2.1 \
                 cs3Label=serviceId cs3=s1 cs4Label=actorType cs4=user"
            )
        );
    }

    #[test]
    fn hostile_values_are_escaped_and_stay_on_one_line() {
        let line =
            activity(r#"{"id":"x","type":"a|b\\c\nd","actorDetails":"k=v\\ \r\n|pipe\u0000"}"#);
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(line.contains("|a\\|b\\\\c d|"), "{line}");
        assert!(line.contains(" suser=k\\=v\\\\ \\r\\n|pipe "), "{line}");
    }

    /// Moved from `view.rs`, whose unused `humanize` duplicated `push_humanized` (issue 13).
    #[test]
    fn humanize_makes_a_sentence_of_a_type() {
        let humanize = |ty: &str| {
            let mut out = Vec::new();
            push_humanized(&mut out, ty);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            humanize("service_update_ip_access_list"),
            "Service update ip access list"
        );
        assert_eq!(humanize("ümlaut_x"), "Ümlaut x");
    }

    #[test]
    fn external_id_is_cut_to_forty_characters() {
        let id = "é".repeat(50);
        let line = activity(&format!(r#"{{"id":"{id}","type":"key_create"}}"#));
        assert!(
            line.ends_with(&format!(" externalId={}", "é".repeat(40))),
            "{line}"
        );
        assert!(line.contains("cs2=activity:org-1:a1"));
    }
}
