//! Finding transitions, pure: compares the rules' verdicts with the stored findings and emits
//! `open` when a finding starts (or starts again) and `resolved` when its condition clears or
//! its subject is gone. A finding that stays open emits nothing. Event ids:
//! `finding:<org>:<rule>:<resource_id>:<open|resolved>:<occurrence>` (`Event::finding_id`).

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::diff::rfc3339_ms;
use super::rules::Eval;
use crate::event::{Event, EventKind};
use crate::store::{FindingRow, NewEvent};

/// What changed this cycle.
#[derive(Debug, Default)]
pub struct Transitions {
    pub events: Vec<NewEvent>,
    pub rows: Vec<FindingRow>,
    /// (rule, status) of each event, for metrics.
    pub counted: Vec<(String, &'static str)>,
}

/// `enabled_rules`: rules evaluated this cycle; only their stored findings may resolve.
/// `subjects`: live ids by resource; an open finding whose subject is gone resolves.
pub fn transitions(
    org: &str,
    evals: &[Eval],
    stored: &[FindingRow],
    enabled_rules: &HashSet<&str>,
    subjects: &HashMap<&'static str, HashSet<String>>,
    now_ms: i64,
) -> Transitions {
    let now = rfc3339_ms(now_ms);
    let index: HashMap<(&str, &str), &FindingRow> = stored
        .iter()
        .map(|f| ((f.rule.as_str(), f.resource_id.as_str()), f))
        .collect();
    let mut t = Transitions::default();
    let mut judged = HashSet::new();
    for e in evals {
        judged.insert((e.rule, e.resource_id.as_str()));
        let prior = index.get(&(e.rule, e.resource_id.as_str()));
        let is_open = prior.is_some_and(|p| p.status == "open");
        match (&e.hit, is_open) {
            (Some(hit), false) => {
                let row = FindingRow {
                    rule: e.rule.to_string(),
                    resource_id: e.resource_id.clone(),
                    resource: e.resource.to_string(),
                    status: "open".into(),
                    severity: e.severity.as_str().into(),
                    occurrence: prior.map_or(0, |p| p.occurrence) + 1,
                    summary: hit.summary.clone(),
                    evidence: hit.evidence.to_string(),
                    opened_at: now.clone(),
                };
                t.push(org, &row, None, now_ms);
                t.rows.push(row);
            }
            (None, true) => {
                let row = FindingRow {
                    status: "resolved".into(),
                    ..(*prior.expect("is_open implies a stored row")).clone()
                };
                t.push(org, &row, Some("cleared"), now_ms);
                t.rows.push(row);
            }
            _ => {}
        }
    }
    for f in stored {
        let gone = f.status == "open"
            && enabled_rules.contains(f.rule.as_str())
            && !judged.contains(&(f.rule.as_str(), f.resource_id.as_str()))
            && subjects
                .get(f.resource.as_str())
                .is_some_and(|ids| !ids.contains(&f.resource_id));
        if gone {
            let row = FindingRow {
                status: "resolved".into(),
                ..f.clone()
            };
            t.push(org, &row, Some("deleted"), now_ms);
            t.rows.push(row);
        }
    }
    t
}

impl Transitions {
    fn push(&mut self, org: &str, f: &FindingRow, reason: Option<&str>, now_ms: i64) {
        let evidence: Value = serde_json::from_str(&f.evidence).unwrap_or(Value::Null);
        let mut body = json!({
            "rule": f.rule,
            "status": f.status,
            "severity": f.severity,
            "resource": f.resource,
            "resource_id": f.resource_id,
            "summary": f.summary,
            "evidence": evidence,
            "opened_at": f.opened_at,
        });
        if let Some(r) = reason {
            // `cleared`: the condition no longer holds; `deleted`: the object is gone.
            body["resolved_reason"] = json!(r);
        }
        self.events.push(NewEvent {
            occurred_ms: now_ms,
            event_id: Event::finding_id(org, &f.rule, &f.resource_id, &f.status, f.occurrence),
            kind: EventKind::Finding,
            org_id: org.to_string(),
            occurred_at: rfc3339_ms(now_ms),
            payload: body.to_string().into_boxed_str(),
        });
        let status = if f.status == "open" {
            "open"
        } else {
            "resolved"
        };
        self.counted.push((f.rule.clone(), status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use crate::poller::inventory::rules::Hit;

    fn eval(id: &str, open: bool) -> Eval {
        Eval {
            rule: "key_disabled",
            resource: "key",
            resource_id: id.into(),
            severity: Severity::Low,
            hit: open.then(|| Hit {
                summary: "s".into(),
                evidence: json!({}),
            }),
        }
    }

    #[test]
    fn opens_once_resolves_once_and_reopens_with_a_new_occurrence() {
        let rules = HashSet::from(["key_disabled"]);
        let subjects = HashMap::from([("key", HashSet::from(["k".to_string()]))]);
        let t1 = transitions("o", &[eval("k", true)], &[], &rules, &subjects, 1);
        assert_eq!(t1.events.len(), 1);
        assert_eq!(t1.events[0].event_id, "finding:o:key_disabled:k:open:1");
        let t2 = transitions("o", &[eval("k", true)], &t1.rows, &rules, &subjects, 2);
        assert!(t2.events.is_empty(), "still open: nothing new");
        let t3 = transitions("o", &[eval("k", false)], &t1.rows, &rules, &subjects, 3);
        assert_eq!(t3.events[0].event_id, "finding:o:key_disabled:k:resolved:1");
        let t4 = transitions("o", &[eval("k", true)], &t3.rows, &rules, &subjects, 4);
        assert_eq!(t4.events[0].event_id, "finding:o:key_disabled:k:open:2");
    }

    #[test]
    fn a_deleted_subject_resolves_but_an_unjudged_one_stays() {
        let rules = HashSet::from(["key_disabled"]);
        let open = transitions("o", &[eval("k", true)], &[], &rules, &HashMap::new(), 1).rows;
        let present = HashMap::from([("key", HashSet::from(["k".to_string()]))]);
        assert!(
            transitions("o", &[], &open, &rules, &present, 2)
                .events
                .is_empty()
        );
        let gone = HashMap::from([("key", HashSet::new())]);
        let t = transitions("o", &[], &open, &rules, &gone, 2);
        let v: Value = serde_json::from_str(&t.events[0].payload).unwrap();
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["resolved_reason"], "deleted");
        let off = HashSet::new();
        assert!(
            transitions("o", &[], &open, &off, &gone, 2)
                .events
                .is_empty()
        );
    }
}
