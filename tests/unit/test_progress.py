"""Backfill progress: the history still to read, the progress of a backfill
from where it started, its rate and time left, and its log lines (at most
every LOG_EVERY seconds per source)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from exporter.progress import BEHIND_SECONDS, LOG_EVERY, BackfillTracker, human_duration

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "exporter.progress"]


def test_a_backfill_reports_its_progress_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    t = BackfillTracker(clock)
    t.begin("feed", NOW)
    assert t.read("feed", NOW - 10 * DAY, 0) == 10 * 86400  # where it starts: 10 days to read
    view = t.view("feed")
    assert view is not None and view.fraction == 0 and view.eta_seconds is None
    clock.now += 5
    assert t.read("feed", NOW - 9 * DAY, 500) == 9 * 86400
    view = t.view("feed")
    assert view is not None
    assert view.fraction == pytest.approx(0.1)
    assert view.records_per_second == pytest.approx(100.0)
    assert view.eta_seconds == pytest.approx(45.0)  # a day per 5 s, 9 days left
    assert lines(caplog) == ["backfill: 10d 0h of history to read"]
    clock.now += LOG_EVERY
    t.read("feed", NOW - 5 * DAY, 1000)
    assert lines(caplog)[-1] == (
        "backfill: 50% of the history read (5d 0h of 10d 0h), 100 records/s, about 15s left"  # 5 days in 15 s, 5 left
    )
    assert all(getattr(r, "source", None) == "feed" for r in caplog.records if r.name == "exporter.progress")


def test_progress_lines_come_at_most_every_log_every_seconds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    t = BackfillTracker(clock)
    t.begin("feed", NOW)
    for step in range(100):  # 25 s of batches, 4 a second
        t.read("feed", NOW - 10 * DAY + step * timedelta(hours=1), 10)
        clock.now += 0.25
    progress = [line for line in lines(caplog) if "% of the history read" in line]
    assert len(progress) == 2  # at 10 s and 20 s


def test_caught_up_is_zero_and_ends_the_backfill(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    t = BackfillTracker(Clock())
    t.begin("feed", NOW)
    t.read("feed", NOW - DAY, 10)
    t.end("feed")
    assert t.remaining("feed") == 0 and t.view("feed") is None
    assert lines(caplog)[-1].startswith("backfill done: caught up after")
    # The next poll reads up to a later time, from where the last one ended: live, no backfill.
    t.begin("feed", NOW + timedelta(seconds=30))
    assert t.read("feed", None, 3) == 30.0
    assert t.view("feed") is None


def test_a_source_a_little_behind_is_no_backfill(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    t = BackfillTracker(Clock())
    t.begin("feed", NOW)
    assert t.read("feed", NOW - timedelta(seconds=BEHIND_SECONDS), 1) == BEHIND_SECONDS
    assert t.view("feed") is None and lines(caplog) == []


def test_the_position_never_moves_back() -> None:
    t = BackfillTracker(Clock())
    t.begin("feed", NOW)
    t.read("feed", NOW - DAY, 1)
    assert t.read("feed", NOW - 2 * DAY, 1) == 86400  # an older position from a later batch changes nothing


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (-5, "0s"), (59.6, "1m 0s"), (250, "4m 10s"), (7500, "2h 5m"), (3 * 86400 + 4 * 3600, "3d 4h")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
