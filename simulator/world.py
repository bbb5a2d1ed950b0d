"""The simulated world: agents and their runs, generated from the seed, and
what of them has become visible by "now".

Every platform has its own `Store`. Runs are drawn as compact `RunSpec`s
(specs.py; drawn by generate.py from the platform's profiles.py `Profile`)
and are rendered into each platform's JSON only when a page is served. A
store learns what has become visible by "now" through one heap of pending
visibility moments (a run created, a run ended, a feed entry occurred); each
moment is appended to an append-only log sorted by time when its time comes.
Because a run is only generated once its creation is due and every one of
its moments lies at or after its creation, those logs only ever grow at the
end: that is what makes positions in them usable as stable cursors, and
pages a bisection away.

Runs start as a Poisson process at `runs_per_minute` per platform from the
start of the simulator (in virtual time, see clock.py); `history_runs` more
are spread over `history_span_seconds` before the start, all finished.
"""

from __future__ import annotations

import heapq
import logging
import random
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

from simulator.clock import SimClock
from simulator.generate import RunFactory
from simulator.options import SimulatorOptions
from simulator.profiles import Profile, make_agents
from simulator.specs import AgentSpec, RunSpec

log = logging.getLogger(__name__)

# A visibility moment is one int: (ms << _SHIFT) | ((seq * 32 + k) * 4 + kind).
# Ints order by time first, then by run and entry, so equal times publish in a
# fixed order, and a pending history of 400,000 moments stays a plain list of
# ints (a tuple per moment would take four times the memory).
_CREATED, _ENDED, _FEED = 0, 1, 2
MAX_FEED_PER_RUN = 32
_SHIFT = 36
_LOW = (1 << _SHIFT) - 1


class Log:
    """An append-only list of (time ms, value), sorted by time."""

    __slots__ = ("ms", "val")

    def __init__(self) -> None:
        self.ms = array("q")
        self.val = array("q")

    def __len__(self) -> int:
        return len(self.ms)

    def append(self, ms: int, value: int) -> None:
        self.ms.append(ms)
        self.val.append(value)

    def first_at_or_after(self, ms: int) -> int:
        return bisect_left(self.ms, ms)

    def first_after(self, ms: int) -> int:
        return bisect_right(self.ms, ms)


# Times of a run's feed entries (runtools events), in the order the platform
# module numbers them; each must be >= the run's creation.
FeedTimes = Callable[[RunSpec, AgentSpec], Sequence[int]]


class Store:
    """One platform's world. Not thread-safe: the simulator holds its lock."""

    def __init__(
        self,
        profile: Profile,
        options: SimulatorOptions,
        clock: SimClock,
        feed_times: FeedTimes | None = None,
    ) -> None:
        self.platform = profile.platform
        self.agents: list[AgentSpec] = make_agents(options.seed, profile, options.agents_per_platform)
        self.agent_index: dict[str, int] = {a.id: i for i, a in enumerate(self.agents)}
        self.runs: list[RunSpec] = []
        self.by_id: dict[str, int] = {}
        self.created = Log()  # value: seq
        self.ended = Log()  # value: seq
        self.agent_created = [Log() for _ in self.agents]
        self.agent_ended = [Log() for _ in self.agents]
        self.feed: Log | None = Log() if feed_times else None  # value: seq * 32 + k
        self._feed_times = feed_times
        self._factory = RunFactory(profile, self.agents, options.run_seconds)
        self._options = options
        self._clock = clock
        self._pending: list[int] = []  # packed visibility moments, a heap
        self._live_rng = random.Random(f"{options.seed}|{profile.platform}|live")
        self._rate_per_ms = options.runs_per_minute / 60_000.0
        self._next_virtual: int | None = self._gap() if self._rate_per_ms > 0 else None
        self._history_done = False
        self._bulk = False
        self._sorted = False

    @property
    def max_delay_ms(self) -> int:
        return self._factory.max_delay_ms

    @property
    def max_run_ms(self) -> int:
        """An upper bound on created -> ended of any run."""
        return self._factory.max_delay_ms + round(self._options.run_seconds[1] * 1000) + 1

    def _gap(self) -> int:
        return max(1, round(self._live_rng.expovariate(self._rate_per_ms)))

    def advance(self, now_ms: int) -> None:
        """Generate the runs created by now, and publish what became visible."""
        if not self._history_done:
            self._history_done = True
            self._generate_history()
        virtual_now = self._clock.virtual_now(now_ms)
        while self._next_virtual is not None and self._next_virtual <= virtual_now:
            created = self._clock.real_time(self._next_virtual)
            rng = self._live_rng
            self._add(self._factory.draw(rng, len(self.runs), created, self._factory.duration(rng)))
            self._next_virtual += self._gap()
        self._publish(now_ms)

    def _generate_history(self) -> None:
        count = self._options.history_runs
        if not count or self.platform not in self._options.history_platforms:
            return
        rng = random.Random(f"{self._options.seed}|{self.platform}|history")
        self._bulk = True
        span = round(self._options.history_span_seconds * 1000)
        start = self._clock.epoch_ms - span
        for _ in range(count):
            duration = self._factory.duration(rng)
            # Created early enough that the run has ended before the start
            # (even if that means before the span, when runs outlast it).
            latest = self._clock.epoch_ms - 1 - duration - self._factory.max_delay_ms
            created = min(start + int(rng.random() * max(0, latest - start)), latest)
            self._add(self._factory.draw(rng, len(self.runs), created, duration))
        self._bulk = False
        # A sorted list is also a heap; while it stays sorted, _publish can
        # take the due prefix in one slice instead of popping entry by entry.
        self._pending.sort()
        self._sorted = True
        log.debug("%s: generated %d history runs", self.platform, len(self.runs))

    def _add(self, runs: list[RunSpec]) -> None:
        for run in runs:
            self.runs.append(run)
            self.by_id[run.run_id] = run.seq
            self._schedule(run.created_ms, run.seq * MAX_FEED_PER_RUN * 4 + _CREATED)
            self._schedule(run.end_ms, run.seq * MAX_FEED_PER_RUN * 4 + _ENDED)
            if self._feed_times is not None:
                times = self._feed_times(run, self.agents[run.agent])
                if len(times) > MAX_FEED_PER_RUN:
                    raise ValueError(f"{len(times)} feed entries in one run, at most {MAX_FEED_PER_RUN}")
                for k, ms in enumerate(times):
                    self._schedule(ms, (run.seq * MAX_FEED_PER_RUN + k) * 4 + _FEED)

    def _schedule(self, ms: int, packed: int) -> None:
        entry = (ms << _SHIFT) | packed
        if self._bulk:
            self._pending.append(entry)  # sorted once the whole history is drawn
        else:
            self._sorted = False
            heapq.heappush(self._pending, entry)

    def _publish(self, now_ms: int) -> None:
        pending = self._pending
        if self._sorted:
            due = bisect_right(pending, (now_ms << _SHIFT) | _LOW)
            for entry in pending[:due]:
                self._apply(entry)
            del pending[:due]
        limit = (now_ms << _SHIFT) | _LOW
        while pending and pending[0] <= limit:
            self._apply(heapq.heappop(pending))

    def _apply(self, entry: int) -> None:
        ms = entry >> _SHIFT
        packed = entry & _LOW
        kind = packed & 3
        ref = packed >> 2
        seq = ref // MAX_FEED_PER_RUN
        if kind == _CREATED:
            self.created.append(ms, seq)
            self.agent_created[self.runs[seq].agent].append(ms, seq)
        elif kind == _ENDED:
            self.ended.append(ms, seq)
            self.agent_ended[self.runs[seq].agent].append(ms, seq)
        elif self.feed is not None:
            self.feed.append(ms, ref)
