"""The state store: checkpoints, open runs, dedup keys, metric series and
the outbox (spans, and log records when logs are on), in SQLite (a file) or
PostgreSQL (state.url). All SQL lives here (the schema in schema.py),
written once for both engines (state/db.py holds what differs). A poll's
batch is written in one transaction, so a crash leaves either all of it or
none of it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exporter.model import Batch, OpenRun
from exporter.state.db import ENGINE_ERRORS, Database, SqliteDatabase, Transaction, unusable
from exporter.state.leases import Fence
from exporter.state.schema import MIGRATIONS, SCHEMA_VERSION, schema

SeriesKey = tuple[str, tuple[str, ...]]  # (metric name, label values)
TRACES, LOGS = "traces", "logs"  # the signal of an outbox row
LOOKUP_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit


class StateError(Exception):
    """The state cannot be used; the message says how to recover."""


class NewerStateError(StateError):
    """The state was written by a newer exporter's schema."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    source: str
    spans: int
    payload: bytes
    attempts: int
    run: str | None  # the run whose spans the row holds (None: written before schema 2, or log records)
    signal: str = TRACES  # TRACES: `spans` counts spans; LOGS: log records


@dataclass(frozen=True, slots=True)
class Dropped:
    """What a commit dropped from a full outbox: span count and the runs
    (source, run id) whose traces went with them; log records apart."""

    spans: int = 0
    runs: tuple[tuple[str, str | None], ...] = ()
    logs: int = 0


class StateStore:
    """One connection shared by the scheduler's threads and the outbox drain,
    serialised by a lock: SQLite has one writer anyway, and each transaction
    is short. `where`: a state file's path, or an open Database (PostgreSQL)."""

    def __init__(self, where: str | Path | Database) -> None:
        self._lock = threading.RLock()
        self._outbox_total: int | None = None  # cached sum(spans) of the outbox; None: count again
        self.name = f"state file {where}" if isinstance(where, str | Path) else where.name
        unusable_errors = ENGINE_ERRORS if isinstance(where, str | Path) else (*ENGINE_ERRORS, *where.errors)
        try:
            self._db: Database = SqliteDatabase(str(where)) if isinstance(where, str | Path) else where
            self._db.check()
            self._migrate()
        except NewerStateError:
            raise
        except unusable_errors as err:
            raise StateError(unusable(self.name, err)) from err

    def _migrate(self) -> None:
        """A new database gets the current schema; an older one is brought
        up to it, in one transaction; a newer one is refused (its meaning is
        unknown). Under the schema lock: replicas starting together migrate
        once."""
        with self._transaction() as db:
            db.lock_schema()
            db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            version = SCHEMA_VERSION if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise NewerStateError(
                    f"{self.name} has schema version {version}, written by a newer exporter; this one reads up "
                    f"to version {SCHEMA_VERSION}. Run the newer exporter, or point {db.setting} elsewhere"
                )
            while version < SCHEMA_VERSION:
                db.execute(MIGRATIONS[version])
                version += 1
                db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(version),))
            for statement in schema(db.types, db.shared).split(";"):
                if statement.strip():  # tables of a new database, indexes added since (IF NOT EXISTS)
                    db.execute(statement)
            if row is None:
                db.execute("INSERT INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reads -------------------------------------------------------------

    def checkpoint(self, source: str) -> dict[str, object]:
        with self._lock:
            row = self._db.execute("SELECT data FROM checkpoints WHERE source=?", (source,)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def open_run(self, source: str, run_id: str) -> OpenRun | None:
        with self._lock:
            row = self._db.execute(
                "SELECT run_id, agent, opened_at, finished, data FROM open_runs WHERE source=? AND run_id=?",
                (source, run_id),
            ).fetchone()
        return self._with_items(source, [_open_run(row)])[0] if row else None

    def _with_items(self, source: str, runs: list[OpenRun]) -> list[OpenRun]:
        """The runs with their stored items."""
        items = self.open_items_among(source, (o.run_id for o in runs))
        return [replace(o, items=items[o.run_id]) if o.run_id in items else o for o in runs]

    def open_runs(self, source: str, chunk: int = 500) -> Iterator[OpenRun]:
        """All open runs of a source, read in chunks so memory stays flat."""
        after = ""
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT run_id, agent, opened_at, finished, data FROM open_runs"
                    " WHERE source=? AND run_id>? ORDER BY run_id LIMIT ?",
                    (source, after, chunk),
                ).fetchall()
            yield from self._with_items(source, [_open_run(r) for r in rows])
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def finished_open_runs(self, source: str, limit: int) -> list[OpenRun]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, agent, opened_at, finished, data FROM open_runs WHERE source=? AND finished=1 LIMIT ?",
                (source, limit),
            ).fetchall()
        return self._with_items(source, [_open_run(r) for r in rows])

    def stale_open_runs(self, source: str, opened_before: float, limit: int) -> list[OpenRun]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, agent, opened_at, finished, data FROM open_runs"
                " WHERE source=? AND opened_at<? ORDER BY opened_at LIMIT ?",
                (source, opened_before, limit),
            ).fetchall()
        return self._with_items(source, [_open_run(r) for r in rows])

    def open_run_counts(self, source: str) -> dict[str, int]:
        """Open (unfinished at the platform) runs per agent."""
        with self._lock:
            rows = self._db.execute(
                "SELECT agent, count(*) FROM open_runs WHERE source=? AND finished=0 GROUP BY agent", (source,)
            ).fetchall()
        return dict(rows)

    def is_seen(self, source: str, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM seen WHERE source=? AND key=?", (source, key)).fetchone() is not None

    def seen_among(self, source: str, keys: Iterable[str]) -> set[str]:
        """Which of these dedup keys are stored: one query per LOOKUP_CHUNK
        keys (a page's worth), not one per key."""
        return {
            row[0]
            for chunk in _chunks(keys)
            for row in self._select_in("SELECT key FROM seen WHERE source=? AND key IN ({})", source, chunk)
        }

    def open_runs_among(self, source: str, run_ids: Iterable[str]) -> dict[str, OpenRun]:
        """The open runs with these ids, without their items (a page's lookup:
        whether a run is open, its agent and state; not enough to build it)."""
        return {
            row[0]: _open_run(row)
            for chunk in _chunks(run_ids)
            for row in self._select_in(
                "SELECT run_id, agent, opened_at, finished, data FROM open_runs WHERE source=? AND run_id IN ({})",
                source,
                chunk,
            )
        }

    def open_items_among(self, source: str, run_ids: Iterable[str]) -> dict[str, tuple[object, ...]]:
        """The stored items of these open runs, by id, in appended order (runs
        without any absent): one query per LOOKUP_CHUNK runs."""
        items: dict[str, list[object]] = {}
        for chunk in _chunks(run_ids):
            for run_id, data in self._select_in(
                "SELECT run_id, data FROM open_items WHERE source=? AND run_id IN ({}) ORDER BY id", source, chunk
            ):
                items.setdefault(run_id, []).extend(json.loads(data))
        return {run_id: tuple(values) for run_id, values in items.items()}

    def _select_in(self, sql: str, source: str, values: list[str]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql.format(",".join("?" * len(values))), (source, *values)).fetchall()

    def series(self) -> dict[SeriesKey, object]:
        with self._lock:
            rows = self._db.execute("SELECT name, labels, value FROM series").fetchall()
        return {(name, tuple(json.loads(labels))): json.loads(value) for name, labels, value in rows}

    # -- the poll transaction ------------------------------------------------

    def commit(
        self,
        source: str,
        batch: Batch,
        outbox: Iterable[tuple[str, int, bytes]],
        series: Mapping[SeriesKey, object],
        outbox_bound: int | None,
        *,
        logs: tuple[int, bytes] | None = None,
        fence: Fence | None = None,
    ) -> Dropped:
        """Write one batch: open-run changes, dedup keys, checkpoint, spans
        (rows of (run id, span count, payload)), its log records (one row of
        (record count, payload)) and absolute metric values, all or nothing.
        Returns what was dropped from the outbox to keep it within
        `outbox_bound` (None: drop nothing). With a `fence`, only while that
        lease is still this replica's (else LeaseLost, nothing written)."""
        with self._lock, self._transaction() as db:
            if fence is not None:
                fence.check(db)
            if batch.open_deletes:
                deletes = [(source, r) for r in batch.open_deletes]
                db.executemany("DELETE FROM open_runs WHERE source=? AND run_id=?", deletes)
                db.executemany("DELETE FROM open_items WHERE source=? AND run_id=?", deletes)
            if batch.open_upserts:
                kept = [o for o in batch.open_upserts.values() if o.run_id not in batch.open_deletes]
                db.executemany(
                    "INSERT INTO open_runs VALUES(?,?,?,?,?,?) ON CONFLICT(source, run_id) DO UPDATE SET"
                    " agent=excluded.agent, opened_at=excluded.opened_at, finished=excluded.finished,"
                    " data=excluded.data",
                    ((source, o.run_id, o.agent, o.opened_at, int(o.finished), _compact_json(o.data)) for o in kept),
                )
                db.executemany(
                    "INSERT INTO open_items(source, run_id, data) VALUES(?,?,?)",
                    ((source, o.run_id, _compact_json(o.appended)) for o in kept if o.appended),
                )
            if batch.seen_add:
                db.executemany(
                    "INSERT INTO seen VALUES(?,?,?) ON CONFLICT DO NOTHING",
                    ((source, k, at) for k, at in batch.seen_add.items()),
                )
            if batch.seen_prune_before is not None:
                db.execute("DELETE FROM seen WHERE source=? AND at<?", (source, batch.seen_prune_before))
            if batch.checkpoint is not None:
                db.execute(
                    "INSERT INTO checkpoints VALUES(?,?) ON CONFLICT(source) DO UPDATE SET data=excluded.data",
                    (source, json.dumps(batch.checkpoint)),
                )
            rows: list[tuple[str | None, int, bytes]] = list(outbox)
            if logs is not None:
                rows.append((None, *logs))
            total = self._outbox_sum(db) + sum(n for _, n, _ in rows)
            self._outbox_total = None  # until this transaction has committed
            db.executemany(
                "INSERT INTO outbox(source, spans, payload, run, signal) VALUES(?,?,?,?,?)",
                ((source, n, p, run, TRACES if run is not None else LOGS) for run, n, p in rows),
            )
            self._write_series(db, series)
            # Only a commit that adds spans makes room for them: one that adds
            # none leaves the outbox as it is, above the bound or not.
            dropped = Dropped()
            if rows and outbox_bound is not None:
                total, dropped = self._trim_outbox(db, total, outbox_bound)
        self._outbox_total = total
        return dropped

    def write_series(self, series: Mapping[SeriesKey, object]) -> None:
        with self._lock, self._transaction() as db:
            self._write_series(db, series)

    @staticmethod
    def _write_series(db: Database, series: Mapping[SeriesKey, object]) -> None:
        if series:
            db.executemany(
                "INSERT INTO series VALUES(?,?,?) ON CONFLICT(name, labels) DO UPDATE SET value=excluded.value",
                ((name, json.dumps(labels), json.dumps(value)) for (name, labels), value in series.items()),
            )

    # -- outbox ------------------------------------------------------------

    def outbox_take(
        self, max_spans: int, signals: tuple[str, ...] = (TRACES, LOGS), sources: Iterable[str] | None = None
    ) -> list[OutboxRow]:
        """The oldest rows of these signals, up to max_spans items (at least
        one row); only rows of `sources` when given (a replica drains what it
        reads)."""
        taken: list[OutboxRow] = []
        total = 0
        where = f"WHERE signal IN ({','.join('?' * len(signals))})"
        names: list[str] = []
        if sources is not None:
            names = sorted(set(sources))
            if not names:
                return []
            where += f" AND source IN ({','.join('?' * len(names))})"
        with self._lock:
            # Stepped row by row: rows hold several spans, so reading LIMIT
            # max_spans rows at once would load payloads that stay behind.
            cursor = self._db.execute(
                f"SELECT id, source, spans, payload, attempts, run, signal FROM outbox {where} ORDER BY id LIMIT ?",  # noqa: S608 (placeholders)
                (*signals, *names, max_spans),
            )
            try:
                for row in cursor:
                    if taken and total + row[2] > max_spans:
                        break
                    taken.append(OutboxRow(*row))
                    total += row[2]
            finally:
                cursor.close()  # ends the read at once: an open statement would pin the WAL snapshot
        return taken

    def outbox_done(self, ids: list[int], series: Mapping[SeriesKey, object]) -> None:
        """Delete delivered (or given-up) rows and record the counters, together."""
        with self._lock:
            with self._transaction() as db:
                total = self._outbox_sum(db)
                self._outbox_total = None  # until this transaction has committed
                for i in range(0, len(ids), LOOKUP_CHUNK):
                    chunk = ids[i : i + LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    total -= int(
                        db.execute(
                            f"SELECT coalesce(sum(spans), 0) FROM outbox WHERE id IN ({marks})",  # noqa: S608 (placeholders)
                            chunk,
                        ).fetchone()[0]
                    )
                db.executemany("DELETE FROM outbox WHERE id=?", ((i,) for i in ids))
                self._write_series(db, series)
            self._outbox_total = total

    def outbox_spans(self) -> int:
        with self._lock:
            return self._outbox_sum(self._db)

    def _outbox_sum(self, db: Database) -> int:
        """Spans in the outbox: counted once, then kept up to date by every
        committed write (a write that rolls back leaves it to be recounted).
        A database replicas share is counted every time: they all write it."""
        if self._outbox_total is None or db.shared:
            self._outbox_total = int(db.execute("SELECT coalesce(sum(spans), 0) FROM outbox").fetchone()[0])
        return self._outbox_total

    @staticmethod
    def _trim_outbox(db: Database, total: int, bound: int) -> tuple[int, Dropped]:
        spans, runs, logs = 0, [], 0
        while total > bound:
            row = db.execute("SELECT id, spans, source, run, signal FROM outbox ORDER BY id LIMIT 1").fetchone()
            db.execute("DELETE FROM outbox WHERE id=?", (row[0],))
            total -= row[1]
            if row[4] == LOGS:
                logs += row[1]
            else:
                spans += row[1]
                runs.append((row[2], row[3]))
        return total, Dropped(spans, tuple(runs), logs)

    # -- plumbing ------------------------------------------------------------

    def _transaction(self) -> Transaction:
        return Transaction(self._db)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(values))
    for i in range(0, len(unique), LOOKUP_CHUNK):
        yield unique[i : i + LOOKUP_CHUNK]


def _open_run(row: tuple[str, str, float, int, str]) -> OpenRun:
    return OpenRun(run_id=row[0], agent=row[1], opened_at=row[2], finished=bool(row[3]), data=json.loads(row[4]))


def _compact_json(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))
