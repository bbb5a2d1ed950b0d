"""Bounded in-memory views of the recent past for the status page: the
latest finished runs, and each source's requests over the last minutes.
Nothing here is persisted: a restart starts them empty."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from exporter.convert.traces import run_trace_id
from exporter.model import Run

RECENT_RUNS = 50  # finished runs kept for the status page
REQUEST_WINDOW = 300.0  # seconds of requests counted per source
REQUEST_BUCKET = 10.0  # seconds per bucket of that window


@dataclass(frozen=True, slots=True)
class RecentRun:
    """A finished run as the status page lists it (no content, no secret)."""

    ended_at: datetime  # the start for a run given up on without an end
    source: str
    agent: str
    status: str
    duration_seconds: float | None
    trace_id: str
    run_id: str

    @classmethod
    def of(cls, run: Run) -> RecentRun:
        end = run.ended_at or run.started_at
        duration = None if run.ended_at is None else max(0.0, (run.ended_at - run.started_at).total_seconds())
        return cls(
            end, run.source, run.agent_name or run.agent_id, run.status.value, duration, run_trace_id(run), run.run_id
        )

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "agent": self.agent,
            "status": self.status,
            "duration_seconds": self.duration_seconds,
            "ended_at": self.ended_at.isoformat(),
            "trace_id": self.trace_id,
            "run_id": self.run_id,
        }


class RecentRuns:
    """The RECENT_RUNS finished runs with the latest end times among those
    committed (a backfill's old runs give way to newer ones)."""

    def __init__(self, size: int = RECENT_RUNS) -> None:
        self._size = size
        # Min-heap by (end, run id): the oldest kept end on top. Run ids are
        # unique in it, so the runs themselves are never compared.
        self._heap: list[tuple[datetime, str, RecentRun]] = []
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, runs: Iterable[Run]) -> None:
        with self._lock:
            for run in runs:
                if run.run_id in self._ids:
                    continue  # re-exported after a restart mid-batch: once is enough
                item = RecentRun.of(run)
                entry = (item.ended_at, item.run_id, item)
                if len(self._heap) < self._size:
                    heapq.heappush(self._heap, entry)
                elif entry[:2] > self._heap[0][:2]:
                    self._ids.discard(heapq.heapreplace(self._heap, entry)[1])
                else:
                    continue
                self._ids.add(run.run_id)

    def latest(self) -> list[RecentRun]:
        """Newest end first."""
        with self._lock:
            return [item for _, _, item in sorted(self._heap, key=lambda e: e[:2], reverse=True)]


class RequestWindow:
    """One source's requests and 429 answers over the last REQUEST_WINDOW
    seconds, in REQUEST_BUCKET-second buckets."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: deque[list[float]] = deque()  # [bucket start, requests, limited]
        self._lock = threading.Lock()

    def add(self, requests: int, limited: int) -> None:
        if not requests and not limited:
            return
        now = self._clock()
        start = now - now % REQUEST_BUCKET
        with self._lock:
            if not self._buckets or self._buckets[-1][0] != start:
                self._buckets.append([start, 0, 0])
            self._buckets[-1][1] += requests
            self._buckets[-1][2] += limited
            self._expire(now)

    def totals(self) -> tuple[int, int]:
        """(requests, 429s) in the window."""
        with self._lock:
            self._expire(self._clock())
            return int(sum(b[1] for b in self._buckets)), int(sum(b[2] for b in self._buckets))

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] + REQUEST_BUCKET <= now - REQUEST_WINDOW:
            self._buckets.popleft()
