//! Outbox operations: insert a fetched window and move its cursor in one transaction; read the
//! next batch after a sink's position; commit positions; prune what every sink has passed.

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::event::{Event, EventKind};

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// createdAt in unix milliseconds (leads the dedupe key).
    pub occurred_ms: i64,
    pub event_id: String,
    pub kind: EventKind,
    pub org_id: String,
    pub occurred_at: String,
    /// Verbatim JSON text.
    pub payload: Box<str>,
}

/// An activity kept aside because it could not be keyed.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    pub reason: String,
    pub detail: String,
    pub payload: Box<str>,
}

/// A stream's cursor; what `cursor_ms` guarantees is the cursor rule, `poller::activities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorState {
    pub cursor_ms: i64,
    /// Remembered window length after adaptive splits (None = max_window).
    pub window_ms: Option<i64>,
}

/// What `insert_window` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertStats {
    pub new: u64,
    pub duplicates: u64,
    /// The reason of each row newly quarantined (a re-read of a kept row is not new).
    pub quarantined_new_reasons: Vec<String>,
    /// Highest seq after the insert.
    pub max_seq: i64,
}

impl InsertStats {
    /// How many rows were newly quarantined.
    pub fn quarantined_new(&self) -> u64 {
        self.quarantined_new_reasons.len() as u64
    }
}

/// Inserts `events` in order inside the caller's transaction; an event whose dedupe key
/// (occurred_ms, event_id) is already stored is dropped. Returns (new, duplicates).
///
/// Seqs are given here, one past the highest ever handed out, and only to rows that are
/// stored: with AUTOINCREMENT picking them, `ON CONFLICT DO NOTHING` spends a seq on every
/// dropped duplicate, and each poll re-reads its whole overlap, so seqs got gaps and
/// `max(seq) - position` (the backlog gauge) overcounted by up to overlap / interval (15x with
/// the defaults; found by the soak run, issue 8). Dense seqs keep that subtraction exact. (The
/// check was a `WHERE NOT EXISTS` subquery, which makes SQLite build a temporary table and a
/// statement journal per row: 8% of a 1 M backfill's CPU, issue 17.) The conflict target is
/// the dedupe key alone, so a seq that somehow exists already is an error, never a silent drop.
pub(super) fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    events: &[NewEvent],
    observed: &str,
    mut fresh: Option<&mut Vec<(i64, String)>>,
) -> rusqlite::Result<(u64, u64)> {
    if events.is_empty() {
        return Ok((0, 0));
    }
    // sqlite_sequence keeps the highest seq even after pruning emptied the table.
    let mut next: i64 = tx.query_row(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                    COALESCE((SELECT MAX(seq) FROM events), 0)) + 1",
        [],
        |r| r.get(0),
    )?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO events (seq, occurred_ms, event_id, kind, org_id, occurred_at, observed_at, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (occurred_ms, event_id) DO NOTHING",
    )?;
    let (mut new, mut duplicates) = (0, 0);
    for e in events {
        let n = ins.execute(params![
            next,
            e.occurred_ms,
            e.event_id,
            e.kind.as_str(),
            e.org_id,
            e.occurred_at,
            observed,
            &*e.payload
        ])?;
        if n == 1 {
            new += 1;
            next += 1;
            if let Some(f) = fresh.as_mut() {
                f.push((e.occurred_ms, e.event_id.clone()));
            }
        } else {
            duplicates += 1;
        }
    }
    Ok((new, duplicates))
}

/// Keeps `rows` of `org` in the quarantine (a payload already there is not added twice);
/// returns how many were new.
fn insert_quarantine(
    tx: &rusqlite::Transaction<'_>,
    org: &str,
    rows: &[QuarantineRow],
    observed: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut q = tx.prepare_cached(
        "INSERT INTO quarantine (org_id, reason, detail, payload, observed_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?;
    let mut new = Vec::new();
    for row in rows {
        let n = q.execute(params![
            org,
            row.reason,
            row.detail,
            &*row.payload,
            observed
        ])?;
        if n > 0 {
            new.push(row.reason.clone());
        }
    }
    Ok(new)
}

pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Store {
    /// In ONE transaction: insert `events` (in the given order; duplicates by dedupe key are
    /// dropped), keep `quarantined`, then set the cursor of (`org`, `stream`) if given.
    pub async fn insert_window(
        &self,
        org: &str,
        stream: &str,
        events: Vec<NewEvent>,
        quarantined: Vec<QuarantineRow>,
        cursor: Option<CursorState>,
    ) -> anyhow::Result<InsertStats> {
        let (org, stream) = (org.to_string(), stream.to_string());
        self.write(move |conn| {
            let observed = now_rfc3339();
            let tx = super::write_tx(conn)?;
            let mut stats = InsertStats::default();
            (stats.new, stats.duplicates) = insert_events(&tx, &events, &observed, None)?;
            stats.quarantined_new_reasons = insert_quarantine(&tx, &org, &quarantined, &observed)?;
            if let Some(c) = cursor {
                tx.execute(
                    "INSERT INTO cursors (org_id, stream, cursor_ms, window_ms, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (org_id, stream) DO UPDATE SET cursor_ms = excluded.cursor_ms,
                       window_ms = excluded.window_ms, updated_at = excluded.updated_at",
                    params![org, stream, c.cursor_ms, c.window_ms, observed],
                )?;
            }
            stats.max_seq = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            tx.commit()?;
            Ok(stats)
        })
        .await
    }

    /// Inserts `events` and `quarantined` of `org` without touching any cursor (a sweep's
    /// finds, a streamed answer's chunks) and, with `collect`, returns the `(occurred_ms,
    /// event_id)` of the events that were new (else an empty list).
    pub async fn insert_collect(
        &self,
        org: &str,
        events: Vec<NewEvent>,
        quarantined: Vec<QuarantineRow>,
        collect: bool,
    ) -> anyhow::Result<(Vec<(i64, String)>, InsertStats)> {
        let org = org.to_string();
        self.write(move |conn| {
            // No fsync for these commits: nothing depends on them surviving a power cut until
            // a cursor or a sweep's record moves past them, and that commit (FULL) syncs the
            // whole log, these rows with it. A crash of the process alone loses nothing either
            // way (WAL). Until then a lost chunk is simply read again. A backfill commits a
            // chunk every 2,000 activities; only its cursor commits need the fsync (issue 17).
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let done = (|| {
                let observed = now_rfc3339();
                let tx = super::write_tx(conn)?;
                let mut fresh = Vec::new();
                let mut stats = InsertStats::default();
                (stats.new, stats.duplicates) =
                    insert_events(&tx, &events, &observed, collect.then_some(&mut fresh))?;
                stats.quarantined_new_reasons =
                    insert_quarantine(&tx, &org, &quarantined, &observed)?;
                stats.max_seq =
                    tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
                tx.commit()?;
                Ok((fresh, stats))
            })();
            conn.pragma_update(None, "synchronous", "FULL")?;
            done
        })
        .await
    }

    /// The cursor of (`org`, `stream`), if one was ever stored.
    pub async fn cursor(&self, org: &str, stream: &str) -> anyhow::Result<Option<CursorState>> {
        let (org, stream) = (org.to_string(), stream.to_string());
        self.read(move |conn| {
            conn.query_row(
                "SELECT cursor_ms, window_ms FROM cursors WHERE org_id = ?1 AND stream = ?2",
                params![org, stream],
                |r| {
                    Ok(CursorState {
                        cursor_ms: r.get(0)?,
                        window_ms: r.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Up to `limit` events after `after_seq`, in seq order.
    pub async fn read_batch(&self, after_seq: i64, limit: usize) -> anyhow::Result<Vec<Event>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, event_id, kind, org_id, occurred_at, observed_at, payload
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
                let kind: String = r.get(2)?;
                Ok(Event {
                    seq: r.get(0)?,
                    event_id: r.get(1)?,
                    kind: EventKind::parse(&kind).unwrap_or(EventKind::Activity),
                    org_id: r.get(3)?,
                    occurred_at: r.get(4)?,
                    observed_at: r.get(5)?,
                    payload: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// The last seq delivered by `sink` (0 for a new sink: it gets everything still stored).
    pub async fn position(&self, sink: &str) -> anyhow::Result<i64> {
        let sink = sink.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT position FROM sink_positions WHERE sink = ?1",
                [sink],
                |r| r.get(0),
            )
            .optional()
            .map(|p| p.unwrap_or(0))
        })
        .await
    }

    /// Records that `sink` delivered everything up to `seq` (one transaction).
    pub async fn commit_position(&self, sink: &str, seq: i64) -> anyhow::Result<()> {
        let sink = sink.to_string();
        self.write_position(move |conn| {
            conn.execute(
                "INSERT INTO sink_positions (sink, position, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sink) DO UPDATE SET position = MAX(position, excluded.position), updated_at = excluded.updated_at",
                params![sink, seq, now_rfc3339()],
            )
            .map(|_| ())
        })
        .await
    }

    /// Highest stored seq (0 when empty).
    pub async fn max_seq(&self) -> anyhow::Result<i64> {
        self.read(|conn| {
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
        })
        .await
    }

    /// (events after `position`, observed_at of the oldest of them). Seqs are contiguous
    /// (AUTOINCREMENT; a conflicting or rolled-back insert takes none), so the count is
    /// `max(seq) - position`: two index lookups instead of a scan.
    pub async fn backlog(&self, position: i64) -> anyhow::Result<(i64, Option<String>)> {
        self.read(move |conn| {
            let max: i64 =
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            let oldest: Option<String> = conn
                .query_row(
                    "SELECT observed_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1",
                    [position],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(((max - position).max(0), oldest))
        })
        .await
    }

    /// Deletes events that every sink in `sinks` has delivered and whose createdAt is older
    /// than `cutoff_ms`, in chunks so writers are never blocked long. Returns the count.
    pub async fn prune(&self, sinks: Vec<String>, cutoff_ms: i64) -> anyhow::Result<u64> {
        let mut min_pos = i64::MAX;
        for s in &sinks {
            min_pos = min_pos.min(self.position(s).await?);
        }
        if sinks.is_empty() {
            return Ok(0);
        }
        let mut total = 0u64;
        loop {
            let n = self
                .write(move |conn| {
                    conn.execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events
                           WHERE seq <= ?1 AND occurred_ms < ?2 ORDER BY seq LIMIT 10000)",
                        params![min_pos, cutoff_ms],
                    )
                })
                .await?;
            total += n as u64;
            if n < 10000 {
                break;
            }
        }
        Ok(total)
    }

    /// Count of events by kind.
    pub async fn counts_by_kind(&self) -> anyhow::Result<Vec<(String, i64)>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT kind, COUNT(*) FROM events GROUP BY kind")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}
