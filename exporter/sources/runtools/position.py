"""runtools: how far the feed is read (the checkpoint), and window bounds as
the platform receives them.

Checkpoint: the windows' Progress (windows.py), plus
    {"settled": bool, "floor": iso?}   # what the last settled window left (reader.py)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from exporter.sources.windows import Progress, Window, time_or

MIN_SPAN = timedelta(seconds=10)  # the narrowest backfill window


@dataclass(frozen=True, slots=True)
class Position:
    """How far the feed is read: its Progress, plus what the last settled
    window left (the checkpoint)."""

    progress: Progress
    settled: bool = False  # the window ending at the watermark was settled
    # No window starts before the floor: the last settled window kept the
    # keys of its final EDGE only, so reading further back (a window
    # narrower than `lookback`, not settled, overlapping by `lookback`)
    # would count its other events again.
    floor: datetime | None = None

    def reading(self, window: Window) -> Position:
        return replace(self, progress=self.progress.reading(window))

    def to_json(self) -> dict[str, object]:
        floor = {"floor": self.floor.isoformat()} if self.floor else {}
        return {**self.progress.to_json(), "settled": self.settled, **floor}

    @classmethod
    def from_json(cls, data: Mapping[str, object], default_watermark: datetime) -> Position:
        window = data.get("window")
        if isinstance(window, Mapping) and "since" in window:  # stored before issue #14
            rest = {k: v for k, v in window.items() if k not in ("since", "until")}
            window = {"from": window["since"], "to": window.get("until"), **rest}
        return cls(
            Progress.from_json({**data, "window": window}, default_watermark),
            data.get("settled") is True,
            time_or(data.get("floor"), None),
        )


def whole_ms(at: datetime) -> datetime:
    """A window bound as the platform receives it (milliseconds): kept keys,
    floors and the next window's start then all agree with what was read."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)
