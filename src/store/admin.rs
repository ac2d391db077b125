//! Inspection and repair behind `state show | rewind | verify`: cursors, per-sink backlog, file
//! size; moving a cursor back (optionally sinks too); integrity check plus our own invariants.

use rusqlite::{OptionalExtension, params};

use super::Store;

/// One cursor row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CursorReport {
    pub org_id: String,
    pub stream: String,
    pub cursor: String,
    pub window_seconds: Option<i64>,
    pub updated_at: String,
}

/// One sink's position and backlog.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkReport {
    pub sink: String,
    pub position: i64,
    pub backlog: i64,
    pub oldest_undelivered: Option<String>,
}

/// What `state show` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StateReport {
    pub path: String,
    pub schema_version: u32,
    pub db_bytes: u64,
    pub events: i64,
    pub max_seq: i64,
    pub quarantined: i64,
    pub cursors: Vec<CursorReport>,
    pub sinks: Vec<SinkReport>,
}

/// What `state verify` found: each check with its outcome.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub checks: Vec<(bool, String)>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.0)
    }
}

fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

impl Store {
    /// Cursors, per-sink positions and backlog (`sinks`: the configured names; positions of
    /// sinks no longer configured are listed too), sizes.
    pub async fn report(&self, sinks: Vec<String>) -> anyhow::Result<StateReport> {
        let path = self.path().display().to_string();
        let db_bytes = self.size_bytes();
        self.read(move |conn| {
            let schema_version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let events: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
            let max_seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            let quarantined: i64 = conn.query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))?;
            let mut stmt = conn.prepare(
                "SELECT org_id, stream, cursor_ms, window_ms, updated_at FROM cursors ORDER BY org_id, stream",
            )?;
            let cursors = stmt
                .query_map([], |r| {
                    Ok(CursorReport {
                        org_id: r.get(0)?,
                        stream: r.get(1)?,
                        cursor: ms_to_rfc3339(r.get(2)?),
                        window_seconds: r.get::<_, Option<i64>>(3)?.map(|w| w / 1000),
                        updated_at: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut names = sinks;
            let mut stmt = conn.prepare("SELECT sink FROM sink_positions ORDER BY sink")?;
            for s in stmt.query_map([], |r| r.get::<_, String>(0))? {
                let s = s?;
                if !names.contains(&s) {
                    names.push(s);
                }
            }
            let mut out = Vec::new();
            for sink in names {
                let position: i64 = conn
                    .query_row("SELECT position FROM sink_positions WHERE sink = ?1", [&sink], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                let backlog: i64 = conn.query_row("SELECT COUNT(*) FROM events WHERE seq > ?1", [position], |r| r.get(0))?;
                let oldest_undelivered = conn
                    .query_row("SELECT observed_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1", [position], |r| r.get(0))
                    .optional()?;
                out.push(SinkReport { sink, position, backlog, oldest_undelivered });
            }
            Ok(StateReport { path, schema_version, db_bytes, events, max_seq, quarantined, cursors, sinks: out })
        })
        .await
    }

    /// Moves `org`'s activity cursor back to `to_ms` so the next poll re-reads from there.
    /// Events already stored are deduplicated (not sent again) unless `redeliver`: then every
    /// sink's position goes back to just before the first stored event of `org` created at or
    /// after `to_ms` (events stored after it, of any org, are sent again too).
    /// Returns how many sinks were moved.
    pub async fn rewind(&self, org: &str, to_ms: i64, redeliver: bool) -> anyhow::Result<usize> {
        let org = org.to_string();
        let org_name = org.clone();
        let moved = self
            .write(move |conn| {
                let tx = super::write_tx(conn)?;
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT cursor_ms FROM cursors WHERE org_id = ?1 AND stream = 'activities'",
                        [&org],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(_) = exists else {
                    return Ok(None);
                };
                tx.execute(
                    "UPDATE cursors SET cursor_ms = MIN(cursor_ms, ?2), window_ms = NULL, updated_at = ?3
                     WHERE org_id = ?1 AND stream = 'activities'",
                    params![org, to_ms, chrono::Utc::now().to_rfc3339()],
                )?;
                let mut moved = 0;
                if redeliver {
                    let first: Option<i64> = tx.query_row(
                        "SELECT MIN(seq) FROM events WHERE org_id = ?1 AND occurred_ms >= ?2",
                        params![org, to_ms],
                        |r| r.get(0),
                    )?;
                    if let Some(first) = first {
                        moved = tx.execute(
                            "UPDATE sink_positions SET position = MIN(position, ?1)",
                            [first - 1],
                        )?;
                    }
                }
                tx.commit()?;
                Ok(Some(moved))
            })
            .await?;
        moved.ok_or_else(|| {
            anyhow::anyhow!(
                "no activity cursor for organization {org_name:?} in this state (see `state show`)"
            )
        })
    }

    /// `PRAGMA integrity_check` plus the outbox's invariants.
    pub async fn verify(&self) -> anyhow::Result<VerifyReport> {
        self.read(|conn| {
            let mut checks = Vec::new();
            let integrity: Vec<String> = conn
                .prepare("PRAGMA integrity_check")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let ok = integrity.len() == 1 && integrity[0] == "ok";
            checks.push((ok, format!("SQLite integrity_check: {}", integrity.join("; "))));
            let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            checks.push((
                version == super::schema_version(),
                format!("schema version {version} (this exporter: {})", super::schema_version()),
            ));
            let hwm: i64 = conn
                .query_row("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)", [], |r| r.get(0))?;
            let ahead: i64 = conn.query_row("SELECT COUNT(*) FROM sink_positions WHERE position > ?1", [hwm], |r| r.get(0))?;
            checks.push((ahead == 0, format!("sink positions within the outbox sequence (high-water mark {hwm}): {ahead} beyond")));
            let bad_json: i64 = conn.query_row("SELECT COUNT(*) FROM events WHERE NOT json_valid(payload)", [], |r| r.get(0))?;
            checks.push((bad_json == 0, format!("event payloads are valid JSON: {bad_json} invalid")));
            let bad_kind: i64 = conn.query_row(
                "SELECT COUNT(*) FROM events WHERE kind NOT IN ('activity', 'inventory', 'finding')",
                [],
                |r| r.get(0),
            )?;
            checks.push((bad_kind == 0, format!("event kinds known: {bad_kind} unknown")));
            let bad_id: i64 = conn.query_row(
                "SELECT COUNT(*) FROM events WHERE kind = 'activity' AND substr(event_id, 1, length(org_id) + 10) != 'activity:' || org_id || ':'",
                [],
                |r| r.get(0),
            )?;
            checks.push((bad_id == 0, format!("activity event ids are activity:<org>:<id>: {bad_id} malformed")));
            let future_ms = chrono::Utc::now().timestamp_millis() + 86_400_000;
            let future: i64 = conn.query_row("SELECT COUNT(*) FROM cursors WHERE cursor_ms > ?1", [future_ms], |r| r.get(0))?;
            checks.push((future == 0, format!("no cursor more than a day in the future: {future} found (system clock moved back?)")));
            Ok(VerifyReport { checks })
        })
        .await
    }
}
