//! Inventory state (issue #6): the last snapshot of every object (verbatim JSON + hash +
//! revision, tombstones for deleted ones), the last successful list per scope, and posture
//! findings. Snapshot changes are stored in ONE transaction with the events describing them,
//! so a crash can neither lose an event nor emit one twice; same for findings.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::outbox::{InsertStats, NewEvent, insert_events, now_rfc3339};

/// A stored object (or tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub object_id: String,
    /// Backups: the service id; `""` otherwise.
    pub parent_id: String,
    pub hash: String,
    pub raw: String,
    pub revision: i64,
    /// `observed` or `created`: how the object entered the snapshot.
    pub first_action: String,
    pub deleted: bool,
}

/// A live object of the organization's current snapshot.
#[derive(Debug, Clone)]
pub struct ViewRow {
    pub resource: String,
    pub object_id: String,
    pub parent_id: String,
    pub raw: String,
}

/// One finding's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    pub rule: String,
    pub resource_id: String,
    pub resource: String,
    /// `open` or `resolved`.
    pub status: String,
    pub severity: String,
    pub occurrence: i64,
    pub summary: String,
    /// JSON text.
    pub evidence: String,
    pub opened_at: String,
}

impl Store {
    /// Every stored object (tombstones included) of `resource` in `org`, by id; only those of
    /// `parent` when given.
    pub async fn snapshots(
        &self,
        org: &str,
        resource: &str,
        parent: Option<&str>,
    ) -> anyhow::Result<HashMap<String, Snapshot>> {
        let (org, resource, parent) = (
            org.to_string(),
            resource.to_string(),
            parent.map(str::to_string),
        );
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT object_id, parent_id, hash, raw, revision, first_action, deleted
                 FROM inventory_snapshots
                 WHERE org_id = ?1 AND resource = ?2 AND (?3 IS NULL OR parent_id = ?3)",
            )?;
            let rows = stmt.query_map(params![org, resource, parent], |r| {
                Ok(Snapshot {
                    object_id: r.get(0)?,
                    parent_id: r.get(1)?,
                    hash: r.get(2)?,
                    raw: r.get(3)?,
                    revision: r.get(4)?,
                    first_action: r.get(5)?,
                    deleted: r.get::<_, i64>(6)? != 0,
                })
            })?;
            rows.map(|r| r.map(|s| (s.object_id.clone(), s))).collect()
        })
        .await
    }

    /// In ONE transaction: insert `events`, upsert `writes` (a write with `deleted` makes a
    /// tombstone), and, when `fetched` is `Some((scope, ms))`, record that the list of
    /// (`resource`, scope) succeeded at `ms`.
    pub async fn apply_inventory(
        &self,
        org: &str,
        resource: &str,
        events: Vec<NewEvent>,
        writes: Vec<Snapshot>,
        fetched: Option<(String, i64)>,
        now_ms: i64,
    ) -> anyhow::Result<InsertStats> {
        let (org, resource) = (org.to_string(), resource.to_string());
        self.write(move |conn| {
            let observed = now_rfc3339();
            let tx = super::write_tx(conn)?;
            let mut stats = InsertStats::default();
            (stats.new, stats.duplicates) = insert_events(&tx, &events, &observed, None)?;
            {
                let mut up = tx.prepare_cached(
                    "INSERT INTO inventory_snapshots (org_id, resource, object_id, parent_id, hash, raw,
                       revision, first_action, deleted, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (org_id, resource, object_id) DO UPDATE SET parent_id = excluded.parent_id,
                       hash = excluded.hash, raw = excluded.raw, revision = excluded.revision,
                       first_action = excluded.first_action, deleted = excluded.deleted,
                       updated_ms = excluded.updated_ms",
                )?;
                for w in &writes {
                    up.execute(params![
                        org,
                        resource,
                        w.object_id,
                        w.parent_id,
                        w.hash,
                        w.raw,
                        w.revision,
                        w.first_action,
                        w.deleted as i64,
                        now_ms
                    ])?;
                }
            }
            if let Some((scope, ms)) = &fetched {
                tx.execute(
                    "INSERT INTO inventory_fetches (org_id, resource, scope, fetched_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (org_id, resource, scope) DO UPDATE SET fetched_ms = excluded.fetched_ms",
                    params![org, resource, scope, ms],
                )?;
            }
            stats.max_seq =
                tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            tx.commit()?;
            Ok(stats)
        })
        .await
    }

    /// Tombstones, without events, every object of `resource` whose parent is one of
    /// `parents`, and forgets those scopes' last fetch (a deleted service's backups).
    pub async fn forget_children(
        &self,
        org: &str,
        resource: &str,
        parents: Vec<String>,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let (org, resource) = (org.to_string(), resource.to_string());
        self.write(move |conn| {
            let tx = super::write_tx(conn)?;
            for p in &parents {
                tx.execute(
                    "UPDATE inventory_snapshots SET deleted = 1, updated_ms = ?4
                     WHERE org_id = ?1 AND resource = ?2 AND parent_id = ?3 AND deleted = 0",
                    params![org, resource, p, now_ms],
                )?;
                tx.execute(
                    "DELETE FROM inventory_fetches WHERE org_id = ?1 AND resource = ?2 AND scope = ?3",
                    params![org, resource, p],
                )?;
            }
            tx.commit()
        })
        .await
    }

    /// Every live (not deleted) object of `org`.
    pub async fn inventory_view(&self, org: &str) -> anyhow::Result<Vec<ViewRow>> {
        let org = org.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT resource, object_id, parent_id, raw FROM inventory_snapshots
                 WHERE org_id = ?1 AND deleted = 0 ORDER BY resource, object_id",
            )?;
            let rows = stmt.query_map([org], |r| {
                Ok(ViewRow {
                    resource: r.get(0)?,
                    object_id: r.get(1)?,
                    parent_id: r.get(2)?,
                    raw: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// When each scope of (`org`, `resource`) was last listed successfully (unix ms).
    pub async fn inventory_fetches(
        &self,
        org: &str,
        resource: &str,
    ) -> anyhow::Result<HashMap<String, i64>> {
        let (org, resource) = (org.to_string(), resource.to_string());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT scope, fetched_ms FROM inventory_fetches WHERE org_id = ?1 AND resource = ?2",
            )?;
            let rows = stmt.query_map(params![org, resource], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// Whether (`org`, `resource`, `scope`) was ever listed successfully.
    pub async fn has_baseline(
        &self,
        org: &str,
        resource: &str,
        scope: &str,
    ) -> anyhow::Result<bool> {
        let (org, resource, scope) = (org.to_string(), resource.to_string(), scope.to_string());
        self.read(move |conn| {
            conn.query_row(
                "SELECT 1 FROM inventory_fetches WHERE org_id = ?1 AND resource = ?2 AND scope = ?3",
                params![org, resource, scope],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
        .await
    }

    /// Every stored finding of `org`, open or resolved.
    pub async fn findings(&self, org: &str) -> anyhow::Result<Vec<FindingRow>> {
        let org = org.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT rule, resource_id, resource, status, severity, occurrence, summary, evidence, opened_at
                 FROM findings WHERE org_id = ?1 ORDER BY rule, resource_id",
            )?;
            let rows = stmt.query_map([org], |r| {
                Ok(FindingRow {
                    rule: r.get(0)?,
                    resource_id: r.get(1)?,
                    resource: r.get(2)?,
                    status: r.get(3)?,
                    severity: r.get(4)?,
                    occurrence: r.get(5)?,
                    summary: r.get(6)?,
                    evidence: r.get(7)?,
                    opened_at: r.get(8)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// In ONE transaction: insert the finding `events` and upsert `rows`.
    pub async fn apply_findings(
        &self,
        org: &str,
        events: Vec<NewEvent>,
        rows: Vec<FindingRow>,
    ) -> anyhow::Result<InsertStats> {
        let org = org.to_string();
        self.write(move |conn| {
            let observed = now_rfc3339();
            let tx = super::write_tx(conn)?;
            let mut stats = InsertStats::default();
            (stats.new, stats.duplicates) = insert_events(&tx, &events, &observed, None)?;
            {
                let mut up = tx.prepare_cached(
                    "INSERT INTO findings (org_id, rule, resource_id, resource, status, severity, occurrence,
                       summary, evidence, opened_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (org_id, rule, resource_id) DO UPDATE SET resource = excluded.resource,
                       status = excluded.status, severity = excluded.severity, occurrence = excluded.occurrence,
                       summary = excluded.summary, evidence = excluded.evidence, opened_at = excluded.opened_at,
                       updated_at = excluded.updated_at",
                )?;
                for f in &rows {
                    up.execute(params![
                        org,
                        f.rule,
                        f.resource_id,
                        f.resource,
                        f.status,
                        f.severity,
                        f.occurrence,
                        f.summary,
                        f.evidence,
                        f.opened_at,
                        observed
                    ])?;
                }
            }
            stats.max_seq =
                tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            tx.commit()?;
            Ok(stats)
        })
        .await
    }

    /// Open findings of every organization, counted by (rule, severity).
    pub async fn open_finding_counts(&self) -> anyhow::Result<Vec<(String, String, i64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT rule, severity, COUNT(*) FROM findings WHERE status = 'open' GROUP BY rule, severity",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .await
    }

    /// Drops tombstones older than `cutoff_ms` and resolved findings not updated since then.
    pub async fn prune_inventory(&self, cutoff_ms: i64) -> anyhow::Result<u64> {
        let cutoff = chrono::DateTime::from_timestamp_millis(cutoff_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.write(move |conn| {
            let a = conn.execute(
                "DELETE FROM inventory_snapshots WHERE deleted = 1 AND updated_ms < ?1",
                [cutoff_ms],
            )?;
            let b = conn.execute(
                "DELETE FROM findings WHERE status = 'resolved' AND updated_at < ?1",
                [cutoff],
            )?;
            Ok((a + b) as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn snap(id: &str, hash: &str, deleted: bool) -> Snapshot {
        Snapshot {
            object_id: id.into(),
            parent_id: String::new(),
            hash: hash.into(),
            raw: format!(r#"{{"id":"{id}"}}"#),
            revision: 1,
            first_action: "observed".into(),
            deleted,
        }
    }

    fn event(id: &str) -> NewEvent {
        NewEvent {
            occurred_ms: 1000,
            event_id: id.into(),
            kind: EventKind::Inventory,
            org_id: "o".into(),
            occurred_at: "1970-01-01T00:00:01Z".into(),
            payload: "{}".into(),
        }
    }

    #[tokio::test]
    async fn snapshots_events_and_fetch_marks_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert!(!store.has_baseline("o", "keys", "").await.unwrap());
        let stats = store
            .apply_inventory(
                "o",
                "keys",
                vec![event("e1"), event("e2")],
                vec![snap("k1", "h1", false), snap("k2", "h2", true)],
                Some((String::new(), 1000)),
                1000,
            )
            .await
            .unwrap();
        assert_eq!(stats.new, 2);
        assert!(store.has_baseline("o", "keys", "").await.unwrap());
        let snaps = store.snapshots("o", "keys", None).await.unwrap();
        assert_eq!(snaps.len(), 2);
        assert!(snaps["k2"].deleted);
        let view = store.inventory_view("o").await.unwrap();
        assert_eq!(view.len(), 1, "tombstones are not part of the view");
        // Replaying the same events is harmless (outbox dedupe key).
        let again = store
            .apply_inventory("o", "keys", vec![event("e1")], vec![], None, 1000)
            .await
            .unwrap();
        assert_eq!((again.new, again.duplicates), (0, 1));
        assert_eq!(store.prune_inventory(2000).await.unwrap(), 1);
        assert_eq!(store.snapshots("o", "keys", None).await.unwrap().len(), 1);
    }
}
