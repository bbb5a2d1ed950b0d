"""The schema, its version, and the steps that migrate an older state in
place. Written once for both engines: `{real}`, `{blob}`, `{rowid}`,
`{serial}` and `{without_rowid}` are each engine's words (state/db.py)."""

from __future__ import annotations

from collections.abc import Mapping

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(source TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS open_runs(
    source TEXT NOT NULL, run_id TEXT NOT NULL, agent TEXT NOT NULL, opened_at {real} NOT NULL,
    finished INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY(source, run_id)){without_rowid};
CREATE INDEX IF NOT EXISTS open_runs_finished ON open_runs(source, finished);
CREATE INDEX IF NOT EXISTS open_runs_age ON open_runs(source, opened_at);
CREATE TABLE IF NOT EXISTS open_items(
    id {rowid}, source TEXT NOT NULL, run_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS open_items_run ON open_items(source, run_id, id);
CREATE TABLE IF NOT EXISTS seen(
    source TEXT NOT NULL, key TEXT NOT NULL, at {real} NOT NULL, PRIMARY KEY(source, key)){without_rowid};
CREATE INDEX IF NOT EXISTS seen_at ON seen(source, at);
CREATE TABLE IF NOT EXISTS series(
    name TEXT NOT NULL, labels TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(name, labels)){without_rowid};
CREATE TABLE IF NOT EXISTS outbox(
    id {serial}, source TEXT NOT NULL, spans INTEGER NOT NULL,
    payload {blob} NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run TEXT,
    signal TEXT NOT NULL DEFAULT 'traces');
"""
# Only in a database replicas share (PostgreSQL): who reads which source
# (state/leases.py) and who is alive. New tables, which nothing before them
# reads, so they need no version step.
SHARED_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases(
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS replicas(id TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL);
"""
# Each step takes a state from version N to N+1, in one transaction; the
# same SQL on both engines.
MIGRATIONS: dict[int, str] = {
    # 1 -> 2: outbox rows name their run, so a row dropped or refused is logged with the run's id
    # (open_items, new in 2, is made by SCHEMA).
    1: "ALTER TABLE outbox ADD COLUMN run TEXT",
    # 2 -> 3: the outbox holds log records beside spans; a row says which
    # (`spans` counts the items of either), and the rows already there are spans.
    2: "ALTER TABLE outbox ADD COLUMN signal TEXT NOT NULL DEFAULT 'traces'",
}


def schema(types: Mapping[str, str], shared: bool) -> str:
    """SCHEMA in one engine's column types, with SHARED_SCHEMA when replicas share the database."""
    return SCHEMA.format_map(types) + (SHARED_SCHEMA if shared else "")
