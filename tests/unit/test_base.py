"""Shared source helpers: loop guards and typed field access."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exporter.sources.base import CursorGuard, Fields
from exporter.sources.http import BadRecordError, CursorLoopError


def test_cursor_guard_stops_a_repeated_cursor_and_a_repeated_page() -> None:
    guard = CursorGuard("s")
    guard.check("a")
    guard.check("b")
    with pytest.raises(CursorLoopError):
        guard.check("a")
    guard.check_page([{"id": 1}])
    guard.check_page([])  # an empty page is no evidence of a loop
    guard.check_page([{"id": 2}])
    guard.check_page([{"id": 2}])  # once repeated: survivable, de-duplication absorbs it
    with pytest.raises(CursorLoopError, match="same page 3 times"):
        guard.check_page([{"id": 2}])


def test_fields_reject_with_bounded_reasons() -> None:
    f = Fields("s", {"id": "r1", "n": "7", "at": "2026-05-10T12:00:00.123456789+02:00", "cost": "0.023", "b": 1})
    assert f.record_id == "r1"
    assert f.time("at").isoformat() == "2026-05-10T10:00:00.123456+00:00"
    assert f.opt_decimal("cost") == Decimal("0.023")
    for call, reason in (
        (lambda: f.str("missing"), "missing_field"),
        (lambda: f.opt_int("n"), "bad_type"),
        (lambda: f.opt_bool("b"), "bad_type"),
        (lambda: Fields("s", {"c": "free"}).opt_decimal("c"), "bad_value"),
    ):
        with pytest.raises(BadRecordError) as err:
            call()
        assert err.value.reason == reason
    with pytest.raises(BadRecordError) as err:
        Fields("s", ["not", "an", "object"])
    assert err.value.reason == "bad_type"


def test_grouped_commits_batches_together_and_ends_a_group_at_a_prune() -> None:
    from exporter.model import Batch, OpenRun
    from exporter.sources.base import grouped

    def one(run_id: str, prune: float | None = None) -> Batch:
        return Batch(
            open_upserts={run_id: OpenRun(run_id=run_id, agent="a", opened_at=0.0, data={})}, seen_prune_before=prune
        )

    out = list(grouped([one("r1"), one("r2"), one("r3"), one("r4", prune=1.0), one("r5")], changes=2))
    assert [sorted(b.open_upserts) for b in out] == [["r1", "r2"], ["r3", "r4"], ["r5"]]
    assert [b.seen_prune_before for b in out] == [None, 1.0, None]
