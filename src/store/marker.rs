//! The state marker: a small file beside the state database (`<state.path>.marker`), written
//! when the database is first created, so a database deleted (or lost with a volume) later is
//! refused with an explanation instead of silently starting over — which would re-export up to
//! `activities.initial_lookback` of audit log to every sink. `state reset --yes` starts over
//! on purpose.

use std::path::{Path, PathBuf};

use super::Store;

/// Where the marker of the database at `db` lives.
pub fn marker_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".marker");
    PathBuf::from(p)
}

/// Why a missing database is not treated as a first run, if it is not.
pub fn missing_explained(db: &Path) -> Option<String> {
    let marker = marker_path(db);
    if db.exists() || !marker.exists() {
        return None;
    }
    let created = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("created_at=").map(str::to_string))
        })
        .unwrap_or_else(|| "an earlier run".into());
    Some(format!(
        "the state database {} is missing, but {} shows one was created there ({created}): \
         its cursors and sink positions are gone, so starting over would export audit log \
         again from activities.initial_lookback. Restore the file from a backup, or run \
         `clickhouse-audit-exporter state reset --yes` to start over on purpose",
        db.display(),
        marker.display()
    ))
}

/// Opens the daemon's store: refuses a deleted database (see the module docs), creates a new
/// one with its marker on the first run, and adds the marker to older databases.
pub fn open_guarded(db: &Path) -> anyhow::Result<Store> {
    if let Some(why) = missing_explained(db) {
        anyhow::bail!(why);
    }
    let store = Store::open(db)?;
    let marker = marker_path(db);
    if !marker.exists() {
        let text = format!(
            "# clickhouse-audit-exporter: the state database {} exists (or existed) here.\n\
             # Do not delete it alone; `clickhouse-audit-exporter state reset --yes` removes both.\n\
             created_at={}\n",
            db.display(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        if let Err(e) = write_private(&marker, &text) {
            tracing::warn!(path = %marker.display(), error = %e, "could not write the state marker: a deleted state database would not be noticed");
        }
    }
    Ok(store)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Removes the database (with its WAL and shared-memory files) and the marker. Returns the
/// paths removed.
pub fn reset(db: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for suffix in ["", "-wal", "-shm", ".marker"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("removing {}: {e}", p.display()),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_database_is_refused_until_reset() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        drop(open_guarded(&db).unwrap());
        assert!(marker_path(&db).exists(), "the first run leaves a marker");
        drop(open_guarded(&db).unwrap());
        std::fs::remove_file(&db).unwrap();
        let err = format!("{:#}", open_guarded(&db).err().expect("refused"));
        assert!(
            err.contains("is missing") && err.contains("state reset --yes"),
            "{err}"
        );
        assert!(!db.exists(), "nothing was created");
        let removed = reset(&db).unwrap();
        assert_eq!(removed, vec![marker_path(&db)]);
        drop(open_guarded(&db).unwrap());
    }
}
