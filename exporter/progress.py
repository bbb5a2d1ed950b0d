"""How far behind each source is: the history it still has to read, and,
while that is a backfill, how fast it reads and when it will be done.

"History still to read" is the time between how far a source has read
(the position its reader reports on a batch: `Batch.read_to`, else
`Batch.caught_up_to`) and the time its current poll reads up to (the poll's
`now`); 0 once a poll has read everything. More than BEHIND_SECONDS of it is
a backfill: then the status page shows a progress bar and the log an info
line at most every LOG_EVERY seconds. The progress of a backfill is counted
from the position where it started; its rate (history seconds and records
per wall second) over about the last RATE_WINDOW seconds gives the time
left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)

BEHIND_SECONDS = 300.0  # more history than this to read is a backfill
LOG_EVERY = 10.0  # seconds between two progress lines of one source, at least
RATE_WINDOW = 60.0  # the rate is measured over about this many recent seconds


@dataclass(frozen=True, slots=True)
class BackfillView:
    """One source's backfill as the status page and the log show it."""

    read_seconds: float  # history read since the backfill started
    remaining_seconds: float  # history still to read
    fraction: float  # read / (read + remaining), 0..1
    records_per_second: float | None  # None until two samples exist
    eta_seconds: float | None  # None while the rate is unknown or zero

    def to_json(self) -> dict[str, object]:
        return {
            "read_seconds": round(self.read_seconds, 1),
            "remaining_seconds": round(self.remaining_seconds, 1),
            "fraction": round(self.fraction, 4),
            "records_per_second": None if self.records_per_second is None else round(self.records_per_second, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
        }


@dataclass(slots=True)
class _Source:
    target: datetime | None = None  # what the current poll reads up to
    position: datetime | None = None  # how far the source has read
    origin: datetime | None = None  # where the running backfill started; None: no backfill
    records: int = 0  # read since the backfill started
    samples: deque[tuple[float, float, int]] = field(default_factory=deque)  # (monotonic, position, records)
    logged: float = float("-inf")  # monotonic time of the last progress line
    started: float = 0.0  # monotonic time the backfill started

    def remaining(self) -> float:
        if self.target is None or self.position is None:
            return 0.0
        return max(0.0, (self.target - self.position).total_seconds())


class BackfillTracker:
    """Every source's position and backfill; fed by the commit path (a
    thread per source, a scrape or page on the HTTP threads: one lock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[str, _Source] = {}

    def begin(self, source: str, target: datetime) -> None:
        """A poll starts that reads up to `target`."""
        with self._lock:
            self._sources.setdefault(source, _Source()).target = target

    def read(self, source: str, position: datetime | None, records: int) -> float:
        """A batch is committed: the source has read up to `position` (None:
        its reader did not say) and `records` more records. Returns the
        history still to read, in seconds."""
        with self._lock:
            s = self._sources.setdefault(source, _Source())
            if position is not None:
                s.position = position if s.position is None else max(s.position, position)
            remaining = s.remaining()
            now = self._clock()
            if s.origin is None and remaining > BEHIND_SECONDS and s.position is not None:
                s.origin, s.records, s.started, s.logged = s.position, 0, now, now
                s.samples.clear()
                log.info("backfill: %s of history to read", human_duration(remaining), extra={"source": source})
            if s.origin is None or s.position is None:
                return remaining
            s.records += records
            s.samples.append((now, s.position.timestamp(), s.records))
            while len(s.samples) > 2 and now - s.samples[1][0] >= RATE_WINDOW:
                s.samples.popleft()  # keeps one sample at least RATE_WINDOW old, as the rate's base
            if now - s.logged >= LOG_EVERY:
                s.logged = now
                _log_progress(source, _view(s))
            return remaining

    def end(self, source: str) -> None:
        """The poll read everything up to its target: caught up."""
        with self._lock:
            s = self._sources.setdefault(source, _Source())
            if s.target is not None:
                s.position = s.target if s.position is None else max(s.position, s.target)
            if s.origin is not None:
                log.info(
                    "backfill done: caught up after %s, %d records read",
                    human_duration(self._clock() - s.started),
                    s.records,
                    extra={"source": source},
                )
            s.origin = None
            s.samples.clear()

    def remaining(self, source: str) -> float:
        with self._lock:
            s = self._sources.get(source)
            return 0.0 if s is None else s.remaining()

    def view(self, source: str) -> BackfillView | None:
        """The running backfill of `source`, None when it is not behind."""
        with self._lock:
            s = self._sources.get(source)
            return None if s is None or s.origin is None else _view(s)


def _view(s: _Source) -> BackfillView:
    assert s.origin is not None and s.position is not None
    read = max(0.0, (s.position - s.origin).total_seconds())
    remaining = s.remaining()
    total = read + remaining
    rate_records: float | None = None
    eta: float | None = None
    if len(s.samples) >= 2:
        (t0, p0, r0), (t1, p1, r1) = s.samples[0], s.samples[-1]
        if t1 > t0:
            rate_records = (r1 - r0) / (t1 - t0)
            history_rate = (p1 - p0) / (t1 - t0)
            eta = remaining / history_rate if history_rate > 0 else None
    return BackfillView(read, remaining, read / total if total > 0 else 1.0, rate_records, eta)


def _log_progress(source: str, v: BackfillView) -> None:
    rate = "?" if v.records_per_second is None else f"{v.records_per_second:.0f}"
    eta = "unknown" if v.eta_seconds is None else human_duration(v.eta_seconds)
    log.info(
        "backfill: %.0f%% of the history read (%s of %s), %s records/s, about %s left",
        v.fraction * 100,
        human_duration(v.read_seconds),
        human_duration(v.read_seconds + v.remaining_seconds),
        rate,
        eta,
        extra={"source": source},
    )


def human_duration(seconds: float) -> str:
    """Rounded for people: 3d 4h, 2h 5m, 4m 10s, 12s."""
    s = max(0, round(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"
