//! The SQLite state store: outbox of events, per-org cursors, per-sink positions, quarantine,
//! inventory snapshots and posture findings (`inventory`).
//! One writer connection and one reader connection (WAL lets sinks read while a poller writes),
//! each behind a `std::sync::Mutex` and used from `spawn_blocking` so the runtime never blocks;
//! WAL checkpoints run on a thread of their own (`checkpoint`), never inside a commit.
//! Errors name the file and the fix (newer schema, corrupt file, read-only or full disk).

mod admin;
mod checkpoint;
mod inventory;
mod marker;
mod meta;
mod migrate;
mod outbox;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

pub use admin::{CursorReport, SinkReport, StateReport, VerifyReport};
pub use inventory::{FindingRow, Snapshot, ViewRow};
pub use marker::{open_guarded, reset};
pub use migrate::latest as schema_version;
pub use outbox::{CursorState, InsertStats, NewEvent, QuarantineRow};

/// Handle to the state database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Sink positions only, with `synchronous = NORMAL`: a position lost to a power cut means
    /// one batch delivered again (at-least-once holds), and sinks never queue behind the
    /// poller's fsynced event transactions (BENCHMARKS.md).
    positions: Mutex<Connection>,
    /// Last, so the connections (whose WAL hooks wake it) are closed before it is joined.
    /// Held for that `Drop`; read by tests.
    #[cfg_attr(not(test), allow(dead_code))]
    checkpointer: checkpoint::Checkpointer,
}

impl Store {
    /// Opens (creating with mode 0600, and its directory) and migrates the database.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating the state directory {} (check permissions, or set state.path)",
                    dir.display()
                )
            })?;
        }
        let created = !path.exists();
        let mut writer = connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        if created {
            restrict_mode(path);
        }
        migrate::migrate(&mut writer).map_err(|e| explain(path, e.into()))?;
        let reader = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let mut positions = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let checkpoints = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        checkpoints
            .execute_batch("PRAGMA cache_size = -64;")
            .map_err(|e| explain(path, e.into()))?;
        let checkpointer = checkpoint::Checkpointer::start(path, checkpoints)
            .context("starting the state checkpoint thread")?;
        for conn in [&mut writer, &mut positions] {
            checkpointer
                .watch(conn)
                .map_err(|e| explain(path, e.into()))?;
        }
        // Small caches where little is cached anyway: keeps the idle footprint down.
        reader
            .execute_batch("PRAGMA cache_size = -512;")
            .map_err(|e| explain(path, e.into()))?;
        positions
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -64;")
            .map_err(|e| explain(path, e.into()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                positions: Mutex::new(positions),
                checkpointer,
            }),
        })
    }

    /// Opens an existing database without creating it (`state` commands).
    pub fn open_existing(path: &Path) -> anyhow::Result<Store> {
        if let Some(why) = marker::missing_explained(path) {
            anyhow::bail!(why);
        }
        if !path.exists() {
            anyhow::bail!(
                "no state database at {} (nothing has run with this state.path yet)",
                path.display()
            );
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer connection off the async runtime.
    async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.on(|i| &i.writer, f).await
    }

    /// Runs `f` on the sink-positions connection off the async runtime.
    async fn write_position<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.on(|i| &i.positions, f).await
    }

    /// Runs `f` on the reader connection off the async runtime.
    async fn read<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.on(|i| &i.reader, |c: &mut Connection| f(c)).await
    }

    /// Runs `f` on the connection `pick` chooses, in `spawn_blocking`, never holding its lock
    /// across an `.await`; errors name the file and the fix.
    async fn on<T, F>(&self, pick: fn(&Inner) -> &Mutex<Connection>, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pick(&inner)
                .lock()
                .map_err(|_| anyhow::anyhow!("state connection lock poisoned"))?;
            f(&mut conn).map_err(|e| explain(&inner.path, e.into()))
        })
        .await
        .context("state task panicked")?
    }

    /// Size of the database file plus its WAL, in bytes.
    pub fn size_bytes(&self) -> u64 {
        let main = std::fs::metadata(self.path()).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path().as_os_str().to_owned();
        wal.push("-wal");
        main + std::fs::metadata(PathBuf::from(wal))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

/// Begins a write transaction holding the write lock from its start (`BEGIN IMMEDIATE`,
/// waiting up to the busy timeout for it). A deferred one that reads first takes a snapshot,
/// and when another connection (the sink positions, a `state` command) commits before its
/// first write, SQLite refuses the upgrade at once with `SQLITE_BUSY_SNAPSHOT` — no busy
/// timeout helps. A 1 M backfill met it as soon as inserts began with a read (issue 17).
pub(super) fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

fn connect(path: &Path, flags: OpenFlags) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| explain(path, e.into()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| explain(path, e.into()))?;
    // journal_mode answers a row; a corrupt or foreign file fails here first.
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .map_err(|e| explain(path, e.into()))?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(|e| explain(path, e.into()))?;
    Ok(conn)
}

fn restrict_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "could not make the state file private (0600)");
    }
}

/// Turns a SQLite error into a message naming the file and the fix.
fn explain(path: &Path, err: anyhow::Error) -> anyhow::Error {
    use rusqlite::ErrorCode as C;
    let p = path.display();
    let code = err
        .downcast_ref::<rusqlite::Error>()
        .or_else(|| match err.downcast_ref::<migrate::MigrateError>() {
            Some(migrate::MigrateError::Sqlite(e)) => Some(e),
            _ => None,
        })
        .and_then(|e| e.sqlite_error_code());
    let hint = match code {
        Some(C::NotADatabase) | Some(C::DatabaseCorrupt) => format!(
            "state database {p} is corrupt or not a SQLite file: run `clickhouse-audit-exporter state verify`; to start over, keep a copy and run `clickhouse-audit-exporter state reset --yes` (activities within activities.initial_lookback will be exported again)"
        ),
        Some(C::ReadOnly) | Some(C::CannotOpen) | Some(C::PermissionDenied) => format!(
            "cannot write the state database {p}: make the file and its directory writable by this user (systemd: StateDirectory=), or set state.path"
        ),
        Some(C::DiskFull) => format!(
            "the disk holding the state database {p} is full: free space (nothing was half-written; the exporter resumes where it stopped)"
        ),
        Some(C::DatabaseBusy) | Some(C::DatabaseLocked) => format!(
            "the state database {p} is locked by another process: run one exporter per state file"
        ),
        _ => format!("state database {p}"),
    };
    err.context(hint)
}

#[cfg(test)]
mod tests;
