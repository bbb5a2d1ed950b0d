"""The simulator's clock: wall-clock "now", and the virtual time that drives
new runs, which stands still while the simulator is paused.

Runs are scheduled at virtual offsets (ms after start) drawn from the seed.
While paused, virtual time does not advance, so no run is due; on resume every
later run is shifted by the length of the pause. A run's real start is a pure
function of its virtual offset and the pauses before it, which is what lets a
platform generate its runs lazily, at whatever moment it is first asked.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class SimClock:
    epoch_ms: int  # wall-clock time (ms) the simulator treats as its start
    monotonic_ns: Callable[[], int] = time.monotonic_ns
    _mono0: int = 0
    # Completed pauses: the virtual moment each began, and the running sum of
    # their real durations (prefix sums make real_time() a bisection).
    _pause_at: list[int] = field(default_factory=list)
    _pause_sum: list[int] = field(default_factory=list)
    _paused: tuple[int, int] | None = None  # (virtual moment, real ms) of the current pause

    def __post_init__(self) -> None:
        self._mono0 = self.monotonic_ns()

    def now_ms(self) -> int:
        # Monotonic, so "now" never runs backwards when the host clock is stepped.
        return self.epoch_ms + (self.monotonic_ns() - self._mono0) // 1_000_000

    @property
    def paused(self) -> bool:
        return self._paused is not None

    def _paused_total(self) -> int:
        return self._pause_sum[-1] if self._pause_sum else 0

    def virtual_now(self, now_ms: int) -> int:
        if self._paused is not None:
            return self._paused[0]
        return now_ms - self.epoch_ms - self._paused_total()

    def real_time(self, virtual_ms: int) -> int:
        """Wall-clock ms at which virtual time reached `virtual_ms`; only valid
        for virtual_ms <= virtual_now(), which is all the world ever asks."""
        # Pauses that began strictly before virtual_ms delayed it.
        i = bisect.bisect_left(self._pause_at, virtual_ms)
        shift = self._pause_sum[i - 1] if i else 0
        return self.epoch_ms + virtual_ms + shift

    def pause(self) -> None:
        if self._paused is None:
            now = self.now_ms()
            self._paused = (self.virtual_now(now), now)

    def resume(self) -> None:
        if self._paused is None:
            return
        at, since = self._paused
        self._paused = None
        duration = self.now_ms() - since
        if duration <= 0:
            return
        if self._pause_at and self._pause_at[-1] == at:
            # Two pauses at the same virtual moment act as one.
            self._pause_sum[-1] += duration
        else:
            self._pause_at.append(at)
            self._pause_sum.append(self._paused_total() + duration)
