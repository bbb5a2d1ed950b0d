"""What a hosted API costs a reader besides its faults: the time each request
takes (latency) and a cap on how many requests it answers per second (a
rate limit). Both apply to every platform request, never to /_truth or
/_control.

- latency: a fixed delay, or one drawn uniformly from a range by a seeded
  RNG (the n-th request of a run always waits the same), slept outside the
  simulator's lock, so concurrent requests wait side by side;
- rate limit: at most N requests per platform and key (the credential the
  request presents, valid or not) in each fixed one-second window; beyond
  that the platform's own 429 body with an integer Retry-After (seconds to
  the next window, at least 1). Rejected requests do not use up the window.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field

_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?$")
_SCALE = {"ms": 0.001, "s": 1.0}
_MAX_KEYS = 4096  # buckets remembered; those of past windows are dropped beyond this


def parse_latency(spec: str | None) -> tuple[float, float]:
    """`50ms`, `0.2s` or a range `50ms-300ms` (also `50-300ms`: the unit of
    the upper bound applies to a bare lower one) -> (low, high) in seconds.
    An empty spec or `0` is no latency. ValueError on anything else."""
    text = (spec or "").strip().lower()
    if not text or text == "0":
        return (0.0, 0.0)
    low_text, sep, high_text = text.partition("-")
    high, high_unit = _duration(high_text if sep else low_text, spec)
    if high_unit is None:
        raise ValueError(f"latency {spec!r}: give a unit, ms or s (e.g. 50ms or 50ms-300ms)")
    low, low_unit = _duration(low_text, spec) if sep else (high, high_unit)
    low *= _SCALE[low_unit or high_unit]
    high *= _SCALE[high_unit]
    if low > high:
        raise ValueError(f"latency {spec!r}: the lower bound is above the upper one")
    return (low, high)


def _duration(text: str, spec: str | None) -> tuple[float, str | None]:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"latency {spec!r}: {text.strip()!r} is not a duration such as 50ms or 0.2s")
    return float(match.group(1)), match.group(2)


def describe_latency(latency: tuple[float, float]) -> str:
    low, high = latency
    if low == high:
        return f"{low * 1000:g}ms"
    return f"{low * 1000:g}ms-{high * 1000:g}ms"


@dataclass(slots=True)
class Latency:
    """Not thread-safe: the simulator draws under its lock (the draw order
    is then the order requests arrived)."""

    seconds: tuple[float, float]
    seed: int
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}|latency")

    def draw(self) -> float:
        low, high = self.seconds
        if high <= 0:
            return 0.0
        if low == high:
            return low
        return self._rng.uniform(low, high)


@dataclass(slots=True)
class RateLimiter:
    """N requests per (platform, key) per fixed one-second window of the
    monotonic clock; 0 is no limit. Not thread-safe: called under the
    simulator's lock."""

    per_second: int
    _windows: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # -> (window, used)

    def admit(self, platform: str, key: str, monotonic_ns: int) -> int | None:
        """None if the request may pass (and it is counted), else the
        Retry-After in whole seconds (at least 1)."""
        if self.per_second <= 0:
            return None
        window = monotonic_ns // 1_000_000_000
        bucket = (platform, key)
        current, used = self._windows.get(bucket, (window, 0))
        if current != window:
            used = 0
        if used >= self.per_second:
            left_ns = (window + 1) * 1_000_000_000 - monotonic_ns
            return max(1, math.ceil(left_ns / 1_000_000_000))
        self._windows[bucket] = (window, used + 1)
        if len(self._windows) > _MAX_KEYS:
            self._windows = {b: v for b, v in self._windows.items() if v[0] == window}
        return None
