-- 0002: inventory snapshots and posture findings (issue #6). Applied by src/store/migrate.rs.

-- The last version of every inventory object this exporter has seen, per organization.
-- A row outlives its object as a tombstone (deleted = 1) so that a re-created id continues its
-- revision count and its events get fresh ids; tombstones are pruned after state.retention.
CREATE TABLE inventory_snapshots (
    org_id       TEXT    NOT NULL,
    resource     TEXT    NOT NULL,   -- services | keys | members | invitations | backups
    object_id    TEXT    NOT NULL,
    parent_id    TEXT    NOT NULL,   -- backups: the service id; '' otherwise
    hash         TEXT    NOT NULL,   -- SHA-256 of the canonical object minus ignored fields
    raw          TEXT    NOT NULL,   -- the latest verbatim JSON object
    revision     INTEGER NOT NULL,   -- bumped by every event about this object
    first_action TEXT    NOT NULL,   -- observed | created: how it entered the snapshot
    deleted      INTEGER NOT NULL DEFAULT 0,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (org_id, resource, object_id)
) WITHOUT ROWID;
CREATE INDEX inventory_snapshots_parent ON inventory_snapshots (org_id, resource, parent_id);

-- The last successful full list per (org, resource, scope); scope = service id for backups.
-- Its presence is the baseline: objects in a scope's first list are `observed`, not `created`.
CREATE TABLE inventory_fetches (
    org_id     TEXT    NOT NULL,
    resource   TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    fetched_ms INTEGER NOT NULL,
    PRIMARY KEY (org_id, resource, scope)
) WITHOUT ROWID;

-- Posture findings: one row per (org, rule, subject); `occurrence` counts how often it opened
-- (event ids finding:<org>:<rule>:<id>:<open|resolved>:<occurrence>).
CREATE TABLE findings (
    org_id      TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    resource_id TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    status      TEXT    NOT NULL,   -- open | resolved
    severity    TEXT    NOT NULL,
    occurrence  INTEGER NOT NULL,
    summary     TEXT    NOT NULL,
    evidence    TEXT    NOT NULL,   -- JSON
    opened_at   TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (org_id, rule, resource_id)
) WITHOUT ROWID;
