"""The state store on both engines, SQLite and a real PostgreSQL: one
transaction per batch, round trips, bounds, migrations; corruption and WAL
on SQLite."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exporter.model import Batch, OpenRun
from exporter.state.db import PostgresDatabase, StateUnavailable
from exporter.state.schema import SCHEMA_VERSION
from exporter.state.store import Dropped, NewerStateError, SeriesKey, StateError, StateStore
from testkit.postgres import PostgresServer


class Backend:
    """Where a test's state lives: `fresh()` names a new empty state, `open`
    opens the store on it, `sql` runs SQL on it from outside the store (as
    an older or newer exporter, or an operator, would)."""

    def __init__(self, kind: str, tmp_path: Path, server: PostgresServer | None) -> None:
        self.kind, self._tmp, self._server = kind, tmp_path, server
        self._n = itertools.count(1)

    def fresh(self) -> str:
        if self._server is None:
            return str(self._tmp / f"state{next(self._n)}.db")
        return self._server.create_database()

    def open(self, where: str) -> StateStore:
        return StateStore(PostgresDatabase(where, "test") if self._server else where)

    def sql(self, where: str, statements: list[str]) -> list[tuple[Any, ...]]:
        """Run `statements` in one transaction; the last one's rows."""
        rows: list[tuple[Any, ...]] = []
        if self._server is None:
            with sqlite3.connect(where) as lite:
                for statement in statements:
                    rows = lite.execute(statement).fetchall()
            return rows
        with psycopg.connect(where) as pg:
            for statement in statements:
                cursor = pg.execute(statement)
                rows = cursor.fetchall() if cursor.description else []
        return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    return Backend(request.param, tmp_path, server)


def batch(**kw: object) -> Batch:
    b = Batch()
    for k, v in kw.items():
        setattr(b, k, v)
    return b


def test_batch_round_trips_across_reopen(backend: Backend) -> None:
    where = backend.fresh()
    store = backend.open(where)
    store.commit(
        "feed",
        batch(
            checkpoint={"watermark": "2026-05-10T12:00:00+00:00"},
            open_upserts={
                "r1": OpenRun(run_id="r1", agent="a", opened_at=1.0, data={"events": [1]}),
                "r2": OpenRun(run_id="r2", agent="a", opened_at=2.0, data={}, finished=True),
            },
            seen_add={"ev:1": 10.0},
        ),
        [("r1", 3, b"[]")],
        {("agent_runs_total", ("feed", "runtools", "a", "failed")): 4.0},
        1000,
    )
    store.close()
    again = backend.open(where)
    assert again.checkpoint("feed") == {"watermark": "2026-05-10T12:00:00+00:00"}
    assert again.open_run("feed", "r1") == OpenRun(run_id="r1", agent="a", opened_at=1.0, data={"events": [1]})
    assert [o.run_id for o in again.finished_open_runs("feed", 10)] == ["r2"]
    assert again.open_run_counts("feed") == {"a": 1}  # finished-at-platform runs are not in progress
    assert again.is_seen("feed", "ev:1") and not again.is_seen("other", "ev:1")
    assert again.series() == {("agent_runs_total", ("feed", "runtools", "a", "failed")): 4.0}
    assert again.outbox_spans() == 3


def test_a_failing_batch_writes_nothing(backend: Backend) -> None:
    store = backend.open(backend.fresh())

    class Boom(dict[SeriesKey, object]):  # a series mapping that fails halfway through the transaction
        def items(self) -> Any:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.commit(
            "feed", batch(checkpoint={"watermark": "x"}, seen_add={"ev:1": 1.0}), [("r1", 1, b"[]")], Boom(x=1), 10
        )
    assert store.checkpoint("feed") == {} and not store.is_seen("feed", "ev:1") and store.outbox_spans() == 0


def test_outbox_bound_drops_oldest(backend: Backend) -> None:
    store = backend.open(backend.fresh())
    dropped = store.commit("feed", batch(), [("r1", 4, b"old"), ("r2", 4, b"mid"), ("r3", 4, b"new")], {}, 10)
    assert dropped == Dropped(spans=4, runs=(("feed", "r1"),))
    assert [(r.payload, r.run) for r in store.outbox_take(100)] == [(b"mid", "r2"), (b"new", "r3")]


def test_only_a_commit_that_adds_spans_trims_the_outbox(backend: Backend) -> None:
    store = backend.open(backend.fresh())
    store.commit("feed", batch(), [("r1", 8, b"big")], {}, 10_000)  # let in above the usual bound
    assert store.commit("feed", batch(checkpoint={"watermark": "x"}), [], {}, 5) == Dropped()  # adds none
    assert store.outbox_spans() == 8
    assert store.commit("feed", batch(), [("r2", 1, b"new")], {}, None) == Dropped()  # None: the backend takes spans
    dropped = store.commit("feed", batch(), [("r3", 1, b"new")], {}, 5)
    assert dropped == Dropped(spans=8, runs=(("feed", "r1"),))  # oldest first, until within the bound


def test_a_version_1_state_is_migrated_and_keeps_its_outbox(backend: Backend) -> None:
    where = backend.fresh()
    key = "INTEGER PRIMARY KEY AUTOINCREMENT" if backend.kind == "sqlite" else "SERIAL PRIMARY KEY"
    payload = "x'01'" if backend.kind == "sqlite" else "'\\x01'::bytea"
    blob = "BLOB" if backend.kind == "sqlite" else "BYTEA"
    backend.sql(  # what a schema-1 exporter left behind: an outbox row without a run
        where,
        [
            "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT INTO meta VALUES('schema', '1')",
            f"CREATE TABLE outbox(id {key}, source TEXT NOT NULL, spans INTEGER NOT NULL,"
            f" payload {blob} NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)",
            f"INSERT INTO outbox(source, spans, payload) VALUES('feed', 3, {payload})",
        ],
    )
    store = backend.open(where)
    assert [(r.payload, r.run, r.spans) for r in store.outbox_take(100)] == [(b"\x01", None, 3)]
    store.commit("feed", batch(), [("r9", 2, b"new")], {}, 100)
    assert [(r.run, r.signal) for r in store.outbox_take(100)] == [(None, "traces"), ("r9", "traces")]
    store.close()
    assert backend.open(where).outbox_spans() == 5  # opens again at the current version
    assert backend.sql(where, ["SELECT value FROM meta WHERE key='schema'"]) == [(str(SCHEMA_VERSION),)]


def test_a_state_from_a_newer_exporter_is_refused_clearly(backend: Backend) -> None:
    where = backend.fresh()
    backend.open(where).close()
    backend.sql(where, ["UPDATE meta SET value='99' WHERE key='schema'"])
    setting = "state.path" if backend.kind == "sqlite" else "state.url"
    with pytest.raises(NewerStateError, match=f"schema version 99, written by a newer exporter.*point {setting}"):
        backend.open(where)
    assert backend.sql(where, ["SELECT value FROM meta WHERE key='schema'"]) == [("99",)]  # left as it was


def test_outbox_take_respects_span_budget_but_always_takes_one(backend: Backend) -> None:
    store = backend.open(backend.fresh())
    store.commit("feed", batch(), [("r1", 600, b"big"), ("r2", 5, b"small")], {}, 10_000)
    assert [r.payload for r in store.outbox_take(512)] == [b"big"]
    rows = store.outbox_take(10_000)
    store.outbox_done([rows[0].id], {})
    assert [r.payload for r in store.outbox_take(512)] == [b"small"]


def test_seen_keys_are_pruned(backend: Backend) -> None:
    store = backend.open(backend.fresh())
    store.commit("feed", batch(seen_add={"old": 1.0, "new": 100.0}), [], {}, 10)
    store.commit("feed", batch(seen_prune_before=50.0), [], {}, 10)
    assert not store.is_seen("feed", "old") and store.is_seen("feed", "new")


def test_stale_open_runs_oldest_first(backend: Backend) -> None:
    store = backend.open(backend.fresh())
    runs = {r: OpenRun(run_id=r, agent="a", opened_at=t, data={}) for r, t in (("b", 5.0), ("a", 1.0), ("c", 99.0))}
    store.commit("feed", batch(open_upserts=runs), [], {}, 10)
    assert [o.run_id for o in store.stale_open_runs("feed", 50.0, 10)] == ["a", "b"]


def test_corrupt_state_file_is_a_clear_error_never_a_silent_reset(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database, it is a shopping list" * 100)
    with pytest.raises(StateError, match="move it aside"):
        StateStore(path)
    assert path.read_bytes().startswith(b"this is not a database")  # left as it was, for inspection


def test_wal_mode(tmp_path: Path) -> None:
    StateStore(tmp_path / "state.db")
    mode = sqlite3.connect(tmp_path / "state.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _dump(backend: Backend, where: str) -> dict[str, object]:
    return {
        t: sorted(backend.sql(where, [f"SELECT * FROM {t}"]))  # noqa: S608 (fixed names)
        for t in ("checkpoints", "open_runs", "seen")
    }


def _run(run_id: str, **kw: object) -> OpenRun:
    return OpenRun(
        run_id=run_id, agent="a", opened_at=1.0, data={"v": kw.get("v", 0)}, finished=bool(kw.get("finished", False))
    )


def test_absorbed_batches_commit_like_the_same_batches_in_order(backend: Backend) -> None:
    def batches() -> list[Batch]:
        return [
            batch(open_upserts={"r1": _run("r1"), "r2": _run("r2")}, seen_add={"ev:1": 5.0}, records={"run": 2}),
            batch(open_upserts={"r1": _run("r1", v=1)}, seen_add={"ev:1": 9.0, "ev:2": 6.0}, records={"run": 1}),
            batch(open_deletes={"r2"}, seen_add={"run:r2": 7.0}, checkpoint={"c": 1}),
            batch(open_upserts={"r2": _run("r2", v=2, finished=True)}, open_deletes={"r1"}),
            batch(seen_add={"ev:3": 1.0}, seen_prune_before=5.5, checkpoint={"c": 2}),
        ]

    one_by_one_at, grouped_at = backend.fresh(), backend.fresh()
    one_by_one, grouped_store = backend.open(one_by_one_at), backend.open(grouped_at)
    for b in batches():
        one_by_one.commit("feed", b, [], {}, 1000)
    merged, *rest = batches()
    for b in rest:
        merged.absorb(b)
    grouped_store.commit("feed", merged, [], {}, 1000)
    assert _dump(backend, grouped_at) == _dump(backend, one_by_one_at)
    assert _dump(backend, one_by_one_at)["seen"] == [("feed", "ev:2", 6.0), ("feed", "run:r2", 7.0)]
    assert merged.records == {"run": 3} and merged.checkpoint == {"c": 2}


def test_a_schema_2_outbox_becomes_spans_of_schema_3(tmp_path: Path) -> None:
    """A state file of the exporter before logs: its outbox rows are spans
    and stay deliverable; log rows then go in beside them."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES('schema', '2');"
        "CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, spans INTEGER NOT NULL,"
        " payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run TEXT);"
        "INSERT INTO outbox(source, spans, payload, run) VALUES('feed', 3, x'01', 'r1');"
    )
    db.close()
    store = StateStore(path)
    assert [(r.run, r.signal, r.spans) for r in store.outbox_take(100)] == [("r1", "traces", 3)]
    store.commit("feed", batch(), [("r2", 2, b"spans")], {}, 100, logs=(4, b"records"))
    rows = store.outbox_take(100)
    assert [(r.run, r.signal, r.spans, r.payload) for r in rows[1:]] == [
        ("r2", "traces", 2, b"spans"),
        (None, "logs", 4, b"records"),
    ]
    assert [r.payload for r in store.outbox_take(100, ("logs",))] == [b"records"]
    assert store.outbox_spans() == 9  # log records count toward the outbox like spans
    store.close()
    version = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    assert version == "3"


def test_the_outbox_bound_drops_log_records_apart_from_spans(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.commit("feed", batch(), [("r1", 4, b"old")], {}, 100, logs=(3, b"old-logs"))
    dropped = store.commit("feed", batch(), [("r2", 4, b"new")], {}, 5)
    assert dropped == Dropped(spans=4, runs=(("feed", "r1"),), logs=3)
    assert [r.payload for r in store.outbox_take(100)] == [b"new"]


# -- PostgreSQL only ---------------------------------------------------------


def test_replicas_starting_together_create_the_schema_once(postgres_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: StateStore(PostgresDatabase(postgres_url, "test")), range(4)))
    stores[0].commit("feed", batch(checkpoint={"c": 1}), [], {}, 10)
    assert all(s.checkpoint("feed") == {"c": 1} for s in stores)  # one database, seen by every replica
    with psycopg.connect(postgres_url) as pg:
        assert pg.execute("SELECT key, value FROM meta").fetchall() == [("schema", str(SCHEMA_VERSION))]


def test_an_unreachable_server_is_a_clear_error_naming_the_url_without_its_password() -> None:
    from testkit.exporter_io import free_port

    url = f"postgresql://exporter:hunter2-secret@127.0.0.1:{free_port()}/state"
    with pytest.raises(StateError) as caught:
        StateStore(PostgresDatabase(url, url.replace("hunter2-secret", "***"), connect_timeout=2))
    message = str(caught.value)
    assert "state database postgresql://exporter:***@127.0.0.1" in message and "cannot be used" in message
    assert "hunter2-secret" not in message


def test_a_broken_connection_is_replaced_on_the_next_use(postgres_url: str) -> None:
    store = StateStore(PostgresDatabase(postgres_url, "test"))
    store.commit("feed", batch(checkpoint={"c": 1}), [], {}, 10)
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # the server ends the store's session
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND datname = current_database()"
        )
    with pytest.raises(StateUnavailable):
        store.commit("feed", batch(checkpoint={"c": 2}), [], {}, 10)
    assert store.checkpoint("feed") == {"c": 1}  # the failed batch wrote nothing; the store reconnected
    store.commit("feed", batch(checkpoint={"c": 3}), [], {}, 10)
    assert store.checkpoint("feed") == {"c": 3}
