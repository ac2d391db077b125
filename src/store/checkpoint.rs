//! WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside the
//! commit that pushed the WAL past 1,000 pages, so whoever commits then (the poller storing a
//! chunk, a sink committing its position) also copies the WAL into the database and fsyncs
//! both: 9% of a 1 M backfill's CPU plus its fsyncs, on the poller's critical path (issue 17).
//! Here the writing connections only notice the size (`wal_hook`) and wake this thread, which
//! runs a PASSIVE checkpoint (it never waits for, nor blocks, readers and writers) from its own
//! connection while they go on. Durability is unchanged: commits still sync the WAL as their
//! `synchronous` level says, and a checkpoint syncs the WAL before and the database after
//! copying, as the automatic one did.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// WAL pages after a commit that wake the checkpointer: SQLite's own default threshold, so an
/// idle exporter checkpoints as rarely as before.
pub(super) const WAL_PAGES: i32 = 1000;

/// The checkpoint thread and the way to wake it.
pub(super) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Checkpoints run (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    done: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread with `conn`, a connection of its own to the database.
    pub(super) fn start(path: &Path, conn: Connection) -> std::io::Result<Checkpointer> {
        // Capacity 1: wake-ups while a checkpoint runs fold into one more run.
        let (wake, rx) = mpsc::sync_channel::<()>(1);
        let done = Arc::new(AtomicU64::new(0));
        let counter = done.clone();
        let path = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("state-checkpoint".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                while rx.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        // The next commit past the threshold wakes it again; meanwhile the WAL
                        // only grows (and is still read correctly).
                        tracing::warn!(path = %path, error = %e, "checkpointing the state database's WAL failed; will retry after the next write");
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
            done,
        })
    }

    /// Makes `conn` wake this thread, instead of checkpointing itself, once a commit leaves
    /// `WAL_PAGES` or more in the WAL. (Installing a WAL hook turns SQLite's automatic
    /// checkpoint off: it is the same hook.)
    pub(super) fn watch(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        let wake = self.wake.clone().expect("the sender lives until drop");
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            if pages >= WAL_PAGES {
                // Full: a wake-up is pending already. Disconnected: shutting down.
                let _ = wake.try_send(());
            }
            Ok(())
        }))
    }

    /// Checkpoints run so far (tests).
    #[cfg(test)]
    pub(super) fn runs(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The hooks hold senders too, but they are dropped with their connections, which
        // `Inner` drops before this (field order); then the thread's `recv` ends.
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
