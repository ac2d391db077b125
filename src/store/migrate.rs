//! Schema migrations: the numbered files in `migrations/`, embedded at build time and applied
//! in order inside one transaction, tracked by `PRAGMA user_version`. A database from a newer
//! exporter (user_version above ours) is refused, never downgraded.

use rusqlite::Connection;

/// `(version, sql)`: version N is `migrations/000N_*.sql`.
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_inventory.sql")),
];

/// The schema version this build writes.
pub fn latest() -> u32 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "schema version {found} is newer than this exporter understands ({latest}): it was written by a newer clickhouse-audit-exporter; upgrade the exporter (or set state.path to another file)"
    )]
    Newer { found: u32, latest: u32 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Applies every migration above the file's `user_version`.
pub fn migrate(conn: &mut Connection) -> Result<u32, MigrateError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = latest();
    if found > latest {
        return Err(MigrateError::Newer { found, latest });
    }
    if found == latest {
        return Ok(found);
    }
    let tx = super::write_tx(conn)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('exporter_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [env!("CARGO_PKG_VERSION")],
    )?;
    tx.commit()?;
    Ok(latest)
}
