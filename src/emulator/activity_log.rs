//! One organization's activity log: pre-serialized activity JSON rows sorted by `createdAt`,
//! each with the time it becomes visible. Filled by the generator, API writes and
//! `Emulator::add_activity`; read by `handlers::activities`. A row costs its JSON plus ~40 bytes,
//! so a million rows fit comfortably; queries binary-search the time range.

use std::sync::Arc;

/// One stored activity.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Sort key: `createdAt` in Unix milliseconds.
    pub(crate) created_ms: i64,
    /// Hidden from the API until the emulator clock reaches this (eventual consistency).
    pub(crate) visible_ms: i64,
    /// End of the id token in `json` (which always starts `{"id":`).
    pub(crate) id_end: u32,
    /// The activity object, serialized once.
    pub(crate) json: Arc<str>,
}

impl Row {
    pub(crate) fn new(created_ms: i64, visible_ms: i64, json: String, id_end: usize) -> Row {
        Row {
            created_ms,
            visible_ms,
            id_end: u32::try_from(id_end).unwrap_or(u32::MAX),
            json: Arc::from(json),
        }
    }

    /// The raw JSON token of the id (quoted if it is a string).
    fn id_token(&self) -> &str {
        self.json.get(6..self.id_end as usize).unwrap_or("")
    }

    /// The id as text: a string id unescaped, any other JSON value as written.
    pub(crate) fn id(&self) -> String {
        let tok = self.id_token();
        if tok.starts_with('"') {
            serde_json::from_str(tok).unwrap_or_else(|_| tok.to_owned())
        } else {
            tok.to_owned()
        }
    }

    fn id_matches(&self, id: &str, quoted: &str) -> bool {
        let tok = self.id_token();
        tok == quoted || tok == id
    }
}

/// Rows sorted by `created_ms`; equal times keep insertion order.
#[derive(Debug, Default)]
pub(crate) struct ActivityLog {
    rows: Vec<Row>,
}

impl ActivityLog {
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Inserts one row at its place in time order.
    pub(crate) fn insert(&mut self, row: Row) {
        let pos = self
            .rows
            .partition_point(|r| r.created_ms <= row.created_ms);
        self.rows.insert(pos, row);
    }

    /// Adds many rows that are already in time order (bulk generation).
    pub(crate) fn extend_sorted(&mut self, mut rows: Vec<Row>) {
        let appendable = match (self.rows.last(), rows.first()) {
            (Some(last), Some(first)) => last.created_ms <= first.created_ms,
            _ => true,
        };
        self.rows.append(&mut rows);
        if !appendable {
            // Stable: rows with equal times keep their insertion order.
            self.rows.sort_by_key(|r| r.created_ms);
        }
    }

    /// Visible rows with `from_ms <= created_ms <= to_ms`, newest first, at most `limit`.
    pub(crate) fn query(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        now_ms: i64,
        limit: usize,
    ) -> Vec<Arc<str>> {
        let lo = from_ms.map_or(0, |f| self.rows.partition_point(|r| r.created_ms < f));
        let hi = to_ms.map_or(self.rows.len(), |t| {
            self.rows.partition_point(|r| r.created_ms <= t)
        });
        if lo >= hi {
            return Vec::new();
        }
        self.rows[lo..hi]
            .iter()
            .rev()
            .filter(|r| r.visible_ms <= now_ms)
            .take(limit)
            .map(|r| Arc::clone(&r.json))
            .collect()
    }

    /// The visible row with this id created by `created_by_ms` (the newest one if ids repeat).
    pub(crate) fn get(&self, id: &str, now_ms: i64, created_by_ms: i64) -> Option<Arc<str>> {
        let quoted = serde_json::Value::from(id).to_string();
        self.rows
            .iter()
            .rev()
            .find(|r| {
                r.visible_ms <= now_ms && r.created_ms <= created_by_ms && r.id_matches(id, &quoted)
            })
            .map(|r| Arc::clone(&r.json))
    }

    /// Every id, visible or not, oldest first.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.rows.iter().map(Row::id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::jsonfmt::ActivityJson;

    fn row(id: &str, created: i64, visible: i64) -> Row {
        let (json, end) = ActivityJson::new(id).finish();
        Row::new(created, visible, json, end)
    }

    #[test]
    fn query_is_inclusive_newest_first_and_hides_invisible() {
        let mut log = ActivityLog::default();
        log.insert(row("b", 2000, 0));
        log.insert(row("a", 1000, 0));
        log.insert(row("c", 3000, 10_000));
        log.extend_sorted(vec![row("d", 2000, 0), row("e", 4000, 0)]);
        let ids = |v: Vec<Arc<str>>| -> Vec<String> {
            v.iter()
                .map(|j| {
                    serde_json::from_str::<serde_json::Value>(j).unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(
            ids(log.query(Some(1000), Some(3000), 5000, usize::MAX)),
            ["d", "b", "a"]
        );
        assert_eq!(
            ids(log.query(Some(2000), None, 20_000, usize::MAX)),
            ["e", "c", "d", "b"]
        );
        assert_eq!(ids(log.query(None, None, 20_000, 2)), ["e", "c"]);
        assert!(log.get("c", 5000, i64::MAX).is_none());
        assert!(log.get("c", 10_000, i64::MAX).is_some());
        assert!(log.get("c", 10_000, 2999).is_none());
        assert_eq!(log.ids(), ["a", "b", "d", "c", "e"]);
    }
}
