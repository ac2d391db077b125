//! The poller's posture step: parses the stored snapshot into a `View`, evaluates the rules,
//! stores the finding transitions and sets the `findings_open` gauge.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::findings;
use super::rules::{self, Obj, RULES, View};
use super::{CycleStats, InventoryPoller};
use crate::config::Resource;

impl InventoryPoller {
    /// Evaluates every enabled rule on the stored snapshot and stores the transitions.
    pub(super) async fn findings(
        &self,
        now: DateTime<Utc>,
        stats: &mut CycleStats,
    ) -> anyhow::Result<View> {
        let org = self.org.as_str();
        let store = &self.s.store;
        let cfg = &self.s.cfg;
        let view = self.view().await?;
        let evals = rules::evaluate(&view, now, &cfg.findings);
        let enabled: HashSet<&str> = RULES
            .iter()
            .filter(|r| rules::settings(&cfg.findings, r.name).0 && self.rule_has_data(r))
            .map(|r| r.name)
            .collect();
        let stored = store.findings(org).await?;
        let t = findings::transitions(
            org,
            &evals,
            &stored,
            &enabled,
            &rules::subjects(&view),
            now.timestamp_millis(),
        );
        if !t.rows.is_empty() {
            for (row, (rule, status)) in t.rows.iter().zip(&t.counted) {
                self.s
                    .metrics
                    .finding_events
                    .with_label_values(&[org, rule, status])
                    .inc();
                if *status == "open" {
                    stats.findings_opened += 1;
                } else {
                    stats.findings_resolved += 1;
                }
                tracing::info!(org, rule = %rule, severity = %row.severity, resource = %row.resource, resource_id = %row.resource_id, summary = %row.summary, "finding {status}");
            }
            let inserted = store.apply_findings(org, t.events, t.rows).await?;
            if inserted.new > 0 {
                self.s.wake.send_replace(inserted.max_seq);
            }
        }
        let counts = store.open_finding_counts().await?;
        let gauge = &self.s.metrics.findings_open;
        gauge.reset();
        for r in RULES {
            let (on, severity) = rules::settings(&cfg.findings, r.name);
            if on {
                let sev = severity.unwrap_or(r.severity);
                gauge.with_label_values(&[r.name, sev.as_str()]).set(0);
            }
        }
        for (rule, severity, n) in counts {
            if enabled.contains(rule.as_str()) {
                gauge.with_label_values(&[&rule, &severity]).set(n);
            }
        }
        Ok(view)
    }

    /// Whether the rule's inputs are configured resources (else its findings are left alone).
    fn rule_has_data(&self, r: &rules::RuleInfo) -> bool {
        let cfg = &self.s.cfg;
        match r.name {
            "backup_failed" | "backup_stale" => {
                cfg.has(Resource::Backups) && cfg.has(Resource::Services)
            }
            _ => match r.resource {
                "service" => cfg.has(Resource::Services),
                "key" => cfg.has(Resource::Keys),
                "member" => cfg.has(Resource::Members),
                "invitation" => cfg.has(Resource::Invitations),
                _ => false,
            },
        }
    }

    /// The stored snapshot of the configured resources, parsed.
    async fn view(&self) -> anyhow::Result<View> {
        let org = self.org.as_str();
        let cfg = &self.s.cfg;
        let mut view = View::default();
        for row in self.s.store.inventory_view(org).await? {
            let Some(r) = Resource::parse(&row.resource).filter(|r| cfg.has(*r)) else {
                continue;
            };
            let v = serde_json::from_str(&row.raw).unwrap_or(serde_json::Value::Null);
            let obj = Obj {
                id: row.object_id,
                v,
            };
            match r {
                Resource::Services => view.services.push(obj),
                Resource::Keys => view.keys.push(obj),
                Resource::Members => view.members.push(obj),
                Resource::Invitations => view.invitations.push(obj),
                Resource::Backups => view.backups.entry(row.parent_id).or_default().push(obj.v),
            }
        }
        if cfg.has(Resource::Backups) {
            view.backups_known = self
                .s
                .store
                .inventory_fetches(org, Resource::Backups.plural())
                .await?
                .into_keys()
                .collect();
        }
        Ok(view)
    }
}
