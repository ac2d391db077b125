//! Small facts the exporter learns about the API and keeps across restarts, in the `meta`
//! table (`key` → text): the accepted activities date format, each organization's learned
//! window semantics (`poller::activities::facts`). Values are opaque text to the store.

use rusqlite::{OptionalExtension, params};

use super::Store;

impl Store {
    /// The value stored under `key`, if any.
    pub async fn meta_get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let key = key.to_string();
        self.read(move |conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    /// Stores `value` under `key` (replacing it).
    pub async fn meta_set(&self, key: &str, value: String) -> anyhow::Result<()> {
        let key = key.to_string();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
        })
        .await
    }

    /// Every `(key, value)` whose key starts with `prefix`, by key.
    pub async fn meta_prefixed(&self, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
        let pattern = format!("{}%", prefix.replace('%', "\\%").replace('_', "\\_"));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key, value FROM meta WHERE key LIKE ?1 ESCAPE '\\' ORDER BY key",
            )?;
            let rows = stmt.query_map(params![pattern], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_round_trip_replace_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(store.meta_get("a_b:1").await.unwrap(), None);
        store.meta_set("a_b:1", "x".into()).await.unwrap();
        store.meta_set("a_b:1", "y".into()).await.unwrap();
        store.meta_set("a_b:2", "z".into()).await.unwrap();
        store
            .meta_set("axb:3", "not matched by a_b".into())
            .await
            .unwrap();
        assert_eq!(store.meta_get("a_b:1").await.unwrap().as_deref(), Some("y"));
        assert_eq!(
            store.meta_prefixed("a_b:").await.unwrap(),
            vec![("a_b:1".into(), "y".into()), ("a_b:2".into(), "z".into())]
        );
    }
}
