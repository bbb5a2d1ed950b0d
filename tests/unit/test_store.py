"""SQLite state: one transaction per batch, round trips, bounds, corruption."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from exporter.model import Batch, OpenRun
from exporter.state.store import StateError, StateStore


def batch(**kw: object) -> Batch:
    b = Batch()
    for k, v in kw.items():
        setattr(b, k, v)
    return b


def test_batch_round_trips_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.commit("feed", batch(
        checkpoint={"watermark": "2026-05-10T12:00:00+00:00"},
        open_upserts={"r1": OpenRun(run_id="r1", agent="a", opened_at=1.0, data={"events": [1]}),
                      "r2": OpenRun(run_id="r2", agent="a", opened_at=2.0, data={}, finished=True)},
        seen_add={"ev:1": 10.0},
    ), [(3, b"[]")], {("agent_runs_total", ("feed", "runtools", "a", "failed")): 4.0}, 1000)
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

    class Boom(dict):  # a series mapping that fails halfway through the transaction
        def items(self):  # type: ignore[override]
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.commit("feed", batch(checkpoint={"watermark": "x"}, seen_add={"ev:1": 1.0}), [(1, b"[]")], Boom(x=1), 10)
    assert store.checkpoint("feed") == {} and not store.is_seen("feed", "ev:1") and store.outbox_spans() == 0


def test_outbox_bound_drops_oldest(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    dropped = store.commit("feed", batch(), [(4, b"old"), (4, b"mid"), (4, b"new")], {}, 10)
    assert dropped == 4
    assert [r.payload for r in store.outbox_take(100)] == [b"mid", b"new"]


def test_outbox_take_respects_span_budget_but_always_takes_one(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.commit("feed", batch(), [(600, b"big"), (5, b"small")], {}, 10_000)
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
    tables = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall())  # noqa: S608 (fixed names)
              for t in ("checkpoints", "open_runs", "seen")}
    db.close()
    return tables


def _run(run_id: str, **kw: object) -> OpenRun:
    return OpenRun(run_id=run_id, agent="a", opened_at=1.0, data={"v": kw.get("v", 0)},
                   finished=bool(kw.get("finished", False)))


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
