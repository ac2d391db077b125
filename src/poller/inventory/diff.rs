//! Snapshot diffing, pure: given the stored snapshots of one list's scope and the objects the
//! API just returned, decide each object's action (`observed`, `created`, `updated`,
//! `deleted`, or nothing), its `changed` fields, the event to emit and the snapshot to write.
//!
//! An object's identity for change detection is the SHA-256 of its canonical JSON (keys
//! sorted, numbers normalized by serde_json) minus the resource's ignored fields, with idle
//! service states counted as `running`. `before`/`after` in events are the verbatim texts.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::Resource;
use crate::event::{Event, EventKind};
use crate::format::push_json_str;
use crate::store::{NewEvent, Snapshot};

/// How one list is compared.
#[derive(Debug, Clone)]
pub struct DiffCtx<'a> {
    pub org: &'a str,
    pub resource: Resource,
    /// Backups: the service whose list this is (`""` otherwise).
    pub parent: &'a str,
    /// Action for an id not seen before: `observed` on the scope's first list (a baseline),
    /// else `created`.
    pub new_action: &'static str,
    pub ignore: &'a [String],
    /// Service states hashed as `running` (idle scaling).
    pub idle_states: &'a [String],
    pub now_ms: i64,
}

/// What a diff decided.
#[derive(Debug, Default)]
pub struct Plan {
    pub events: Vec<NewEvent>,
    pub writes: Vec<Snapshot>,
    /// Ids with an event, and its action.
    pub actions: Vec<(String, &'static str)>,
    /// Objects without a usable id (not stored, not diffed).
    pub without_id: usize,
}

/// The canonical form of an object for hashing and field comparison.
pub fn canonical(raw: &str, resource: Resource, ignore: &[String], idle: &[String]) -> Value {
    let mut v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for f in ignore {
            map.remove(f);
        }
        if resource == Resource::Services
            && let Some(Value::String(state)) = map.get_mut("state")
            && idle.iter().any(|s| s == state)
        {
            *state = "running".into();
        }
    }
    v
}

/// Hex SHA-256 of the canonical JSON text.
pub fn hash(canonical: &Value) -> String {
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Top-level fields whose canonical values differ (sorted).
pub fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = Map::new();
    let (b, a) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect()
}

/// Compares `fetched` (id, verbatim JSON) with `prior` (this scope's stored objects,
/// tombstones included). Only a complete, successful list may be passed: every live prior
/// object missing from it is reported `deleted`.
pub fn diff(
    ctx: &DiffCtx<'_>,
    prior: &HashMap<String, Snapshot>,
    fetched: Vec<(Option<String>, String)>,
) -> Plan {
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    let canon = |raw: &str| canonical(raw, ctx.resource, ctx.ignore, ctx.idle_states);
    for (id, raw) in fetched {
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            plan.without_id += 1;
            continue;
        };
        if !seen.insert(id.clone()) {
            continue; // a repeated id: the first copy wins
        }
        let after = canon(&raw);
        let after_hash = hash(&after);
        match prior.get(&id).filter(|p| !p.deleted) {
            None => {
                let revision = prior.get(&id).map_or(0, |p| p.revision) + 1;
                let action = ctx.new_action;
                plan.push(
                    ctx,
                    &id,
                    action,
                    &[],
                    None,
                    Some(&raw),
                    revision,
                    &after_hash,
                );
                plan.writes.push(Snapshot {
                    object_id: id,
                    parent_id: ctx.parent.to_string(),
                    hash: after_hash,
                    raw,
                    revision,
                    first_action: action.to_string(),
                    deleted: false,
                });
            }
            Some(p) if p.hash == after_hash => {
                if p.raw != raw {
                    // Only ignored fields moved: refresh silently.
                    plan.writes.push(Snapshot { raw, ..p.clone() });
                }
            }
            Some(p) => {
                let changed = changed_fields(&canon(&p.raw), &after);
                let revision = p.revision + 1;
                plan.push(
                    ctx,
                    &id,
                    "updated",
                    &changed,
                    Some(&p.raw),
                    Some(&raw),
                    revision,
                    &after_hash,
                );
                plan.writes.push(Snapshot {
                    hash: after_hash,
                    raw,
                    revision,
                    ..p.clone()
                });
            }
        }
    }
    let mut gone: Vec<&Snapshot> = prior
        .values()
        .filter(|p| !p.deleted && !seen.contains(&p.object_id))
        .collect();
    gone.sort_by(|a, b| a.object_id.cmp(&b.object_id));
    for p in gone {
        let revision = p.revision + 1;
        plan.push(
            ctx,
            &p.object_id,
            "deleted",
            &[],
            Some(&p.raw),
            None,
            revision,
            "deleted",
        );
        plan.writes.push(Snapshot {
            revision,
            deleted: true,
            ..p.clone()
        });
    }
    plan
}

impl Plan {
    #[expect(
        clippy::too_many_arguments,
        reason = "one event's fields, named at the call sites"
    )]
    fn push(
        &mut self,
        ctx: &DiffCtx<'_>,
        id: &str,
        action: &'static str,
        changed: &[String],
        before: Option<&str>,
        after: Option<&str>,
        revision: i64,
        tag: &str,
    ) {
        let resource = ctx.resource.singular();
        let mut p = Vec::with_capacity(64 + before.map_or(0, str::len) + after.map_or(0, str::len));
        p.extend_from_slice(b"{\"resource\":\"");
        p.extend_from_slice(resource.as_bytes());
        p.extend_from_slice(b"\",\"resource_id\":");
        push_json_str(&mut p, id);
        if !ctx.parent.is_empty() {
            p.extend_from_slice(b",\"service_id\":");
            push_json_str(&mut p, ctx.parent);
        }
        p.extend_from_slice(b",\"action\":\"");
        p.extend_from_slice(action.as_bytes());
        p.extend_from_slice(b"\",\"changed\":[");
        for (i, f) in changed.iter().enumerate() {
            if i > 0 {
                p.push(b',');
            }
            push_json_str(&mut p, f);
        }
        p.extend_from_slice(b"],\"before\":");
        p.extend_from_slice(before.map_or("null", str::trim).as_bytes());
        p.extend_from_slice(b",\"after\":");
        p.extend_from_slice(after.map_or("null", str::trim).as_bytes());
        p.push(b'}');
        self.events.push(NewEvent {
            occurred_ms: ctx.now_ms,
            event_id: Event::inventory_id(ctx.org, resource, id, revision, tag),
            kind: EventKind::Inventory,
            org_id: ctx.org.to_string(),
            occurred_at: rfc3339_ms(ctx.now_ms),
            payload: String::from_utf8(p)
                .expect("built from UTF-8 strings")
                .into_boxed_str(),
        });
        self.actions.push((id.to_string(), action));
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(new_action: &'static str, ignore: &'a [String]) -> DiffCtx<'a> {
        DiffCtx {
            org: "o1",
            resource: Resource::Keys,
            parent: "",
            new_action,
            ignore,
            idle_states: &[],
            now_ms: 1_700_000_000_000,
        }
    }

    fn store(plan: &Plan) -> HashMap<String, Snapshot> {
        plan.writes
            .iter()
            .map(|w| (w.object_id.clone(), w.clone()))
            .collect()
    }

    fn obj(id: &str, body: &str) -> (Option<String>, String) {
        (Some(id.into()), body.into())
    }

    fn payload(plan: &Plan, i: usize) -> Value {
        serde_json::from_str(&plan.events[i].payload).unwrap()
    }

    #[test]
    fn first_list_is_observed_then_quiet() {
        let ignore = vec!["usedAt".to_string()];
        let first = diff(
            &ctx("observed", &ignore),
            &HashMap::new(),
            vec![obj("k1", r#"{"id":"k1","state":"enabled","usedAt":"a"}"#)],
        );
        assert_eq!(first.actions, vec![("k1".into(), "observed")]);
        let v = payload(&first, 0);
        assert_eq!(v["resource"], "key");
        assert_eq!(v["before"], Value::Null);
        assert_eq!(v["after"]["usedAt"], "a");
        let prior = store(&first);
        let again = diff(
            &ctx("created", &ignore),
            &prior,
            vec![obj("k1", r#"{"id":"k1","state":"enabled","usedAt":"b"}"#)],
        );
        assert!(again.events.is_empty(), "usedAt is ignored");
        assert_eq!(again.writes.len(), 1, "but the stored copy is refreshed");
        assert_eq!(again.writes[0].revision, 1);
    }

    #[test]
    fn updates_name_their_fields_and_deletes_need_absence() {
        let prior = store(&diff(
            &ctx("observed", &[]),
            &HashMap::new(),
            vec![
                obj("k1", r#"{"id":"k1","state":"enabled","n":1.50}"#),
                obj("k2", r#"{"id":"k2"}"#),
            ],
        ));
        let plan = diff(
            &ctx("created", &[]),
            &prior,
            vec![
                obj("k1", r#"{"n":1.5,"id":"k1","state":"disabled","x":[]}"#),
                obj("k3", r#"{"id":"k3"}"#),
            ],
        );
        let actions: Vec<_> = plan.actions.iter().map(|(i, a)| (i.as_str(), *a)).collect();
        assert_eq!(
            actions,
            vec![("k1", "updated"), ("k3", "created"), ("k2", "deleted")]
        );
        assert_eq!(
            payload(&plan, 0)["changed"],
            serde_json::json!(["state", "x"])
        );
        assert_eq!(payload(&plan, 2)["before"]["id"], "k2");
        assert_eq!(payload(&plan, 2)["after"], Value::Null);
        // A re-created id continues its revision, so its event id is new.
        let prior = store(&plan);
        let back = diff(
            &ctx("created", &[]),
            &prior,
            vec![
                obj("k1", r#"{"n":1.5,"id":"k1","state":"disabled","x":[]}"#),
                obj("k3", r#"{"id":"k3"}"#),
                obj("k2", r#"{"id":"k2"}"#),
            ],
        );
        assert_eq!(back.actions, vec![("k2".into(), "created")]);
        assert!(
            back.events[0]
                .event_id
                .starts_with("inventory:o1:key:k2:3:")
        );
        assert_ne!(back.events[0].event_id, plan.events[2].event_id);
    }

    #[test]
    fn idle_scaling_is_not_a_change() {
        let idle = vec!["idle".to_string()];
        let c = DiffCtx {
            resource: Resource::Services,
            idle_states: &idle,
            ..ctx("observed", &[])
        };
        let prior = store(&diff(
            &c,
            &HashMap::new(),
            vec![obj("s", r#"{"id":"s","state":"running"}"#)],
        ));
        let plan = diff(&c, &prior, vec![obj("s", r#"{"id":"s","state":"idle"}"#)]);
        assert!(plan.events.is_empty());
        let plan = diff(
            &c,
            &prior,
            vec![obj("s", r#"{"id":"s","state":"stopped"}"#)],
        );
        assert_eq!(plan.actions, vec![("s".into(), "updated")]);
    }

    #[test]
    fn objects_without_ids_are_counted_not_stored() {
        let plan = diff(
            &ctx("observed", &[]),
            &HashMap::new(),
            vec![(None, "{}".into()), (Some(String::new()), "{}".into())],
        );
        assert_eq!(plan.without_id, 2);
        assert!(plan.writes.is_empty());
    }
}
