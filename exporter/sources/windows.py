"""Reading a history in time windows: the shared checkpoint shape and the
next-window rule.

A window is a fixed time range read page by page; it does not move under
the reader, so every page of it is read even while new records arrive. The
watermark moves to a window's end only once the whole window is read; the
next window starts `lookback` before the watermark, so records published
late are still seen (dedup keys absorb the overlap). A part-read window is
kept with where to resume (a cursor, or a page number), so a restart goes
on from the last committed page.

Stored as {"watermark": iso, "window": {"from": iso, "to": iso, ...resume}}
("window" only while one is part-read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TypeVar

from exporter.model import format_time, parse_time

D = TypeVar("D", datetime, None)


def time_or(value: object, default: D) -> datetime | D:
    """A stored ISO time, or `default` when it is absent or unreadable."""
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            return default
    return default


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime
    # Where a part-read window resumes ({"cursor": ...}, {"page": n, ...});
    # empty at its start.
    resume: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def at(self, **resume: object) -> Window:
        """This window, to be resumed from `resume`."""
        return replace(self, resume=MappingProxyType(dict(resume)))

    def query(self) -> tuple[str, str]:
        """The bounds as the platforms receive them (UTC, milliseconds)."""
        return format_time(self.since), format_time(self.until)

    def to_json(self) -> dict[str, object]:
        return {"from": self.since.isoformat(), "to": self.until.isoformat(), **self.resume}

    @classmethod
    def from_json(cls, data: object) -> Window | None:
        if not isinstance(data, Mapping):
            return None
        since, until = time_or(data.get("from"), None), time_or(data.get("to"), None)
        if since is None or until is None:
            return None
        resume = {k: v for k, v in data.items() if k not in ("from", "to")}
        return cls(since, until, MappingProxyType(resume))


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one history (a feed, or one agent's runs) has been read."""

    watermark: datetime
    window: Window | None = None  # part-read

    def next_window(self, now: datetime, lookback: timedelta, span: timedelta | None = None) -> Window | None:
        """The part-read window, else the one after the watermark (from
        `lookback` before it, to `now` or at most `span`); None when read up
        to `now`."""
        if self.window is not None:
            return self.window
        if self.watermark >= now:
            return None
        until = now if span is None else min(now, self.watermark + span)
        return Window(self.watermark - lookback, until)

    def reading(self, window: Window) -> Progress:
        """Part-way through `window` (its `resume` says where)."""
        return replace(self, window=window)

    def finished(self, window: Window) -> Progress:
        """`window` read to its end: the watermark moves to its end."""
        return Progress(watermark=window.until)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"watermark": self.watermark.isoformat()}
        if self.window is not None:
            out["window"] = self.window.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, default_watermark: datetime) -> Progress:
        """Stored progress; a history never read starts at `default_watermark`
        (now - start_from)."""
        if not isinstance(data, Mapping):
            return cls(default_watermark)
        return cls(time_or(data.get("watermark"), default_watermark), Window.from_json(data.get("window")))


def mean_watermark(histories: Iterable[Progress]) -> datetime | None:
    """How far several histories (one per agent) are read, as one position
    for the backfill progress (`Batch.read_to`): the mean of their
    watermarks, so each history read to its end moves it by its share.
    None without any."""
    stamps = [p.watermark.timestamp() for p in histories]
    if not stamps:
        return None
    return datetime.fromtimestamp(sum(stamps) / len(stamps), tz=timezone.utc)
