"""Requests read ahead on the source's worker threads (`Workers.map_ordered`),
handed to the poll thread in order: the parts every reader that reads ahead
uses.

Only HTTP and pure parsing run on a worker: what a worker fetched is kept,
with the error it ended in, as a value (`Fetched`), and the poll thread
raises that error at the very point where the sequential reader would have
made the request. So a poll that fails, fails with the same error after the
same committed batches, whatever ran ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """What one request came to: its value, or the error it raised."""

    value: T | None = None
    error: Exception | None = None

    def get(self) -> T:
        """The value; the request's error raised here, on the poll thread."""
        if self.error is not None:
            raise self.error
        return cast(T, self.value)  # None only where T admits it


def attempt(fn: Callable[[], T]) -> Fetched[T]:
    """`fn()` with its error kept for later (on a worker thread)."""
    try:
        return Fetched(fn())
    except Exception as err:  # re-raised by Fetched.get on the poll thread
        return Fetched(error=err)


class Ahead(Generic[K, R]):
    """Results fetched ahead for some keys (in the order they are likely to
    be asked for), taken by key at the point of use. A key not planned (or
    taken already) gives None: the caller then fetches itself. Results
    passed over to reach a later key are kept until asked for (a plan whose
    order guessed wrong waits, never refetches); a result never asked for
    cost a request for nothing, never a wrong answer, and its error is
    never raised."""

    def __init__(self, keys: Iterable[K], results: Generator[tuple[K, R], None, None]) -> None:
        self._keys = set(keys)
        self._results = results
        self._kept: dict[K, R] = {}

    def take(self, key: K) -> R | None:
        if key in self._kept:
            return self._kept.pop(key)
        if key not in self._keys:
            return None
        for got, result in self._results:
            self._keys.discard(got)
            if got == key:
                return result
            self._kept[got] = result
        return None

    def close(self) -> None:
        self._results.close()
        self._kept.clear()
