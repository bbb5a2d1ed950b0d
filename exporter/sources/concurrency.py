"""Reading with several requests in flight, within the platform's budget.

Two parts, shared by every reader:

- `Gate`: what every request of one source passes before it is sent. At
  most `limit` requests are in flight; the limit adapts like TCP's window
  (AIMD): halved when the platform answers 429, grown by one after `limit`
  clean answers in a row (at most once per GROW_EVERY), never above the
  configured `concurrency`. After a
  429 no request of the source is sent until its Retry-After has passed (a
  rate limit is the platform's, not one request's). An optional token bucket
  (`max_requests_per_second`) spaces requests out before the platform has to.
- `Workers`: a source's threads. `map_ordered` runs independent requests
  together and hands their results back in the order asked, so a reader's
  logic, its batches and its checkpoints stay exactly those of a sequential
  read: work that finishes early waits for the work before it.

Threads rather than asyncio: the readers are generators over a synchronous
httpx client and SQLite; requests are I/O, so threads overlap them without
rewriting every reader, and the poll's commit order is kept by consuming
results in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_RETRY_AFTER = 1.0  # a 429 without Retry-After pauses the source this long
# The limit grows by one at most this often: a rate limit is counted over a
# window (commonly a second), so growing faster than that only finds the same
# limit again, one burst of 429s later.
GROW_EVERY = 1.0


class Stopped(Exception):
    """The exporter is stopping: a request waiting at the gate is not sent."""


class TokenBucket:
    """`rate` requests per second on average, bursts up to `capacity`."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._last = clock()

    def take(self) -> float:
        """Take a token; how long the caller must wait before using it."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


class Gate:
    """The concurrency limit, the rate-limit pause and the request budgets of
    one source, shared by all its threads."""

    def __init__(
        self,
        concurrency: int = 1,
        *,
        per_second: float | None = None,
        per_minute: int | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self._limit = self.concurrency
        self._in_flight = 0
        self._clean = 0
        self._paused_until = 0.0
        self._clock = clock
        self._changed_at = clock()  # of the last cut or growth
        self._stop = stop or threading.Event()
        self._cond = threading.Condition()
        self._buckets = [
            TokenBucket(rate, capacity, clock)
            for rate, capacity in (
                (per_second, max(1.0, per_second or 0.0)),
                (per_minute / 60.0 if per_minute else None, float(per_minute or 0)),
            )
            if rate
        ]
        self._watchers: list[Callable[[int, int], None]] = []

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def watch(self, callback: Callable[[int, int], None]) -> None:
        """Call `callback(in_flight, limit)` on every change (self-metrics)."""
        self._watchers.append(callback)
        callback(self._in_flight, self._limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the source's in-flight places for one request."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> None:
        served: float | None = None  # the pause this thread has waited out already
        while True:
            with self._cond:
                if self._stop.is_set():
                    raise Stopped
                until = self._paused_until
                pause = until - self._clock()
                if pause <= 0 or until == served:
                    if self._in_flight < self._limit:
                        self._in_flight += 1
                        self._changed()
                        budget = max((bucket.take() for bucket in self._buckets), default=0.0)
                        break
                    self._cond.wait(0.5)  # bounded: a missed notification costs half a second
                    continue
            # Waited on the stop event, outside the lock: SIGTERM ends the wait.
            if self._stop.wait(pause):
                raise Stopped
            served = until
        if budget > 0 and self._stop.wait(budget):
            self._leave()
            raise Stopped

    def _leave(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._changed()
            self._cond.notify_all()

    def answered(self) -> None:
        """A clean answer: after `limit` of them in a row, one more in flight."""
        with self._cond:
            self._clean += 1
            now = self._clock()
            if self._clean >= self._limit and self._limit < self.concurrency and now - self._changed_at >= GROW_EVERY:
                self._limit += 1
                self._clean = 0
                self._changed_at = now
                self._changed()
                self._cond.notify_all()

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: pause the whole source for Retry-After and halve the limit
        (once per pause: the answers of requests already in flight when the
        first 429 came count as the same signal)."""
        with self._cond:
            now = self._clock()
            if now >= self._paused_until:
                self._limit = max(1, self._limit // 2)
                self._changed_at = now
            self._paused_until = max(self._paused_until, now + (retry_after or DEFAULT_RETRY_AFTER))
            self._clean = 0
            self._changed()

    def _changed(self) -> None:
        for callback in self._watchers:
            callback(self._in_flight, self._limit)


class Workers:
    """A source's threads for requests that do not depend on each other."""

    def __init__(self, size: int, name: str) -> None:
        self.size = max(1, size)
        self._pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=f"read-{name}")

    def map_ordered(
        self, fn: Callable[[T], R], items: Iterable[T], ahead: int | None = None
    ) -> Generator[R, None, None]:
        """`fn` of each item, up to `size` at once, results in the order of
        `items` (read lazily, at most `ahead` ahead: default `size`; more
        keeps the workers busy while the caller works on a result, at the
        cost of holding more results). An exception comes out in
        the place of its item; the work after it is then not waited for.
        `close()` the generator (`contextlib.closing`) when the reader stops
        early: work not yet started is then cancelled."""
        if self.size == 1:
            yield from map(fn, items)
            return
        pending: deque[Future[R]] = deque()
        source = iter(items)
        bound = max(self.size, ahead or 0)
        try:
            for item in source:
                pending.append(self._pool.submit(fn, item))
                if len(pending) >= bound:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
