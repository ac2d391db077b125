-- 0001: the outbox. Applied by src/store/migrate.rs inside one transaction.

-- Every stored event, in the order it was stored. `seq` never goes back (AUTOINCREMENT), so a
-- sink position stays meaningful after pruning empties the table.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- createdAt in unix milliseconds: leads the dedupe key so inserts append to the index
    -- (a random-UUID key scatters writes: 14 s vs 4 s for 1 M rows measured with sqlite3).
    occurred_ms INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,   -- activity:<org_id>:<activity id>
    kind        TEXT    NOT NULL,   -- activity | inventory | finding
    org_id      TEXT    NOT NULL,
    occurred_at TEXT    NOT NULL,   -- createdAt exactly as the API wrote it
    observed_at TEXT    NOT NULL,   -- RFC 3339, when stored
    payload     TEXT    NOT NULL    -- verbatim JSON
);
-- The dedupe key: an activity's createdAt never changes, so (createdAt, event_id) is unique
-- exactly when event_id is.
CREATE UNIQUE INDEX events_dedupe ON events (occurred_ms, event_id);

-- One cursor per organization and stream; cursor_ms: see the cursor rule in src/poller/activities.rs.
-- window_ms remembers an adaptive split (NULL = activities.max_window).
CREATE TABLE cursors (
    org_id     TEXT    NOT NULL,
    stream     TEXT    NOT NULL,
    cursor_ms  INTEGER NOT NULL,
    window_ms  INTEGER,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (org_id, stream)
) WITHOUT ROWID;

-- Each sink's position: the last seq it delivered.
CREATE TABLE sink_positions (
    sink       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
) WITHOUT ROWID;

-- Activities that could not be keyed (no id, bad createdAt): kept, counted, logged — never
-- silently dropped.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    org_id      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    UNIQUE (org_id, payload)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
