//! Store unit tests: migrations, dedupe, positions, pruning, refusal of newer schemas.

use super::*;
use crate::event::EventKind;

fn ev(org: &str, id: &str, ms: i64) -> NewEvent {
    NewEvent {
        occurred_ms: ms,
        event_id: crate::event::Event::activity_id(org, id),
        kind: EventKind::Activity,
        org_id: org.into(),
        occurred_at: "2025-01-01T00:00:00Z".into(),
        payload: format!(r#"{{"id":"{id}"}}"#).into(),
    }
}

#[tokio::test]
async fn insert_dedupes_and_moves_the_cursor_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let c = CursorState {
        cursor_ms: 5000,
        window_ms: None,
    };
    let s = store
        .insert_window(
            "o",
            "activities",
            vec![ev("o", "a", 1), ev("o", "b", 2), ev("o", "a", 1)],
            vec![],
            Some(c),
        )
        .await
        .unwrap();
    assert_eq!((s.new, s.duplicates, s.max_seq), (2, 1, 2));
    assert_eq!(store.cursor("o", "activities").await.unwrap(), Some(c));
    let batch = store.read_batch(0, 10).await.unwrap();
    assert_eq!(
        batch.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
        [r#"{"id":"a"}"#, r#"{"id":"b"}"#]
    );
}

#[tokio::test]
async fn a_quarantined_element_read_again_is_not_new_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let row = |payload: &str, reason: &str| QuarantineRow {
        reason: reason.into(),
        detail: "createdAt: last tuesday".into(),
        payload: payload.into(),
    };
    let first = vec![
        row(r#"{"createdAt":"last tuesday"}"#, "bad_created_at"),
        row(r#"{"id":null}"#, "missing_id"),
    ];
    let (_, s) = store
        .insert_collect("o", vec![], first.clone(), false)
        .await
        .unwrap();
    assert_eq!(s.quarantined_new(), 2);
    assert_eq!(s.quarantined_new_reasons, ["bad_created_at", "missing_id"]);
    // An overlap reads both again, and one new element beside them.
    let mut again = first;
    again.push(row(r#"{"id":7}"#, "missing_id"));
    let (_, s) = store
        .insert_collect("o", vec![], again, false)
        .await
        .unwrap();
    assert_eq!(s.quarantined_new(), 1);
    assert_eq!(s.quarantined_new_reasons, ["missing_id"]);
}

#[tokio::test]
async fn chunks_commit_without_fsync_but_cursor_commits_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let level = |store: &Store| -> i64 {
        let c = store.inner.writer.lock().unwrap();
        c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(level(&store), 2, "FULL");
    store
        .insert_collect("o", vec![ev("o", "a", 1)], vec![], false)
        .await
        .unwrap();
    assert_eq!(level(&store), 2, "back to FULL after a chunk");
    // A chunk that fails (a seq taken: impossible in use, forced here) restores it too.
    store
        .inner
        .writer
        .lock()
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no'); END;",
        )
        .unwrap();
    assert!(
        store
            .insert_collect("o", vec![ev("o", "b", 2)], vec![], false)
            .await
            .is_err()
    );
    assert_eq!(level(&store), 2, "back to FULL after a failed chunk");
}

#[tokio::test]
async fn seqs_stay_dense_across_duplicates_and_never_restart_after_pruning_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let (_, s) = store
        .insert_collect("o", vec![ev("o", "a", 1), ev("o", "b", 2)], vec![], false)
        .await
        .unwrap();
    assert_eq!(s.max_seq, 2);
    let (_, s) = store
        .insert_collect("o", vec![ev("o", "b", 2), ev("o", "c", 3)], vec![], false)
        .await
        .unwrap();
    assert_eq!(
        (s.new, s.duplicates, s.max_seq),
        (1, 1, 3),
        "no seq spent on b"
    );
    store
        .inner
        .writer
        .lock()
        .unwrap()
        .execute_batch("DELETE FROM events")
        .unwrap();
    let (_, s) = store
        .insert_collect("o", vec![ev("o", "d", 4)], vec![], false)
        .await
        .unwrap();
    assert_eq!(
        s.max_seq, 4,
        "after the table emptied, seq goes on from the highest ever"
    );
}

#[test]
fn a_write_transaction_that_reads_first_is_not_refused_when_another_connection_commits() {
    // The insert reads the highest seq before it writes; a sink position committed by another
    // connection in between used to make SQLite refuse the write (SQLITE_BUSY_SNAPSHOT).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path).unwrap());
    let mut writer = rusqlite::Connection::open(&path).unwrap();
    let positions = rusqlite::Connection::open(&path).unwrap();
    positions
        .busy_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let tx = write_tx(&mut writer).unwrap();
    let _: i64 = tx
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    // The other connection waits for the lock instead of slipping a commit in.
    let err = positions
        .execute(
            "INSERT INTO sink_positions (sink, position, updated_at) VALUES ('s', 1, 'now')",
            [],
        )
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    );
    tx.execute(
        "INSERT INTO sink_positions (sink, position, updated_at) VALUES ('w', 1, 'now')",
        [],
    )
    .expect("the write after the read is not refused");
    tx.commit().unwrap();
}

#[tokio::test]
async fn overlap_rereads_leave_no_seq_gaps_so_backlog_counts_events() {
    // Every poll re-reads its overlap; SQLite's AUTOINCREMENT used to spend a seq on each
    // re-read duplicate (ON CONFLICT DO NOTHING), so `sink_backlog_events` = max(seq) -
    // position counted ~15x the real backlog in the soak run (issue 8).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let window = |ids: &[(&str, i64)]| ids.iter().map(|(id, ms)| ev("o", id, *ms)).collect();
    store
        .insert_window(
            "o",
            "activities",
            window(&[("a", 1), ("b", 2)]),
            vec![],
            None,
        )
        .await
        .unwrap();
    let s = store
        .insert_window(
            "o",
            "activities",
            window(&[("a", 1), ("b", 2), ("c", 3), ("c", 3), ("d", 4)]),
            vec![],
            None,
        )
        .await
        .unwrap();
    assert_eq!((s.new, s.duplicates, s.max_seq), (2, 3, 4));
    store.commit_position("file", 2).await.unwrap();
    assert_eq!(store.backlog(2).await.unwrap().0, 2);
    let batch = store.read_batch(2, 10).await.unwrap();
    assert_eq!(
        batch.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
        [r#"{"id":"c"}"#, r#"{"id":"d"}"#]
    );
}

#[tokio::test]
async fn positions_only_move_forward_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .insert_window(
                "o",
                "activities",
                vec![ev("o", "a", 1), ev("o", "b", 2)],
                vec![],
                None,
            )
            .await
            .unwrap();
        store.commit_position("file", 2).await.unwrap();
        store.commit_position("file", 1).await.unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.position("file").await.unwrap(), 2);
    assert_eq!(store.position("new-sink").await.unwrap(), 0);
    assert_eq!(store.max_seq().await.unwrap(), 2);
}

#[tokio::test]
async fn prune_keeps_what_any_sink_still_needs_and_seq_never_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    store
        .insert_window(
            "o",
            "activities",
            vec![ev("o", "a", 1), ev("o", "b", 2), ev("o", "c", 3)],
            vec![],
            None,
        )
        .await
        .unwrap();
    store.commit_position("x", 3).await.unwrap();
    store.commit_position("y", 1).await.unwrap();
    assert_eq!(
        store
            .prune(vec!["x".into(), "y".into()], 100)
            .await
            .unwrap(),
        1
    );
    store.commit_position("y", 3).await.unwrap();
    assert_eq!(
        store
            .prune(vec!["x".into(), "y".into()], 100)
            .await
            .unwrap(),
        2
    );
    let s = store
        .insert_window("o", "activities", vec![ev("o", "d", 4)], vec![], None)
        .await
        .unwrap();
    assert_eq!(
        s.max_seq, 4,
        "AUTOINCREMENT: seq continues after the table was emptied"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = format!("{:#}", Store::open(&path).err().unwrap());
    assert!(err.contains("newer"), "{err}");
    assert!(err.contains("s.db"), "{err}");
}

#[tokio::test]
async fn a_corrupt_file_is_refused_naming_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = format!("{:#}", Store::open(&path).err().unwrap());
    assert!(
        err.contains("corrupt") && err.contains("s.db") && err.contains("state verify"),
        "{err}"
    );
}

#[tokio::test]
async fn state_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/s.db");
    drop(Store::open(&path).unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn rewind_moves_the_cursor_and_optionally_the_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let c = CursorState {
        cursor_ms: 10_000,
        window_ms: Some(60_000),
    };
    store
        .insert_window(
            "o",
            "activities",
            vec![ev("o", "a", 1000), ev("o", "b", 5000)],
            vec![],
            Some(c),
        )
        .await
        .unwrap();
    store.commit_position("s", 2).await.unwrap();
    assert_eq!(store.rewind("o", 4000, false).await.unwrap(), 0);
    assert_eq!(
        store.cursor("o", "activities").await.unwrap(),
        Some(CursorState {
            cursor_ms: 4000,
            window_ms: None
        })
    );
    assert_eq!(store.position("s").await.unwrap(), 2);
    assert_eq!(store.rewind("o", 4000, true).await.unwrap(), 1);
    assert_eq!(store.position("s").await.unwrap(), 1);
    assert!(store.rewind("other", 0, false).await.is_err());
    assert!(store.verify().await.unwrap().ok());
}

#[tokio::test]
async fn a_version_1_database_is_migrated_keeping_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        // What the previous release wrote: migration 1 only.
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(super::migrate::MIGRATIONS[0].1).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.execute(
            "INSERT INTO events (occurred_ms, event_id, kind, org_id, occurred_at, observed_at, payload)
             VALUES (1, 'activity:o:a', 'activity', 'o', 't', 't', '{}')",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.max_seq().await.unwrap(), 1);
    assert!(store.findings("o").await.unwrap().is_empty());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, super::schema_version());
}

#[tokio::test]
async fn a_grown_wal_is_checkpointed_by_the_background_thread_not_by_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path).unwrap();
    let db_bytes = || std::fs::metadata(&path).unwrap().len();
    let before = db_bytes();
    // 6,000 rows of ~1 KB: past the 1,000-page (4 MB) wake-up threshold.
    let filler = "x".repeat(1000);
    for chunk in 0..3 {
        let events = (0..2000)
            .map(|i| {
                let n = chunk * 2000 + i;
                let mut e = ev("o", &format!("id-{n}"), n);
                e.payload = format!(r#"{{"id":"id-{n}","pad":"{filler}"}}"#).into();
                e
            })
            .collect();
        store
            .insert_collect("o", events, vec![], false)
            .await
            .unwrap();
    }
    // The rows reached the database file itself, copied there by the checkpoint thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.inner.checkpointer.runs() == 0 || db_bytes() < 4 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint: {} runs, database {} bytes (was {before})",
            store.inner.checkpointer.runs(),
            db_bytes()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(store.read_batch(0, 10_000).await.unwrap().len(), 6000);
    // The writer itself never checkpoints: its WAL hook is ours (SQLite's automatic
    // checkpoint is that same hook), so `wal_autocheckpoint` reads 0 on it.
    let auto: i64 = store
        .inner
        .writer
        .lock()
        .unwrap()
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(auto, 0);
}

#[test]
fn a_position_commit_waits_for_a_chunk_insert_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path).unwrap();
    let mut other = connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
    let (locked, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            let tx = write_tx(&mut other).unwrap();
            locked.wait();
            release.wait();
            std::thread::sleep(std::time::Duration::from_millis(30));
            tx.commit().unwrap();
        });
        locked.wait();
        release.wait();
        // The lock is held for 30 ms more: the commit waits it out.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.commit_position("s", 7)).unwrap();
        assert_eq!(rt.block_on(store.position("s")).unwrap(), 7);
    });
}
