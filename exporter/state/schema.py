"""The SQLite schema, its version, and the steps that migrate an older state
file in place."""

from __future__ import annotations

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(source TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS open_runs(
    source TEXT NOT NULL, run_id TEXT NOT NULL, agent TEXT NOT NULL, opened_at REAL NOT NULL,
    finished INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY(source, run_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS open_runs_finished ON open_runs(source, finished);
CREATE INDEX IF NOT EXISTS open_runs_age ON open_runs(source, opened_at);
CREATE TABLE IF NOT EXISTS open_items(
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, run_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS open_items_run ON open_items(source, run_id, id);
CREATE TABLE IF NOT EXISTS seen(
    source TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY(source, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_at ON seen(source, at);
CREATE TABLE IF NOT EXISTS series(
    name TEXT NOT NULL, labels TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(name, labels)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox(
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, spans INTEGER NOT NULL,
    payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run TEXT,
    signal TEXT NOT NULL DEFAULT 'traces');
"""
# Each step takes a state file from version N to N+1, in one transaction.
MIGRATIONS: dict[int, str] = {
    # 1 -> 2: outbox rows name their run, so a row dropped or refused is logged with the run's id
    # (open_items, new in 2, is made by SCHEMA).
    1: "ALTER TABLE outbox ADD COLUMN run TEXT",
    # 2 -> 3: the outbox holds log records beside spans; a row says which
    # (`spans` counts the items of either), and the rows already there are spans.
    2: "ALTER TABLE outbox ADD COLUMN signal TEXT NOT NULL DEFAULT 'traces'",
}
