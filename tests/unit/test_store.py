"""SQLite state: one transaction per batch, round trips, bounds, corruption."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from exporter.model import Batch, OpenRun
from exporter.state.store import Dropped, NewerStateError, SeriesKey, StateError, StateStore


def batch(**kw: object) -> Batch:
    b = Batch()
    for k, v in kw.items():
        setattr(b, k, v)
    return b


def test_batch_round_trips_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
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
    again = StateStore(path)
    assert again.checkpoint("feed") == {"watermark": "2026-05-10T12:00:00+00:00"}
    assert again.open_run("feed", "r1") == OpenRun(run_id="r1", agent="a", opened_at=1.0, data={"events": [1]})
    assert [o.run_id for o in again.finished_open_runs("feed", 10)] == ["r2"]
    assert again.open_run_counts("feed") == {"a": 1}  # finished-at-platform runs are not in progress
    assert again.is_seen("feed", "ev:1") and not again.is_seen("other", "ev:1")
    assert again.series() == {("agent_runs_total", ("feed", "runtools", "a", "failed")): 4.0}
    assert again.outbox_spans() == 3


def test_a_failing_batch_writes_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")

    class Boom(dict[SeriesKey, object]):  # a series mapping that fails halfway through the transaction
        def items(self) -> Any:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.commit(
            "feed", batch(checkpoint={"watermark": "x"}, seen_add={"ev:1": 1.0}), [("r1", 1, b"[]")], Boom(x=1), 10
        )
    assert store.checkpoint("feed") == {} and not store.is_seen("feed", "ev:1") and store.outbox_spans() == 0


def test_outbox_bound_drops_oldest(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    dropped = store.commit("feed", batch(), [("r1", 4, b"old"), ("r2", 4, b"mid"), ("r3", 4, b"new")], {}, 10)
    assert dropped == Dropped(spans=4, runs=(("feed", "r1"),))
    assert [(r.payload, r.run) for r in store.outbox_take(100)] == [(b"mid", "r2"), (b"new", "r3")]


def test_only_a_commit_that_adds_spans_trims_the_outbox(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.commit("feed", batch(), [("r1", 8, b"big")], {}, 10_000)  # let in above the usual bound
    assert store.commit("feed", batch(checkpoint={"watermark": "x"}), [], {}, 5) == Dropped()  # adds none
    assert store.outbox_spans() == 8
    assert store.commit("feed", batch(), [("r2", 1, b"new")], {}, None) == Dropped()  # None: the backend takes spans
    dropped = store.commit("feed", batch(), [("r3", 1, b"new")], {}, 5)
    assert dropped == Dropped(spans=8, runs=(("feed", "r1"),))  # oldest first, until within the bound


def test_a_version_1_state_file_is_migrated_and_keeps_its_outbox(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)  # what a schema-1 exporter left behind: an outbox row without a run
    db.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES('schema', '1');"
        "CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, spans INTEGER NOT NULL,"
        " payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO outbox(source, spans, payload) VALUES('feed', 3, x'01');"
    )
    db.close()
    store = StateStore(path)
    assert [(r.payload, r.run, r.spans) for r in store.outbox_take(100)] == [(b"\x01", None, 3)]
    store.commit("feed", batch(), [("r9", 2, b"new")], {}, 100)
    assert [r.run for r in store.outbox_take(100)] == [None, "r9"]
    store.close()
    assert StateStore(path).outbox_spans() == 5  # opens again at the current version


def test_a_state_file_from_a_newer_exporter_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(NewerStateError, match="schema version 99, written by a newer exporter"):
        StateStore(path)


def test_outbox_take_respects_span_budget_but_always_takes_one(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.commit("feed", batch(), [("r1", 600, b"big"), ("r2", 5, b"small")], {}, 10_000)
    assert [r.payload for r in store.outbox_take(512)] == [b"big"]
    rows = store.outbox_take(10_000)
    store.outbox_done([rows[0].id], {})
    assert [r.payload for r in store.outbox_take(512)] == [b"small"]


def test_seen_keys_are_pruned(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.commit("feed", batch(seen_add={"old": 1.0, "new": 100.0}), [], {}, 10)
    store.commit("feed", batch(seen_prune_before=50.0), [], {}, 10)
    assert not store.is_seen("feed", "old") and store.is_seen("feed", "new")


def test_stale_open_runs_oldest_first(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
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


def _dump(store: StateStore) -> dict[str, object]:
    db = sqlite3.connect(store.path)
    tables: dict[str, object] = {
        t: sorted(db.execute(f"SELECT * FROM {t}").fetchall())  # noqa: S608 (fixed names)
        for t in ("checkpoints", "open_runs", "seen")
    }
    db.close()
    return tables


def _run(run_id: str, **kw: object) -> OpenRun:
    return OpenRun(
        run_id=run_id, agent="a", opened_at=1.0, data={"v": kw.get("v", 0)}, finished=bool(kw.get("finished", False))
    )


def test_absorbed_batches_commit_like_the_same_batches_in_order(tmp_path: Path) -> None:
    def batches() -> list[Batch]:
        return [
            batch(open_upserts={"r1": _run("r1"), "r2": _run("r2")}, seen_add={"ev:1": 5.0}, records={"run": 2}),
            batch(open_upserts={"r1": _run("r1", v=1)}, seen_add={"ev:1": 9.0, "ev:2": 6.0}, records={"run": 1}),
            batch(open_deletes={"r2"}, seen_add={"run:r2": 7.0}, checkpoint={"c": 1}),
            batch(open_upserts={"r2": _run("r2", v=2, finished=True)}, open_deletes={"r1"}),
            batch(seen_add={"ev:3": 1.0}, seen_prune_before=5.5, checkpoint={"c": 2}),
        ]

    one_by_one, grouped_store = StateStore(tmp_path / "a.db"), StateStore(tmp_path / "b.db")
    for b in batches():
        one_by_one.commit("feed", b, [], {}, 1000)
    merged, *rest = batches()
    for b in rest:
        merged.absorb(b)
    grouped_store.commit("feed", merged, [], {}, 1000)
    assert _dump(grouped_store) == _dump(one_by_one)
    assert _dump(one_by_one)["seen"] == [("feed", "ev:2", 6.0), ("feed", "run:r2", 7.0)]
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
